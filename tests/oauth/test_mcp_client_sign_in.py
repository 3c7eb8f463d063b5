"""The official MCP SDK client signs in to the gateway with OAuth, from a bare 401 to a tool call, and refreshes."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import asyncpg
import httpx
from mcp import Client
from mcp.client.auth import OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientMetadata

from tests.oauth.clients import LOOPBACK_REDIRECT, Human, MemoryStorage, redirect_params
from tests.oauth.conftest import Seen
from tests.support.agentport import Tenant, call
from tests.support.stack import Stack


def sdk_provider(stack: Stack, tenant: Tenant, storage: MemoryStorage, seen: Seen) -> tuple[OAuthClientProvider, Human]:
    """The SDK's provider, whose browser step is a human allowing the client on the consent page."""
    human = Human(stack.base_url, tenant)
    answers: asyncio.Queue[AuthorizationCodeResult] = asyncio.Queue()

    async def open_browser(url: str) -> None:
        response = await human.decide(url)
        assert response.status_code == 302, response.text
        params = redirect_params(response.headers["location"])
        seen.add(params.get("code"))
        await answers.put(AuthorizationCodeResult(code=params["code"], state=params.get("state"), iss=params["iss"]))

    metadata = OAuthClientMetadata(
        client_name="SDK test client",
        redirect_uris=[LOOPBACK_REDIRECT],  # type: ignore[list-item]
        grant_types=["authorization_code", "refresh_token"],
        response_types=["code"],
        token_endpoint_auth_method="none",
    )
    provider = OAuthClientProvider(
        server_url=f"{stack.base_url}/mcp",
        client_metadata=metadata,
        storage=storage,
        redirect_handler=open_browser,
        callback_handler=answers.get,
    )
    return provider, human


@contextlib.asynccontextmanager
async def signed_in(stack: Stack, provider: OAuthClientProvider) -> AsyncIterator[Client]:
    http = create_mcp_http_client(auth=provider)
    async with http, Client(streamable_http_client(f"{stack.base_url}/mcp", http_client=http)) as client:
        yield client


async def test_unauthenticated_mcp_points_to_the_resource_metadata(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.base_url) as http:
        r = await http.post("/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
        prm = (await http.get("/.well-known/oauth-protected-resource/mcp")).json()
        asm = (await http.get("/.well-known/oauth-authorization-server")).json()
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"] == (
        f'Bearer resource_metadata="{stack.base_url}/.well-known/oauth-protected-resource/mcp"'
    )
    assert prm["resource"] == f"{stack.base_url}/mcp"
    assert prm["authorization_servers"] == [stack.base_url]
    assert asm["issuer"] == stack.base_url
    assert asm["code_challenge_methods_supported"] == ["S256"]
    assert {"authorization_code", "refresh_token"} == set(asm["grant_types_supported"])
    assert asm["registration_endpoint"] == f"{stack.base_url}/register"


async def test_sdk_client_goes_from_401_to_a_tool_call_and_refreshes(
    stack: Stack, tenant: Tenant, seen: Seen, gateway_db: asyncpg.Connection
) -> None:
    storage = MemoryStorage()
    provider, human = sdk_provider(stack, tenant, storage, seen)
    try:
        async with signed_in(stack, provider) as client:
            tools = (await client.list_tools()).tools
            installed = await call(client, "list_installed_integrations")
        assert "agentport__call_tool" in {t.name for t in tools}
        assert installed["status"] == "ok"
        assert storage.client is not None and storage.tokens is not None
        first = storage.tokens
        assert first.access_token.startswith("apo_") and first.refresh_token
        seen.add(first.access_token, first.refresh_token)

        # The access token expires: the server refuses it, and the SDK refreshes before its next request.
        await gateway_db.execute(
            "UPDATE oauth_tokens SET expires_at = now() - interval '1 second' WHERE kind='access' AND client_id=$1",
            storage.client.client_id,
        )
        provider.context.token_expiry_time = time.time() - 1
        async with signed_in(stack, provider) as client:
            again = await call(client, "list_installed_integrations")
        assert again["status"] == "ok"
        second = storage.tokens
        assert second is not None and second.access_token != first.access_token
        assert second.refresh_token and second.refresh_token != first.refresh_token
        seen.add(second.access_token, second.refresh_token)
        assert len(storage.history) == 2, "one sign-in, one refresh: no second consent"
    finally:
        await human.aclose()
