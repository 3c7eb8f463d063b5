"""One tenant's oversized or slow calls never stall another tenant's (hardening, item 2)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from mcp.server.mcpserver import MCPServer

from tests.support.agentport import Tenant, add_custom_upstream, new_tenant, set_mode
from tests.support.stack import Stack
from tests.support.upstream import free_port, serving_on_loopback

# 140k emoji: under 512 KiB counted in characters, 560 KB in UTF-8 and far more once JSON-escaped.
EMOJI_COUNT = 140_000


@dataclass
class Heavy:
    url: str
    finished: list[str] = field(default_factory=list)
    runs: dict[str, int] = field(default_factory=dict)


@contextlib.asynccontextmanager
async def heavy_upstream() -> AsyncIterator[Heavy]:
    """An upstream with a tool that answers with a huge emoji text, and one that is slow."""
    port = free_port()
    heavy = Heavy(url=f"http://127.0.0.1:{port}/mcp")
    server = MCPServer("heavy-upstream")

    @server.tool(description="Answer with `count` emoji.")
    def emoji(count: int, tag: str) -> str:
        heavy.runs[tag] = heavy.runs.get(tag, 0) + 1
        return "\N{GRINNING FACE}" * count

    @server.tool(description="Wait, then answer.")
    async def pause(seconds: float, tag: str) -> str:
        heavy.runs[tag] = heavy.runs.get(tag, 0) + 1
        await asyncio.sleep(seconds)
        heavy.finished.append(tag)
        return f"paused {tag}"

    @server.tool(description="Answer at once.")
    def quick(tag: str) -> str:
        heavy.runs[tag] = heavy.runs.get(tag, 0) + 1
        return f"quick {tag}"

    async with serving_on_loopback(server.streamable_http_app(stateless_http=True), port):
        yield heavy


async def _tenant_with(stack: Stack, http: httpx.AsyncClient, heavy: Heavy, org: str) -> Tenant:
    tenant = await new_tenant(stack, http, org)
    await add_custom_upstream(http, tenant, heavy.url, "heavy", bearer=False)
    r = await http.post("/api/installed", json={"integration_id": "heavy", "auth_method": "none"}, headers=tenant.agent)
    assert r.status_code == 201, r.text
    for tool in ("emoji", "pause", "quick"):
        await set_mode(http, tenant, "heavy", tool, "allow")
    return tenant


async def _call(
    http: httpx.AsyncClient, tenant: Tenant, tool: str, arguments: dict[str, Any], wait: float = 60
) -> dict[str, Any]:
    r = await http.post(
        f"/api/tools/heavy/{tool}/call",
        json={"arguments": arguments, "timeout_seconds": wait},
        headers=tenant.agent,
    )
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    deadline = time.monotonic() + 120
    while body["status"] == "pending":
        assert time.monotonic() < deadline, f"call {body['call_id']} still pending"
        r = await http.post(f"/api/calls/{body['call_id']}/await", json={"timeout_seconds": 30}, headers=tenant.agent)
        assert r.status_code == 200, r.text
        body = r.json()
    return body


@pytest.fixture(scope="module")
async def heavy() -> AsyncIterator[Heavy]:
    async with heavy_upstream() as up:
        yield up


async def test_a_result_too_large_in_bytes_ends_once_as_response_too_large(
    stack: Stack, http: httpx.AsyncClient, heavy: Heavy
) -> None:
    tenant = await _tenant_with(stack, http, heavy, "emoji-org")
    result = await _call(http, tenant, "emoji", {"count": EMOJI_COUNT, "tag": "one-big"})
    assert result["status"] == "error", result
    assert result["error"]["code"] == "response_too_large", result
    assert "byte" in result["error"]["message"]
    assert heavy.runs["one-big"] == 1
    # A small answer of the same tool still goes through.
    small = await _call(http, tenant, "emoji", {"count": 10, "tag": "small"})
    assert small["status"] == "executed", small


async def test_one_org_flooding_oversized_results_does_not_stall_another_org(
    stack: Stack, http: httpx.AsyncClient, heavy: Heavy
) -> None:
    flooder = await _tenant_with(stack, http, heavy, "flood-org")
    neighbour = await _tenant_with(stack, http, heavy, "neighbour-org")
    # More oversized calls than the executor's whole in-flight window (128 messages awaiting an ack).
    flood_size = 140
    gate = asyncio.Semaphore(24)

    async def flood(i: int) -> dict[str, Any]:
        async with gate:
            return await _call(http, flooder, "emoji", {"count": EMOJI_COUNT, "tag": f"flood-{i}"})

    flooding = [asyncio.create_task(flood(i)) for i in range(flood_size)]
    neighbour_results = []
    for i in range(10):
        neighbour_results.append(await _call(http, neighbour, "quick", {"tag": f"neighbour-{i}"}))
    flooded = await asyncio.gather(*flooding)
    assert [r["status"] for r in neighbour_results] == ["executed"] * 10, neighbour_results
    codes = {r["status"] + ":" + r.get("error", {}).get("code", "") for r in flooded}
    assert codes == {"error:response_too_large"}, codes
    assert all(heavy.runs[f"flood-{i}"] == 1 for i in range(flood_size))


async def test_one_org_slow_calls_leave_slots_for_another_org(
    stack: Stack, http: httpx.AsyncClient, heavy: Heavy
) -> None:
    slow_org = await _tenant_with(stack, http, heavy, "slow-org")
    other = await _tenant_with(stack, http, heavy, "other-org")
    # More slow calls than the executor runs at once (32): without a per-org bound they take every slot.
    slow_calls = [
        asyncio.create_task(_call(http, slow_org, "pause", {"seconds": 8, "tag": f"slow-{i}"}, wait=5))
        for i in range(40)
    ]
    deadline = time.monotonic() + 30
    while sum(1 for tag in heavy.runs if tag.startswith("slow-")) < 8:
        assert time.monotonic() < deadline, "the slow calls never started"
        await asyncio.sleep(0.05)
    quick = await _call(http, other, "quick", {"tag": "while-slow"})
    assert quick["status"] == "executed", quick
    # The other org's call finished while the slow org's first calls were still running.
    assert not heavy.finished, f"the other org waited for slow calls to finish: {heavy.finished}"
    done = await asyncio.gather(*slow_calls)
    assert {r["status"] for r in done} == {"executed"}
