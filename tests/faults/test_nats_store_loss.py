"""NATS loses its whole store while agents call: every service notices, re-creates the stream and its
consumers, `/ready` says so meanwhile, and no call runs twice, is lost or stays open.

The stack runs on a nats-server of its own whose store directory is deleted while it is stopped; PostgreSQL is
the session's. The agents retry as the contract says (tests/support/faults/).
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.conftest import ARTIFACTS
from tests.support.faults import fault_rig, outage, under_load

pytestmark = [pytest.mark.embedded, pytest.mark.timeout(300)]

AGENTS = 8


async def test_a_lost_nats_store_is_repaired_and_no_call_runs_twice_is_lost_or_stays_open(
    infra: dict[str, str], tmp_path: Path
) -> None:
    async with fault_rig(tmp_path, infra["DATABASE_URL"], artifacts=ARTIFACTS) as rig:
        result = await under_load(rig, "nats-store-loss", lambda: outage(rig.nats, 2.0, lose_store=True), agents=AGENTS)
        async with httpx.AsyncClient() as client:
            ready = {name: (await client.get(f"{url}/ready")).json() for name, url in rig.stack.urls.items()}
        logs = rig.stack.logs()
    row, story = result.row, result.row.describe()
    print(story)
    assert row.doubled == 0, story
    assert row.lost == 0, story
    assert row.stuck == 0, story
    assert all(len(result.ran.get(call.key, [])) <= 1 for call in result.calls), story
    assert "bus.stream_recreated" in logs
    assert all(r["status"] == "ready" and r["checks"]["stream"] == "ok" for r in ready.values()), ready
