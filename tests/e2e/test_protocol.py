"""Every protocol version the SDK knows gets the same flow; bad input gets a clear error, never a 500."""

from __future__ import annotations

import asyncio
import secrets

import httpx
import mcp_types as types
import pytest
from mcp.shared.exceptions import MCPError
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS, MODERN_PROTOCOL_VERSIONS

from tests.e2e.conftest import World
from tests.support.agentport import call, decide, mcp_client, set_mode

VERSIONS = [*HANDSHAKE_PROTOCOL_VERSIONS, *MODERN_PROTOCOL_VERSIONS]


@pytest.mark.parametrize("version", VERSIONS)
async def test_every_protocol_version_passes_the_same_flow(world: World, http: httpx.AsyncClient, version: str) -> None:
    await set_mode(http, world.tenant, "up", "echo", "allow")
    text = f"{version} {secrets.token_hex(3)}"
    async with mcp_client(world.stack.base_url, world.tenant.agent, version) as client:
        assert client.protocol_version == version
        names = {t.name for t in (await client.list_tools()).tools}
        assert "agentport__call_tool" in names
        executed = await call(client, "call_tool", integration_id="up", tool_name="echo", arguments={"text": text})
        held = await call(
            client, "call_tool", integration_id="up", tool_name="delete_repo", arguments={"name": f"v-{text}"}
        )
        waiting = asyncio.create_task(call(client, "await_approval", request_id=held["approval_request_id"]))
        await decide(http, world.tenant, held["approval_request_id"], "approve-once")
        approved = await asyncio.wait_for(waiting, 30)
    assert executed["status"] == "executed"
    assert held["status"] == "approval_required"
    assert approved["status"] == "executed"
    assert world.upstream.count("echo", text=text) == 1
    assert world.upstream.count("delete_repo", name=f"v-{text}") == 1


@pytest.mark.parametrize("version", ["2025-06-18", "2026-07-28"])
@pytest.mark.parametrize("body", [b"{not json", b'{"just": "an object"}', b"[]", b'"text"'])
async def test_malformed_jsonrpc_gets_a_clear_error(
    world: World, http: httpx.AsyncClient, version: str, body: bytes
) -> None:
    headers = {
        **world.tenant.agent,
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": version,
    }
    r = await asyncio.wait_for(http.post("/mcp", content=body, headers=headers), 10)
    assert 400 <= r.status_code < 500, (r.status_code, r.text)
    assert "error" in r.text.lower()


async def test_unknown_tool_is_a_protocol_error_naming_the_tools(world: World) -> None:
    async with mcp_client(world.stack.base_url, world.tenant.agent) as client:
        with pytest.raises(MCPError) as caught:
            await client.call_tool("agentport__no_such_tool", {})
    assert caught.value.code == types.INVALID_PARAMS
    assert "agentport__call_tool" in caught.value.message


async def test_arguments_that_break_a_schema_get_a_clear_error(world: World) -> None:
    async with mcp_client(world.stack.base_url, world.tenant.agent) as client:
        missing = await client.call_tool("agentport__call_tool", {"tool_name": "echo"})
        wrong = await call(client, "call_tool", integration_id="up", tool_name="add", arguments={"a": "x", "b": 1})
        unknown = await call(client, "call_tool", integration_id="up", tool_name="nope", arguments={})
        not_installed = await call(client, "call_tool", integration_id="ghost", tool_name="echo", arguments={})
    assert missing.is_error
    assert missing.structured_content["error"]["code"] == "invalid_arguments"
    assert "integration_id" in missing.structured_content["error"]["message"]
    assert wrong["status"] == "error" and wrong["error"]["code"] == "invalid_arguments"
    assert (
        "/a" in wrong["error"]["message"] or " a:" in wrong["error"]["message"] or "at a" in wrong["error"]["message"]
    )
    assert unknown["error"]["code"] == "not_found" and "list its tools" in unknown["error"]["message"]
    assert not_installed["error"]["code"] == "not_found"


async def test_rest_errors_are_json_with_a_code(world: World, http: httpx.AsyncClient) -> None:
    bad_json = await http.post(
        "/api/tools/up/echo/call",
        content=b"{oops",
        headers={**world.tenant.agent, "Content-Type": "application/json"},
    )
    assert bad_json.status_code == 400 and bad_json.json()["error"]["code"] == "bad_request"
    missing = await http.get("/api/nothing-here", headers=world.tenant.agent)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    bad_mode = await http.put("/api/tool-settings/up/echo", json={"mode": "sometimes"}, headers=world.tenant.human)
    assert bad_mode.status_code == 400 and "mode must be" in bad_mode.json()["error"]["message"]
    wrong_login = await http.post("/api/auth/token", data={"username": world.tenant.email, "password": "wrong-pw"})
    assert wrong_login.status_code == 401


async def test_a_nul_character_is_refused_at_the_door_and_breaks_nothing(world: World, http: httpx.AsyncClient) -> None:
    """PostgreSQL stores no U+0000: such input is a clear error, and the pipeline behind it keeps working."""
    await set_mode(http, world.tenant, "up", "echo", "allow")
    rest = await http.post(
        "/api/tools/up/echo/call", json={"arguments": {"text": "a\u0000b"}}, headers=world.tenant.agent
    )
    assert rest.status_code == 400 and "NUL" in rest.json()["error"]["message"], rest.text
    keyed = await http.post("/api/tools/up/echo/call", json={"args": {"te\u0000xt": "a"}}, headers=world.tenant.agent)
    assert keyed.status_code == 400, keyed.text
    text = "after-nul " + secrets.token_hex(4)
    async with mcp_client(world.stack.base_url, world.tenant.agent) as client:
        refused = await call(client, "call_tool", integration_id="up", tool_name="echo", arguments={"text": "\u0000"})
        after = await call(client, "call_tool", integration_id="up", tool_name="echo", arguments={"text": text})
    assert refused["status"] == "error" and refused["error"]["code"] == "bad_request", refused
    assert after["status"] == "executed", after
    assert world.upstream.count("echo", text=text) == 1
    assert not any("\u0000" in str(i.arguments) for i in world.upstream.invocations)
