"""An agent installs an OAuth-protected upstream MCP server: a human signs in once, calls then work, expired
tokens are renewed unseen, and a revoked grant ends in `needs_reauth` with a clear message."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import httpx
from mcp import Client

from tests.oauth.conftest import Seen
from tests.oauth.fake_upstream import ProtectedUpstream
from tests.support.agentport import Tenant, add_custom_upstream, call, mcp_client, set_mode
from tests.support.stack import Stack
from tests.support.upstream import running_upstream


async def sign_in_upstream(authorization_url: str, seen: Seen) -> httpx.Response:
    """A human opens the link: the upstream (already signed in) approves and sends them to AgentPort's callback."""
    async with httpx.AsyncClient(timeout=60) as browser:
        approved = await browser.get(authorization_url)
        assert approved.status_code == 302, approved.text
        back = approved.headers["location"]
        seen.add(httpx.URL(back).params.get("code"))
        return await browser.get(back)


async def connect(stack: Stack, tenant: Tenant, up: ProtectedUpstream, agent: Client, seen: Seen) -> str:
    """Define the upstream, have the agent install it with OAuth and a human finish the sign-in; allow `echo`."""
    integration_id = "oauth-" + secrets.token_hex(3)
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=60) as http:
        await add_custom_upstream(http, tenant, up.mcp_url, integration_id, bearer=True)
        started = await call(agent, "install_integration", integration_id=integration_id, auth_method="oauth")
        assert started["status"] == "pending", started
        assert started["authorization_url"].startswith(f"{up.auth.url}/authorize?")
        pending = await call(agent, "get_auth_status", integration_id=integration_id)
        assert pending["auth_status"] == "pending", pending
        page = await sign_in_upstream(started["authorization_url"], seen)
        assert page.status_code == 200 and "Connected" in page.text, page.text
        # The tool list is read right after sign-in; an agent waits for `connected` before calling.
        connected = await status_of(agent, integration_id, "connected")
        assert connected["auth_status"] == "connected", connected
        await set_mode(http, tenant, integration_id, "echo", "allow")
    return integration_id


async def echo(agent: Client, integration_id: str, text: str) -> dict[str, Any]:
    return await call(
        agent,
        "call_tool",
        integration_id=integration_id,
        tool_name="echo",
        arguments={"text": text},
        additional_info="Echo a word to check the connection",
    )


async def status_of(agent: Client, integration_id: str, wanted: str) -> dict[str, Any]:
    """The auth status, once it reads `wanted` (the change travels as an event), or the last one seen."""
    for _ in range(50):
        status = await call(agent, "get_auth_status", integration_id=integration_id)
        if status.get("auth_status") == wanted:
            return status
        await asyncio.sleep(0.1)
    return status


async def test_agent_installs_an_oauth_upstream_and_calls_it(
    stack: Stack, tenant: Tenant, protected: ProtectedUpstream, seen: Seen
) -> None:
    async with mcp_client(stack.base_url, tenant.agent) as agent:
        integration_id = await connect(stack, tenant, protected, agent, seen)
        status = await call(agent, "get_auth_status", integration_id=integration_id)
        word = secrets.token_hex(4)
        result = await echo(agent, integration_id, word)
        assert status["auth_status"] == "connected" and status["auth_method"] == "oauth"
        assert result["status"] == "executed", result
        assert word in protected.calls
        assert protected.tokens_seen[-1] in protected.auth.access, "the upstream saw a token its own server issued"


async def test_expired_upstream_token_is_renewed_without_the_agent_noticing(
    stack: Stack, tenant: Tenant, protected: ProtectedUpstream, seen: Seen
) -> None:
    async with mcp_client(stack.base_url, tenant.agent) as agent:
        integration_id = await connect(stack, tenant, protected, agent, seen)
        assert (await echo(agent, integration_id, "before"))["status"] == "executed"
        refreshed = protected.auth.grants_by_type.get("refresh_token", 0)
        protected.auth.expire_access_tokens()
        result = await echo(agent, integration_id, "after-expiry")
        assert result["status"] == "executed", result
        assert protected.auth.grants_by_type.get("refresh_token", 0) == refreshed + 1
        assert "after-expiry" in protected.calls


async def test_token_about_to_expire_is_renewed_before_it_is_sent(
    stack: Stack, tenant: Tenant, protected: ProtectedUpstream, seen: Seen
) -> None:
    async with mcp_client(stack.base_url, tenant.agent) as agent:
        protected.auth.access_seconds = 5  # inside the executor's 30 s renewal margin: renewed before each use
        try:
            integration_id = await connect(stack, tenant, protected, agent, seen)
            refreshed, rejected = protected.auth.grants_by_type.get("refresh_token", 0), protected.rejected
            result = await echo(agent, integration_id, "ahead")
        finally:
            protected.auth.access_seconds = 3600
        assert result["status"] == "executed", result
        assert protected.auth.grants_by_type.get("refresh_token", 0) > refreshed
        assert protected.rejected == rejected, "no request went out with a stale token"


async def test_revoked_upstream_grant_ends_in_needs_reauth_with_a_reconnect_message(
    stack: Stack, tenant: Tenant, protected: ProtectedUpstream, seen: Seen
) -> None:
    async with mcp_client(stack.base_url, tenant.agent) as agent:
        integration_id = await connect(stack, tenant, protected, agent, seen)
        protected.auth.revoke_everything()
        result = await echo(agent, integration_id, "after-revoke")
        assert result["status"] == "error", result
        assert result["error"]["code"] == "needs_reauth", result
        assert f'agentport__start_oauth_flow(integration_id="{integration_id}")' in result["message"]
        status = await status_of(agent, integration_id, "needs_reauth")
        assert status["auth_status"] == "needs_reauth", status
        assert "start_oauth_flow" in (status["detail"] or "")
        assert "after-revoke" not in protected.calls

        restarted = await call(agent, "start_oauth_flow", integration_id=integration_id)
        assert restarted["status"] == "pending", restarted
        assert (await call(agent, "get_auth_status", integration_id=integration_id))["auth_status"] == "pending"
        page = await sign_in_upstream(restarted["authorization_url"], seen)
        assert page.status_code == 200, page.text
        assert (await status_of(agent, integration_id, "connected"))["auth_status"] == "connected"
        assert (await echo(agent, integration_id, "reconnected"))["status"] == "executed"


async def test_callback_link_works_once(stack: Stack, tenant: Tenant, protected: ProtectedUpstream, seen: Seen) -> None:
    async with mcp_client(stack.base_url, tenant.agent) as agent:
        integration_id = "oauth-" + secrets.token_hex(3)
        async with httpx.AsyncClient(base_url=stack.base_url, timeout=60) as http:
            await add_custom_upstream(http, tenant, protected.mcp_url, integration_id, bearer=True)
        started = await call(agent, "install_integration", integration_id=integration_id, auth_method="oauth")
        async with httpx.AsyncClient(timeout=60) as browser:
            back = (await browser.get(started["authorization_url"])).headers["location"]
            seen.add(httpx.URL(back).params.get("code"))
            first, second = await browser.get(back), await browser.get(back)
            forged = await browser.get(f"{stack.base_url}/api/auth/callback?code=x&state=not-a-state")
        assert first.status_code == 200
        assert second.status_code == 400 and "already used or has expired" in second.text
        assert forged.status_code == 400


async def test_an_upstream_without_oauth_is_refused_with_a_hint(stack: Stack, tenant: Tenant) -> None:
    integration_id = "no-oauth-" + secrets.token_hex(3)
    async with running_upstream(None) as plain:
        async with httpx.AsyncClient(base_url=stack.base_url, timeout=60) as http:
            await add_custom_upstream(http, tenant, plain.url, integration_id, bearer=True)
        async with mcp_client(stack.base_url, tenant.agent) as agent:
            result = await call(agent, "install_integration", integration_id=integration_id, auth_method="oauth")
            status = await agent.call_tool("agentport__get_auth_status", {"integration_id": integration_id})
    assert result["status"] == "error", result
    assert "no OAuth authorization server metadata" in result["message"]
    assert status.is_error, "nothing was installed and no sign-in is pending"
