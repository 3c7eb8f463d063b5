"""Security invariants: no plaintext credential anywhere, humans-only actions, org isolation."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import PLANTED_SECRET
from tests.e2e.conftest import World
from tests.support.agentport import add_custom_upstream, call, mcp_client, new_tenant
from tests.support.leaks import find_leaks
from tests.support.upstream import Upstream


async def test_api_key_cannot_do_what_only_a_human_may(world: World, http: httpx.AsyncClient) -> None:
    agent = world.tenant.agent
    held = (
        await http.post("/api/tools/up/delete_repo/call", json={"arguments": {"name": "keyholder"}}, headers=agent)
    ).json()
    forbidden = [
        await http.put("/api/tool-settings/up/delete_repo", json={"mode": "allow"}, headers=agent),
        await http.post(f"/api/tool-approvals/requests/{held['approval_request_id']}/approve-once", headers=agent),
        await http.post(f"/api/tool-approvals/requests/{held['approval_request_id']}/allow-tool", headers=agent),
        await http.post(f"/api/tool-approvals/requests/{held['approval_request_id']}/deny", headers=agent),
        await http.get("/api/logs", headers=agent),
        await http.get(f"/api/logs/{held['call_id']}", headers=agent),
        await http.get("/api/api-keys", headers=agent),
        await http.post("/api/api-keys", json={"name": "more"}, headers=agent),
        await http.put("/api/org-settings", json={"approval_expiry_seconds": 60}, headers=agent),
    ]
    for response in forbidden:
        assert response.status_code == 403, (response.request.url, response.text)
        assert response.json()["error"]["code"] == "forbidden"
    # The agent can still do what agents do.
    assert (await http.get("/api/tools", headers=agent)).status_code == 200
    status = await http.get(f"/api/tool-approvals/requests/{held['approval_request_id']}", headers=agent)
    assert status.json()["status"] == "pending"


async def test_missing_or_bad_key_gets_401_with_resource_metadata(world: World, http: httpx.AsyncClient) -> None:
    init = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    for headers in ({}, {"X-API-Key": "ap_not-a-real-key"}, {"Authorization": "Bearer nope"}):
        r = await http.post("/mcp", json=init, headers=headers)
        assert r.status_code == 401
        assert r.headers["WWW-Authenticate"].startswith('Bearer resource_metadata="')
        assert r.headers["WWW-Authenticate"].endswith('/.well-known/oauth-protected-resource/mcp"')
        assert r.json()["error"]["code"] == "unauthenticated"
    meta = await http.get("/.well-known/oauth-protected-resource/mcp")
    assert meta.json()["resource"].endswith("/mcp")


async def test_one_org_sees_nothing_of_another(world: World, http: httpx.AsyncClient, open_upstream: Upstream) -> None:
    other = await new_tenant(world.stack, http, "org-b")
    await add_custom_upstream(http, other, open_upstream.url, "b-only", bearer=False)
    a_held = (
        await http.post(
            "/api/tools/up/delete_repo/call",
            json={"arguments": {"name": "a-secret-repo"}},
            headers=world.tenant.agent,
        )
    ).json()
    async with mcp_client(world.stack.base_url, other.agent) as client:
        installed = await call(client, "list_installed_integrations")
        tools = await call(client, "list_integration_tools")
        foreign_call = await call(client, "call_tool", integration_id="up", tool_name="echo", arguments={"text": "x"})
        foreign_await = await call(client, "await_approval", request_id=a_held["approval_request_id"])
        available = await call(client, "list_available_integrations", query="upstream")
    assert installed["installed"] == []
    assert tools["tools"] == []
    assert foreign_call["status"] == "error" and foreign_call["error"]["code"] == "not_found"
    assert foreign_await["status"] == "error" and foreign_await["error"]["code"] == "not_found"
    assert [i["id"] for i in available["integrations"]] == ["b-only"]
    b_human = other.human
    assert (
        await http.get(f"/api/tool-approvals/requests/{a_held['approval_request_id']}", headers=b_human)
    ).status_code == 404
    assert (
        await http.post(f"/api/tool-approvals/requests/{a_held['approval_request_id']}/approve-once", headers=b_human)
    ).status_code == 404
    assert (await http.get(f"/api/logs/{a_held['call_id']}", headers=b_human)).status_code == 404
    logs = (await http.get("/api/logs", headers=b_human)).json()
    b_org = await _org_of(http, other.human)
    assert all(item["org_id"] == b_org for item in logs)


async def _org_of(http: httpx.AsyncClient, headers: dict[str, str]) -> str:
    return str((await http.get("/api/users/me", headers=headers)).json()["org_id"])


@pytest.mark.suite_end
async def test_planted_secret_is_nowhere_but_upstream(world: World, http: httpx.AsyncClient) -> None:
    """The install token is absent from every stream message, log line, audit entry and response."""
    # Make sure the secret has travelled: the upstream saw it on real calls.
    assert f"Bearer {PLANTED_SECRET}" in world.upstream.auth_headers_seen
    # Every stream message, service log line and table row of every service.
    assert not await find_leaks(world.stack, {PLANTED_SECRET})
    # Responses: everything the agent and the human can read back.
    for path, headers in (
        ("/api/installed", world.tenant.agent),
        ("/api/integrations/up", world.tenant.agent),
        ("/api/tools", world.tenant.agent),
        ("/api/logs?limit=500", world.tenant.human),
        ("/api/tool-approvals/requests?limit=500", world.tenant.human),
    ):
        r = await http.get(path, headers=headers)
        assert r.status_code == 200 and PLANTED_SECRET not in r.text, path
