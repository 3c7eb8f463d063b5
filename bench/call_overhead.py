"""Latency and throughput of an allowed tool call through AgentPort, against calling the upstream directly."""

from __future__ import annotations

import asyncio
import time

import httpx

from bench.harness import describe, running_stack
from tests.support.agentport import add_custom_upstream, mcp_client, new_tenant, set_mode
from tests.support.upstream import running_upstream

SEQUENTIAL = 200
CONCURRENT = 400
CONCURRENCY = 16


async def _timed(fn: object, n: int) -> list[float]:
    samples = []
    for i in range(n):
        start = time.perf_counter()
        await fn(i)  # type: ignore[operator]
        samples.append((time.perf_counter() - start) * 1000)
    return samples


async def _throughput(fn: object, n: int, concurrency: int) -> float:
    slots = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with slots:
            await fn(i)  # type: ignore[operator]

    start = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(n)))
    return n / (time.perf_counter() - start)


async def run() -> None:
    async with running_upstream(None) as upstream, running_stack() as stack:
        async with httpx.AsyncClient(base_url=stack.base_url, timeout=60) as http:
            tenant = await new_tenant(stack, http, "bench")
            await add_custom_upstream(http, tenant, upstream.url, "up", bearer=False)
            r = await http.post(
                "/api/installed", json={"integration_id": "up", "auth_method": "none"}, headers=tenant.agent
            )
            assert r.status_code == 201, r.text
            await set_mode(http, tenant, "up", "echo", "allow")
        async with (
            mcp_client(upstream.url.removesuffix("/mcp"), {}) as direct,
            mcp_client(stack.base_url, tenant.agent) as gateway,
        ):

            async def call_direct(i: int) -> None:
                await direct.call_tool("echo", {"text": f"d{i}"})

            async def call_gateway(i: int) -> None:
                result = await gateway.call_tool(
                    "agentport__call_tool",
                    {"integration_id": "up", "tool_name": "echo", "arguments": {"text": f"g{i}"}},
                )
                assert result.structured_content["status"] == "executed", result

            for fn in (call_direct, call_gateway):  # warm both paths
                await _timed(fn, 20)
            direct_ms = await _timed(call_direct, SEQUENTIAL)
            gateway_ms = await _timed(call_gateway, SEQUENTIAL)
            direct_rps = await _throughput(call_direct, CONCURRENT, CONCURRENCY)
            gateway_rps = await _throughput(call_gateway, CONCURRENT, CONCURRENCY)
    med = sorted(gateway_ms)[len(gateway_ms) // 2] / sorted(direct_ms)[len(direct_ms) // 2]
    print(f"direct upstream call      {describe(direct_ms)}")
    print(f"through AgentPort         {describe(gateway_ms)}")
    print(f"latency ratio (p50)       {med:.2f}x the direct call")
    print(
        f"throughput, {CONCURRENCY} in flight  direct {direct_rps:7.1f}/s   AgentPort {gateway_rps:7.1f}/s"
        f"   ratio {gateway_rps / direct_rps:.2f}"
    )
