"""An agent's whole journey through MCP: discover, install, call allowed and gated tools."""

from __future__ import annotations

import secrets

import httpx

from tests.e2e.conftest import World
from tests.support.agentport import OpenWait, call, decide, mcp_client, set_mode

META_TOOLS = {
    "agentport__list_available_integrations",
    "agentport__get_integration",
    "agentport__list_installed_integrations",
    "agentport__install_integration",
    "agentport__uninstall_integration",
    "agentport__get_auth_status",
    "agentport__start_oauth_flow",
    "agentport__list_integration_tools",
    "agentport__describe_tool",
    "agentport__call_tool",
    "agentport__await_approval",
}


def nonce() -> str:
    return secrets.token_hex(6)


async def test_agent_sees_exactly_the_meta_tools(world: World) -> None:
    async with mcp_client(world.stack.base_url, world.tenant.agent) as client:
        tools = (await client.list_tools()).tools
    assert {t.name for t in tools} == META_TOOLS
    assert all(t.input_schema.get("type") == "object" for t in tools)


async def test_installed_upstream_tools_are_listed_with_require_approval_by_default(world: World) -> None:
    async with mcp_client(world.stack.base_url, world.tenant.agent) as client:
        installed = await call(client, "list_installed_integrations")
        listed = await call(client, "list_integration_tools", integration_id="up")
        described = await call(client, "describe_tool", integration_id="up", tool_name="delete_repo")
    assert [i["integration_id"] for i in installed["installed"]] == ["up"]
    names = {t["name"] for t in listed["tools"]}
    assert {"echo", "add", "delete_repo", "send_email", "slow"} <= names
    assert described["tool"]["mode"] == "require_approval"
    assert described["tool"]["input_schema"]["required"] == ["name"]


async def test_allowed_tool_returns_the_upstreams_real_result(world: World, http: httpx.AsyncClient) -> None:
    await set_mode(http, world.tenant, "up", "echo", "allow")
    text = f"hello {nonce()}"
    async with mcp_client(world.stack.base_url, world.tenant.agent) as client:
        result = await client.call_tool(
            "agentport__call_tool",
            {
                "integration_id": "up",
                "tool_name": "echo",
                "arguments": {"text": text},
                "additional_info": "Echo a greeting to check the connection",
            },
        )
    structured = result.structured_content
    assert structured["status"] == "executed", structured
    assert not result.is_error
    assert any(getattr(block, "text", "") == f"echo: {text}" for block in result.content)
    assert world.upstream.count("echo", text=text) == 1
    assert world.upstream.invocations[-1].authorization == f"Bearer {world.upstream.token}"


async def test_gated_call_waits_for_a_human_and_returns_the_real_result(world: World, http: httpx.AsyncClient) -> None:
    a = int.from_bytes(secrets.token_bytes(2), "big")
    async with mcp_client(world.stack.base_url, world.tenant.agent) as client:
        held = await call(
            client,
            "call_tool",
            integration_id="up",
            tool_name="add",
            arguments={"a": a, "b": 1},
            additional_info="Add one to the counter",
        )
        assert held["status"] == "approval_required", held
        assert held["approval_url"].endswith(f"/approve/{held['approval_request_id']}")
        assert "expires_at" in held
        assert "agentport__await_approval" in held["message"]
        assert world.upstream.count("add", a=a, b=1) == 0

        waiting = OpenWait(client, held["approval_request_id"])
        await waiting.ticked()
        r = await decide(http, world.tenant, held["approval_request_id"], "approve-once")
        assert r.status_code == 200, r.text
        outcome = await waiting.outcome()
    assert outcome["status"] == "executed", outcome
    assert outcome["result"]["structuredContent"] == {"sum": a + 1}
    assert world.upstream.count("add", a=a, b=1) == 1


async def test_await_sends_progress_while_waiting(world: World, http: httpx.AsyncClient) -> None:
    name = f"repo-{nonce()}"
    async with mcp_client(world.stack.base_url, world.tenant.agent) as client:
        held = await call(client, "call_tool", integration_id="up", tool_name="delete_repo", arguments={"name": name})
        request_id = held["approval_request_id"]
        waiting = OpenWait(client, request_id)
        # Keep-alives come every second here (AGENTPORT_KEEPALIVE_SECONDS=1); the wait budget is 30 s.
        await waiting.ticked(2, timeout=15)
        r = await decide(http, world.tenant, request_id, "deny", reason="not today")
        assert r.status_code == 200, r.text
        outcome = await waiting.outcome()
    assert outcome["status"] == "denied"
    assert len(waiting.ticks) >= 2, "keep-alive progress notifications were sent while waiting"


async def test_human_denial_reaches_the_agent_with_reason_and_approver(world: World, http: httpx.AsyncClient) -> None:
    name = f"repo-{nonce()}"
    async with mcp_client(world.stack.base_url, world.tenant.agent) as client:
        held = await call(client, "call_tool", integration_id="up", tool_name="delete_repo", arguments={"name": name})
        r = await decide(http, world.tenant, held["approval_request_id"], "deny", reason="production repo")
        assert r.status_code == 200
        outcome = await call(client, "await_approval", request_id=held["approval_request_id"])
    assert outcome["status"] == "denied"
    assert outcome["reason"] == "production repo"
    assert outcome["decided_by"] == world.tenant.email
    assert "Do not retry" in outcome["message"]
    assert world.upstream.count("delete_repo", name=name) == 0


async def test_deny_mode_never_reaches_upstream(world: World, http: httpx.AsyncClient) -> None:
    await set_mode(http, world.tenant, "up", "send_email", "deny")
    to = f"{nonce()}@example.com"
    async with mcp_client(world.stack.base_url, world.tenant.agent) as client:
        result = await client.call_tool(
            "agentport__call_tool",
            {"integration_id": "up", "tool_name": "send_email", "arguments": {"to": to, "subject": "hi"}},
        )
    assert result.structured_content["status"] == "denied"
    assert result.structured_content["denied_by"] == "policy"
    assert result.is_error
    assert world.upstream.count("send_email", to=to) == 0


async def test_identical_pending_calls_share_one_request_and_other_values_get_their_own(world: World) -> None:
    name = f"repo-{nonce()}"
    async with mcp_client(world.stack.base_url, world.tenant.agent) as client:
        first = await call(client, "call_tool", integration_id="up", tool_name="delete_repo", arguments={"name": name})
        again = await call(client, "call_tool", integration_id="up", tool_name="delete_repo", arguments={"name": name})
        other = await call(
            client, "call_tool", integration_id="up", tool_name="delete_repo", arguments={"name": name + "-x"}
        )
    assert first["status"] == again["status"] == other["status"] == "approval_required"
    assert again["approval_request_id"] == first["approval_request_id"]
    assert other["approval_request_id"] != first["approval_request_id"]


async def test_key_order_and_whitespace_do_not_make_a_new_request(world: World, http: httpx.AsyncClient) -> None:
    a = int.from_bytes(secrets.token_bytes(2), "big") + 100_000
    first = await http.post(
        "/api/tools/up/add/call",
        content=f'{{"arguments": {{"a": {a}, "b": 2}}}}',
        headers={**world.tenant.agent, "Content-Type": "application/json"},
    )
    second = await http.post(
        "/api/tools/up/add/call",
        content=f'{{"arguments":{{ "b":2,   "a":{a} }}}}',
        headers={**world.tenant.agent, "Content-Type": "application/json"},
    )
    assert first.json()["approval_request_id"] == second.json()["approval_request_id"]


async def test_approve_once_runs_exactly_once(world: World, http: httpx.AsyncClient) -> None:
    a = int.from_bytes(secrets.token_bytes(2), "big") + 200_000
    async with mcp_client(world.stack.base_url, world.tenant.agent) as client:
        held = await call(client, "call_tool", integration_id="up", tool_name="add", arguments={"a": a, "b": 3})
        await decide(http, world.tenant, held["approval_request_id"], "approve-once")
        outcome = await call(client, "await_approval", request_id=held["approval_request_id"])
        replay = await call(client, "await_approval", request_id=held["approval_request_id"])
        second = await call(client, "call_tool", integration_id="up", tool_name="add", arguments={"a": a, "b": 3})
    assert outcome["status"] == replay["status"] == "executed"
    assert second["status"] == "approval_required"
    assert second["approval_request_id"] != held["approval_request_id"]
    again = await decide(http, world.tenant, held["approval_request_id"], "approve-once")
    assert again.status_code == 409
    assert world.upstream.count("add", a=a, b=3) == 1


async def test_always_allow_flips_the_tool_to_allow(world: World, http: httpx.AsyncClient) -> None:
    async with mcp_client(world.stack.base_url, world.tenant.agent) as client:
        held = await call(
            client,
            "call_tool",
            integration_id="up",
            tool_name="slow",
            arguments={"seconds": 0, "tag": nonce()},
        )
        await decide(http, world.tenant, held["approval_request_id"], "allow-tool")
        done = await call(client, "await_approval", request_id=held["approval_request_id"])
        described = await call(client, "describe_tool", integration_id="up", tool_name="slow")
        tag = nonce()
        direct = await call(
            client, "call_tool", integration_id="up", tool_name="slow", arguments={"seconds": 0, "tag": tag}
        )
    assert done["status"] == "executed"
    assert described["tool"]["mode"] == "allow"
    assert direct["status"] == "executed"
    assert world.upstream.count("slow", tag=tag) == 1
