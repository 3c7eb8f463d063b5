"""No sticky routing between gateway replicas; killed services lose nothing and never run a call twice."""

from __future__ import annotations

import asyncio
import secrets
import signal
from collections.abc import AsyncIterator

import httpx
import httpx2
import nats
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from shared.events import Actor, CallRuled, CallSpec, arguments_hash, encode_event
from tests.e2e.conftest import World
from tests.support.agentport import OpenWait, call, decide, mcp_client, set_mode
from tests.support.upstream import free_port


class RoundRobin(httpx2.AsyncBaseTransport):
    """Sends each request of one MCP session to the next replica in turn."""

    def __init__(self, ports: list[int]) -> None:
        self.ports = ports
        self.served: list[int] = []
        self.inner = httpx2.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        port = self.ports[len(self.served) % len(self.ports)]
        self.served.append(port)
        request.url = request.url.copy_with(port=port)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.fixture(scope="module")
async def second_gateway(world: World) -> AsyncIterator[int]:
    port = free_port()
    world.stack.start("gateway#2", port=port)
    await world.stack.wait_ready(f"http://127.0.0.1:{port}")
    yield port
    world.stack.stop("gateway#2")


async def test_two_replicas_serve_one_session_alternately(
    world: World, second_gateway: int, http: httpx.AsyncClient
) -> None:
    await set_mode(http, world.tenant, "up", "echo", "allow")
    transport = RoundRobin([world.stack.gateway_port, second_gateway])
    client_http = httpx2.AsyncClient(transport=transport, headers=world.tenant.agent, timeout=60)
    texts = [f"rr {i} {secrets.token_hex(3)}" for i in range(4)]
    async with (
        client_http,
        Client(streamable_http_client(f"{world.stack.base_url}/mcp", http_client=client_http), mode="legacy") as client,
    ):
        tools = await client.list_tools()
        results = [
            await call(client, "call_tool", integration_id="up", tool_name="echo", arguments={"text": t}) for t in texts
        ]
        described = await call(client, "describe_tool", integration_id="up", tool_name="echo")
    assert len(tools.tools) == 11
    assert all(r["status"] == "executed" for r in results)
    assert described["tool"]["mode"] == "allow"
    assert set(transport.served) == {world.stack.gateway_port, second_gateway}
    assert all(world.upstream.count("echo", text=t) == 1 for t in texts)


async def test_a_wait_on_one_replica_ends_when_a_human_decides_on_the_other(
    world: World, second_gateway: int, http: httpx.AsyncClient
) -> None:
    name = "replica-" + secrets.token_hex(4)
    async with mcp_client(world.stack.base_url, world.tenant.agent) as client:
        held = await call(client, "call_tool", integration_id="up", tool_name="delete_repo", arguments={"name": name})
        waiting = OpenWait(client, held["approval_request_id"])
        await waiting.ticked()  # the wait is open on the first replica before the decision is made on the other
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{second_gateway}") as other:
            r = await decide(other, world.tenant, held["approval_request_id"], "approve-once")
            assert r.status_code == 200, r.text
        outcome = await waiting.outcome()
    assert outcome["status"] == "executed"
    assert world.upstream.count("delete_repo", name=name) == 1


async def test_executor_killed_mid_call_ends_outcome_unknown_and_never_retries(
    world: World, http: httpx.AsyncClient
) -> None:
    await set_mode(http, world.tenant, "up", "slow", "allow")
    tag = "crash-" + secrets.token_hex(4)
    calling = asyncio.create_task(
        http.post(
            "/api/tools/up/slow/call",
            json={"arguments": {"seconds": 2, "tag": tag}},
            headers=world.tenant.agent,
        )
    )
    for _ in range(200):
        if world.upstream.count("slow", tag=tag):
            break
        await asyncio.sleep(0.05)
    assert world.upstream.count("slow", tag=tag) == 1
    world.stack.stop("executor", signal.SIGKILL)
    world.stack.start("executor")
    outcome = (await asyncio.wait_for(calling, 60)).json()
    assert outcome["status"] == "error", outcome
    assert outcome["error"]["code"] == "outcome_unknown"
    assert "not retried" in outcome["message"]
    # Every delivery of the call, the killed executor's unacknowledged one included, has now been handled.
    await world.stack.settled()
    assert world.upstream.count("slow", tag=tag) == 1


async def test_a_call_made_while_policy_is_down_completes_once_it_is_back(
    world: World, http: httpx.AsyncClient
) -> None:
    await set_mode(http, world.tenant, "up", "echo", "allow")
    text = "policy-down " + secrets.token_hex(4)
    world.stack.stop("policy", signal.SIGKILL)
    try:
        first = (
            await http.post(
                "/api/tools/up/echo/call?timeout=1",
                json={"arguments": {"text": text}},
                headers=world.tenant.agent,
            )
        ).json()
        assert first["status"] == "pending", first
        assert world.upstream.count("echo", text=text) == 0
    finally:
        world.stack.start("policy")
    done = (await http.post(f"/api/calls/{first['call_id']}/await", headers=world.tenant.agent)).json()
    assert done["status"] == "executed", done
    assert world.upstream.count("echo", text=text) == 1


async def test_a_decision_while_approvals_is_down_is_refused_clearly_and_nothing_is_lost(
    world: World, http: httpx.AsyncClient
) -> None:
    name = "approvals-down-" + secrets.token_hex(4)
    held = (
        await http.post(
            "/api/tools/up/delete_repo/call", json={"arguments": {"name": name}}, headers=world.tenant.agent
        )
    ).json()
    assert held["status"] == "approval_required"
    world.stack.stop("approvals", signal.SIGKILL)
    try:
        refused = await decide(http, world.tenant, held["approval_request_id"], "approve-once")
        assert refused.status_code == 503, refused.text
        assert "approvals service did not answer" in refused.json()["error"]["message"]
    finally:
        world.stack.start("approvals")
        await world.stack.wait_ready(world.stack.urls["approvals"])
    accepted = await decide(http, world.tenant, held["approval_request_id"], "approve-once")
    assert accepted.status_code == 200, accepted.text
    done = (
        await http.post(f"/api/tool-approvals/requests/{held['approval_request_id']}/await", headers=world.tenant.agent)
    ).json()
    assert done["status"] == "executed"
    assert world.upstream.count("delete_repo", name=name) == 1


async def test_a_duplicated_allow_event_runs_the_call_once_and_ends_it_once(
    world: World, http: httpx.AsyncClient
) -> None:
    """Two executors share the work; copies of the event reach either while the first copy runs upstream."""
    world.stack.start("executor#2")
    await world.stack.wait_ready(world.stack.urls["executor#2"])
    await set_mode(http, world.tenant, "up", "slow", "allow")
    tag = "dup-" + secrets.token_hex(4)
    arguments = {"seconds": 1.5, "tag": tag}
    calling = asyncio.create_task(
        http.post("/api/tools/up/slow/call", json={"arguments": arguments}, headers=world.tenant.agent)
    )
    for _ in range(200):
        if world.upstream.count("slow", tag=tag):
            break
        await asyncio.sleep(0.02)
    call_id = next(i.call_id for i in world.upstream.invocations if i.arguments.get("tag") == tag)
    assert call_id is not None
    org_id = (await http.get("/api/users/me", headers=world.tenant.human)).json()["org_id"]
    spec = CallSpec(
        integration_id="up",
        tool_name="slow",
        arguments=arguments,
        args_hash=arguments_hash(arguments),
        actor=Actor(kind="api_key", id="k", name="agent"),
    )
    nc = await nats.connect(world.stack.env["NATS_URL"])
    js = nc.jetstream()
    subject = f"{world.stack.env['AGENTPORT_NAMESPACE']}.call.ruled"

    async def duplicate() -> None:
        copy = CallRuled(org_id=org_id, call_id=call_id, verdict="allow", rule="tool_mode:allow", spec=spec)
        await js.publish(subject, encode_event(copy), headers={"Nats-Msg-Id": copy.event_id})

    try:
        for _ in range(3):  # while the first delivery is still running upstream
            await duplicate()
        outcome = (await asyncio.wait_for(calling, 60)).json()
        await duplicate()  # after it finished
    finally:
        await nc.close()
        world.stack.stop("executor#2")
    assert outcome["status"] == "executed", outcome

    async def terminal_events() -> list[str]:
        story = (await http.get(f"/api/logs/{call_id}", headers=world.tenant.human)).json()
        return [e["type"] for e in story["events"] if e["type"] in ("call.completed", "call.failed")]

    # Every copy has been handled by an executor and every ending they published has reached the audit log.
    await world.stack.settled()
    terminal = await terminal_events()
    assert terminal == ["call.completed"], terminal
    assert world.upstream.count("slow", tag=tag) == 1
