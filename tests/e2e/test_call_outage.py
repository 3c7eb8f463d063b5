"""An agent always learns its call's id, and is never told to "try again" for a call that may run: when the
gateway cannot confirm the publish (NATS unreachable), it answers `pending` with the call id, and awaiting that
id or asking again with the same idempotency key runs the call once.

The outage is real: one gateway replica talks to NATS through a TCP proxy the test can pause (bytes are held,
then delivered late: the event is stored but its ack is lost) or cut (held bytes are thrown away and the
connections closed: the event never reached NATS).
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from mcp import Client

from tests.e2e.conftest import World
from tests.support.agentport import call, mcp_client, set_mode
from tests.support.relay import Relay
from tests.support.upstream import free_port


@dataclass
class Replica:
    url: str
    proxy: Relay


@pytest.fixture(scope="module")
async def replica(world: World) -> AsyncIterator[Replica]:
    """A second gateway whose NATS connection goes through the proxy, and whose calls wait only 2 s.

    `echo` and `slow` are allowed meanwhile; their modes are put back afterwards."""
    nats_url = world.stack.env["NATS_URL"].split(",")[0]
    proxy = Relay.in_front_of(nats_url)
    await proxy.start()
    port = free_port()
    world.stack.start(
        "gateway#outage", port=port, extra_env={"NATS_URL": proxy.url_for(nats_url), "AGENTPORT_CALL_WAIT_SECONDS": "2"}
    )
    async with httpx.AsyncClient(base_url=world.stack.base_url, timeout=60) as http:
        modes = {}
        try:
            await world.stack.wait_ready(f"http://127.0.0.1:{port}")
            for tool in ("echo", "slow"):
                r = await http.get(f"/api/tools/{world.integration}/{tool}", headers=world.tenant.human)
                modes[tool] = r.json()["mode"]
                await set_mode(http, world.tenant, world.integration, tool, "allow")
            yield Replica(f"http://127.0.0.1:{port}", proxy)
        finally:
            world.stack.stop("gateway#outage")
            await proxy.close()
            for tool, mode in modes.items():
                await set_mode(http, world.tenant, world.integration, tool, mode)


def echo(world: World, text: str, **extra: Any) -> dict[str, Any]:
    return {"integration_id": world.integration, "tool_name": "echo", "arguments": {"text": text}, **extra}


def tells_to_await(result: dict[str, Any]) -> None:
    """The answer names the call and says to await it, never to start over."""
    assert result["status"] == "pending", result
    assert result["call_id"], result
    assert f'agentport__await_approval(request_id="{result["call_id"]}")' in result["message"], result
    assert "try again" not in result["message"].lower(), result


async def until_counted(world: World, text: str, expected: int, timeout: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while world.upstream.count("echo", text=text) < expected:
        assert asyncio.get_running_loop().time() < deadline, f"echo {text!r} never reached the upstream"
        await asyncio.sleep(0.1)


@pytest.mark.expects_error_logs("nats: encountered error", reason="the test cuts the replica's NATS connection")
async def test_an_unconfirmed_publish_answers_pending_with_the_call_id(world: World, replica: Replica) -> None:
    text = f"late-{secrets.token_hex(6)}"
    async with mcp_client(replica.url, world.tenant.agent) as client:
        replica.proxy.pause()
        try:
            held = await call(client, "call_tool", **echo(world, text))
        finally:
            replica.proxy.resume()
        tells_to_await(held)
        assert "may still run" in held["message"], held
        outcome = await call(client, "await_approval", request_id=held["call_id"])
    assert outcome["status"] == "executed", outcome
    assert outcome["call_id"] == held["call_id"]
    assert world.upstream.count("echo", text=text) == 1


@pytest.mark.expects_error_logs("nats: encountered error", reason="the test cuts the replica's NATS connection")
async def test_a_lost_publish_runs_once_when_awaited(world: World, replica: Replica) -> None:
    text = f"lost-{secrets.token_hex(6)}"
    async with mcp_client(replica.url, world.tenant.agent) as client:
        replica.proxy.pause()
        try:
            held = await call(client, "call_tool", **echo(world, text))
        finally:
            replica.proxy.cut()
        tells_to_await(held)
        await asyncio.sleep(1)
        assert world.upstream.count("echo", text=text) == 0, "the first publish never reached NATS"
        outcome = await call(client, "await_approval", request_id=held["call_id"])
    assert outcome["status"] == "executed", outcome
    assert world.upstream.count("echo", text=text) == 1


@pytest.mark.expects_error_logs("nats: encountered error", reason="the test cuts the replica's NATS connection")
async def test_a_lost_publish_runs_once_when_asked_again_with_the_same_key(world: World, replica: Replica) -> None:
    text, key = f"lost-keyed-{secrets.token_hex(6)}", secrets.token_hex(8)
    async with mcp_client(replica.url, world.tenant.agent) as client:
        replica.proxy.pause()
        try:
            held = await call(client, "call_tool", **echo(world, text, idempotency_key=key))
        finally:
            replica.proxy.cut()
        tells_to_await(held)
        assert "idempotency_key" in held["message"], held
        again = await call(client, "call_tool", **echo(world, text, idempotency_key=key))
        once_more = await call(client, "call_tool", **echo(world, text, idempotency_key=key))
    assert again["status"] == once_more["status"] == "executed", (again, once_more)
    assert again["call_id"] == once_more["call_id"] == held["call_id"]
    await until_counted(world, text, 1)
    assert world.upstream.count("echo", text=text) == 1


async def test_progress_names_the_call_from_the_first_notification(world: World, replica: Replica) -> None:
    messages: list[str] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        messages.append(message or "")

    tag = secrets.token_hex(6)
    async with mcp_client(replica.url, world.tenant.agent) as client:
        result = await _call_with_progress(client, world, {"seconds": 1.5, "tag": tag}, on_progress, tool="slow")
    assert result["status"] == "executed", result
    assert messages, "a progress notification was sent once the call was accepted"
    assert f"call {result['call_id']} accepted" in messages[0], messages
    assert all(result["call_id"] in m for m in messages), messages


async def test_an_allowed_call_still_running_is_awaited_with_its_call_id(world: World, replica: Replica) -> None:
    tag = secrets.token_hex(6)
    args = {"integration_id": world.integration, "tool_name": "slow", "arguments": {"seconds": 4, "tag": tag}}
    async with mcp_client(replica.url, world.tenant.agent) as client:
        first = await call(client, "call_tool", **args)
        tells_to_await(first)
        outcome = await call(client, "await_approval", request_id=first["call_id"])
    assert outcome["status"] == "executed", outcome
    assert outcome["call_id"] == first["call_id"]
    assert world.upstream.count("slow", tag=tag) == 1


async def _call_with_progress(
    client: Client, world: World, arguments: dict[str, Any], on_progress: Any, *, tool: str
) -> dict[str, Any]:
    result = await client.call_tool(
        "agentport__call_tool",
        {"integration_id": world.integration, "tool_name": tool, "arguments": arguments},
        progress_callback=on_progress,
    )
    assert result.structured_content is not None
    return dict(result.structured_content)
