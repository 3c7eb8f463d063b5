"""An OAuth client acts as the human's agent, no more: the audit log names it, it cannot do what only humans may,
and humans see connected clients and revoke them."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.oauth.clients import Human, RawClient, pkce, redirect_params
from tests.oauth.conftest import Seen
from tests.support.agentport import Tenant, add_custom_upstream, audited, call, mcp_client
from tests.support.stack import Stack
from tests.support.upstream import Upstream, running_upstream


@pytest.fixture(scope="module")
async def open_upstream() -> AsyncIterator[Upstream]:
    async with running_upstream(None) as up:
        yield up


async def connected_client(
    stack: Stack, tenant: Tenant, http: httpx.AsyncClient, seen: Seen, name: str
) -> dict[str, Any]:
    """A client registered as `name`, allowed by the tenant's owner; its tokens."""
    raw = RawClient(stack.base_url, http)
    await raw.register(client_name=name)
    human = Human(stack.base_url, tenant)
    try:
        verifier, challenge = pkce()
        response = await human.decide(raw.authorize_url(challenge))
        code = redirect_params(response.headers["location"])["code"]
        tokens: dict[str, Any] = (await raw.exchange(code, verifier)).json()
    finally:
        await human.aclose()
    seen.add(code, tokens["access_token"], tokens["refresh_token"])
    return {**tokens, "client_id": raw.client_id}


async def test_oauth_client_calls_tools_and_the_audit_log_names_it(
    stack: Stack, tenant: Tenant, seen: Seen, open_upstream: Upstream
) -> None:
    name = "Claude " + secrets.token_hex(3)
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=60) as http:
        integration = "open-" + secrets.token_hex(3)
        await add_custom_upstream(http, tenant, open_upstream.url, integration, bearer=False)
        installed = await http.post("/api/installed", json={"integration_id": integration}, headers=tenant.agent)
        assert installed.status_code == 201, installed.text
        tokens = await connected_client(stack, tenant, http, seen, name)
        bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
        async with mcp_client(stack.base_url, bearer) as client:
            held = await call(
                client,
                "call_tool",
                integration_id=integration,
                tool_name="delete_repo",
                arguments={"name": "x"},
                additional_info="Delete the scratch repository",
            )
        story = await audited(http, tenant, held["call_id"])
        forbidden = [
            await http.put(f"/api/tool-settings/{integration}/delete_repo", json={"mode": "allow"}, headers=bearer),
            await http.post(f"/api/tool-approvals/requests/{held['approval_request_id']}/approve-once", headers=bearer),
            await http.get("/api/logs", headers=bearer),
        ]
    assert held["status"] == "approval_required", held
    actor = story["summary"]["actor"]
    assert actor["kind"] == "oauth_client" and actor["name"] == name and actor["id"] == tokens["client_id"]
    assert actor["user_id"]
    for response in forbidden:
        assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_token", response.text


async def test_humans_list_connected_clients_and_revoke_them(stack: Stack, tenant: Tenant, seen: Seen) -> None:
    name = "Cursor " + secrets.token_hex(3)
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=60) as http:
        tokens = await connected_client(stack, tenant, http, seen, name)
        listed = (await http.get("/api/oauth/grants", headers=tenant.human)).json()["items"]
        mine = [g for g in listed if g["client_name"] == name]
        by_key = await http.get("/api/oauth/grants", headers=tenant.agent)
        revoked = await http.delete(f"/api/oauth/grants/{mine[0]['grant_id']}", headers=tenant.human)
        after = await http.post(
            "/mcp",
            json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
            headers={"Authorization": f"Bearer {tokens['access_token']}"},
        )
        refresh = await http.post(
            "/token",
            data={
                "grant_type": "refresh_token",
                "client_id": tokens["client_id"],
                "refresh_token": tokens["refresh_token"],
            },
        )
        still = (await http.get("/api/oauth/grants", headers=tenant.human)).json()["items"]
    assert len(mine) == 1 and mine[0]["user_email"] == tenant.email
    assert "access_token" not in str(listed) and tokens["access_token"] not in str(listed)
    assert by_key.status_code == 403
    assert revoked.status_code == 200
    assert after.status_code == 401
    assert refresh.status_code == 400 and refresh.json()["error"] == "invalid_grant"
    assert all(g["client_name"] != name for g in still)


async def test_human_signed_in_to_the_web_ui_allows_without_typing_a_password(
    stack: Stack, tenant: Tenant, seen: Seen
) -> None:
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=60) as http:
        raw = RawClient(stack.base_url, http)
        await raw.register(client_name="VS Code")
        human = Human(stack.base_url, tenant)
        try:
            await human.sign_in_to_web_ui()
            _, challenge = pkce()
            page = await human.open(raw.authorize_url(challenge))
            allowed = await human.decide(raw.authorize_url(challenge), signed_in=True)
            foreign = await human.decide(
                raw.authorize_url(challenge), signed_in=True, headers={"Origin": "https://evil.example"}
            )
        finally:
            await human.aclose()
    assert f"Signed in as <strong>{tenant.email}</strong>" in page.text
    assert allowed.status_code == 302 and "code" in redirect_params(allowed.headers["location"])
    seen.add(redirect_params(allowed.headers["location"])["code"])
    assert foreign.status_code == 403 and "location" not in foreign.headers


async def test_only_a_human_with_a_managing_role_can_allow_a_client(stack: Stack, tenant: Tenant) -> None:
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=60) as http:
        raw = RawClient(stack.base_url, http)
        await raw.register(client_name="Sneaky")
        human = Human(stack.base_url, tenant)
        try:
            _, challenge = pkce()
            by_key = await human.decide(raw.authorize_url(challenge), headers=tenant.agent)
            by_session = await human.decide(raw.authorize_url(challenge), headers=tenant.human)
        finally:
            await human.aclose()
    assert by_key.status_code == 403 and "location" not in by_key.headers
    assert by_session.status_code == 302 and "code" in redirect_params(by_session.headers["location"])
