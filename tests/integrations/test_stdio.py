"""A local stdio MCP server the operator configured: installable by an org, callable under the same policies,
run with a clean environment, and restarted when its process dies."""

from __future__ import annotations

import os
import secrets
import signal

import httpx

from tests.support.agentport import call, mcp_client, new_tenant, set_mode
from tests.support.stack import Stack

TOKEN = "stdio-" + secrets.token_hex(8)


async def test_local_server_is_installable_callable_and_recovers_from_a_killed_process(
    stack: Stack, http: httpx.AsyncClient, local_server: str
) -> None:
    tenant = await new_tenant(stack, http)
    async with mcp_client(stack.base_url, tenant.agent) as client:
        available = await call(client, "list_available_integrations", query="local")
        entry = next(i for i in available["integrations"] if i["id"] == local_server)
        assert entry["kind"] == "stdio" and entry["source"] == "operator"
        assert "command" not in entry and "env" not in entry
        installed = await call(
            client, "install_integration", integration_id=local_server, auth_method="token", token=TOKEN
        )
        assert installed["installed"]["status"] == "ready", installed
        held = await call(client, "call_tool", integration_id=local_server, tool_name="echo", arguments={"text": "x"})
        assert held["status"] == "approval_required"

        await set_mode(http, tenant, local_server, "echo", "allow")
        await set_mode(http, tenant, local_server, "environment", "allow")
        first = await call(client, "call_tool", integration_id=local_server, tool_name="echo", arguments={"text": "a"})
        env = await call(client, "call_tool", integration_id=local_server, tool_name="environment", arguments={})
        assert first["status"] == "executed", first
        pid = first["result"]["structuredContent"]["pid"]

        os.kill(pid, signal.SIGKILL)
        again = await call(client, "call_tool", integration_id=local_server, tool_name="echo", arguments={"text": "b"})
    assert again["status"] == "executed", again
    assert again["result"]["structuredContent"]["text"] == "b"
    assert again["result"]["structuredContent"]["pid"] != pid
    names = set(env["result"]["structuredContent"]["names"])
    assert env["result"]["structuredContent"]["token"] == TOKEN
    assert "STDIO_TEST_MODE" in names
    assert not {n for n in names if n.startswith("AGENTPORT_") or n in ("DATABASE_URL", "NATS_URL")}


async def test_orgs_cannot_define_an_integration_over_an_operator_server(
    stack: Stack, http: httpx.AsyncClient, local_server: str
) -> None:
    tenant = await new_tenant(stack, http)
    r = await http.post(
        "/api/integrations/custom-mcp",
        headers=tenant.agent,
        json={"id": local_server, "name": "mine", "url": "http://127.0.0.1:9/mcp"},
    )
    assert r.status_code == 409, r.text
