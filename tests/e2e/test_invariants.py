"""Across the whole suite: upstream never ran a call that was not allowed or approved, and never twice."""

from __future__ import annotations

import json
from collections import Counter

import asyncpg
import pytest

from tests.e2e.conftest import World
from tests.support.upstream import Upstream


@pytest.mark.suite_end
async def test_upstream_ran_only_allowed_or_approved_calls_and_each_once(world: World, open_upstream: Upstream) -> None:
    invocations = [*world.upstream.invocations, *open_upstream.invocations]
    assert len(invocations) > 20, "the suite exercised the upstreams"
    assert all(i.call_id for i in invocations), "every invocation carries its AgentPort call id"
    twice = {call_id: n for call_id, n in Counter(i.call_id for i in invocations).items() if n > 1}
    assert not twice, f"calls that reached upstream more than once: {twice}"

    env = world.stack.env
    conn = await asyncpg.connect(env["DATABASE_URL"])
    try:
        rows = await conn.fetch(
            f'SELECT call_id, summary FROM "{env["AGENTPORT_NAMESPACE"]}_audit".calls WHERE call_id = ANY($1)',
            [i.call_id for i in invocations],
        )
    finally:
        await conn.close()
    summaries = {r["call_id"]: json.loads(r["summary"]) for r in rows}
    for invocation in invocations:
        summary = summaries.get(invocation.call_id)
        assert summary is not None, f"upstream ran {invocation} with no audited call"
        cleared = summary.get("verdict") == "allow" or summary.get("decision") in (
            "approve_once",
            "allow_tool",
        )
        assert cleared, f"upstream ran a call that was neither allowed nor approved: {summary}"
        assert summary["tool_name"] == invocation.tool
        assert summary["arguments"] == invocation.arguments or set(summary["arguments"]) <= set(invocation.arguments)
