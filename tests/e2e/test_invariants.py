"""Across the whole suite: upstream never ran a call that was not allowed or approved for exactly the arguments
it received, and never twice."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from typing import Any

import asyncpg
import pytest

from shared.events import arguments_hash, canonical_json
from tests.e2e.conftest import World
from tests.support.stack import Stack
from tests.support.upstream import Received, Upstream


async def _audited(stack: Stack, call_ids: list[str]) -> tuple[dict[str, list[dict[str, Any]]], dict[str, str]]:
    """The audit log's entries of each call, and the hash each approval request was asked for (by request id)."""
    schema = f'"{stack.env["AGENTPORT_NAMESPACE"]}_audit"'
    conn = await asyncpg.connect(stack.env["DATABASE_URL"])
    try:
        rows = await conn.fetch(
            f"SELECT call_id, entry FROM {schema}.log WHERE call_id = ANY($1) ORDER BY seq", call_ids
        )
        asked = await conn.fetch(
            f"SELECT entry FROM {schema}.log WHERE type = 'approval.requested' AND NOT (entry->>'coalesced')::boolean"
        )
    finally:
        await conn.close()
    entries: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        entries[row["call_id"]].append(json.loads(row["entry"]))
    requested = {e["request_id"]: e["spec"]["args_hash"] for e in (json.loads(r["entry"]) for r in asked)}
    return entries, requested


def _clearances(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The events that let a call go upstream: a rule that allowed it, or a human's release."""
    return [
        e for e in entries if (e["type"] == "call.ruled" and e["verdict"] == "allow") or e["type"] == "call.released"
    ]


def _check_cleared_exactly(sent: Received, entries: list[dict[str, Any]], requested: dict[str, str]) -> None:
    cleared = _clearances(entries)
    assert cleared, f"upstream ran a call that was neither allowed nor approved: {sent}; its log: {entries}"
    sent_json, sent_hash = canonical_json(sent.arguments), arguments_hash(sent.arguments)
    for clearance in cleared:
        spec = clearance["spec"]
        assert spec["tool_name"] == sent.tool, (sent, clearance)
        assert canonical_json(spec["arguments"]) == sent_json, (
            f"upstream received {sent_json} for {sent.call_id}, "
            f"but {clearance['type']} cleared {canonical_json(spec['arguments'])}"
        )
        assert spec["args_hash"] == sent_hash, (sent, clearance)
        if clearance["type"] == "call.released":
            assert clearance["approved_args_hash"] == sent_hash, (sent, clearance)
            assert requested.get(clearance["request_id"]) == sent_hash, (
                f"{sent.call_id} ran with arguments other than those its approver was shown: {sent}"
            )


@pytest.mark.suite_end
async def test_upstream_received_only_calls_cleared_for_exactly_those_arguments_and_each_once(
    world: World, open_upstream: Upstream
) -> None:
    received = [*world.upstream.received, *open_upstream.received]
    assert len(received) > 20, "the suite exercised the upstreams"
    assert all(r.call_id for r in received), "every call carries its AgentPort call id"
    twice = {call_id: n for call_id, n in Counter(r.call_id for r in received).items() if n > 1}
    assert not twice, f"calls that reached upstream more than once: {twice}"

    await world.stack.settled()  # the audit log holds the story of every call so far
    entries, requested = await _audited(world.stack, [r.call_id for r in received if r.call_id])
    for sent in received:
        assert sent.call_id in entries, f"upstream received {sent} with no audited call"
        _check_cleared_exactly(sent, entries[sent.call_id], requested)
