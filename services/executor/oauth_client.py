"""AgentPort as an OAuth client of upstream MCP servers: discover where a server's tokens come from (RFC 9728,
RFC 8414), register with that authorization server (RFC 7591), build the authorization URL (PKCE S256, RFC 8707
`resource`), and exchange or refresh tokens. Every request goes through the SSRF guard."""

from __future__ import annotations

import secrets
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx2
from authlib.integrations.base_client import OAuthError
from authlib.integrations.httpx_client import AsyncOAuth2Client
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from mcp.client.auth.utils import (
    build_oauth_authorization_server_metadata_discovery_urls,
    build_protected_resource_metadata_discovery_urls,
    extract_field_from_www_auth,
)
from mcp.shared.auth import OAuthMetadata, ProtectedResourceMetadata
from mcp.shared.auth_utils import check_resource_allowed, resource_url_from_server_url
from pydantic import ValidationError

from shared.errors import BadRequest, UpstreamError
from shared.netguard import AllowList, guarded_client, guarded_transport

SECRET_METHODS = ("client_secret_basic", "client_secret_post")
_PREFERRED_METHODS = (*SECRET_METHODS, "none")
_PROBE = {
    "jsonrpc": "2.0",
    "id": 0,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "AgentPort", "version": "1"},
    },
}


class SignInRefused(UpstreamError):
    """The upstream's authorization server refused a grant (RFC 6749 §5.2 `error`); a human must sign in again."""

    def __init__(self, error: str, description: str | None) -> None:
        super().__init__(f"the upstream refused the sign-in ({error}{': ' + description if description else ''})")
        self.error = error


@dataclass(frozen=True)
class Connection:
    """Where an upstream's tokens come from and which client AgentPort is there (no secret: see `client_secret`)."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    resource: str
    scope: str | None
    client_id: str
    auth_method: str
    client_source: str  # "registered" (RFC 7591, secret sealed in our table) or "operator" (from settings)
    redirect_uri: str
    iss_supported: bool = False

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Connection:
        return cls(**data)


@dataclass(frozen=True)
class Discovered:
    """What the upstream publishes about signing in to it."""

    resource: str
    scope: str | None
    metadata: OAuthMetadata


class OAuthClient:
    """The protocol steps; knows nothing of storage."""

    def __init__(self, allow: AllowList, timeout: float) -> None:
        self.allow = allow
        self.timeout = timeout

    def _http(self) -> httpx2.AsyncClient:
        return guarded_client(self.allow, lib="httpx2", timeout=self.timeout, follow_redirects=False)

    def _oauth(self, connection: Connection, secret: str | None) -> AsyncOAuth2Client:
        return AsyncOAuth2Client(
            client_id=connection.client_id,
            client_secret=secret,
            token_endpoint_auth_method=connection.auth_method,
            redirect_uri=connection.redirect_uri,
            code_challenge_method="S256",
            transport=guarded_transport(self.allow, lib="httpx2"),
            trust_env=False,
            timeout=self.timeout,
        )

    async def discover(self, mcp_url: str) -> Discovered:
        """Find the upstream's authorization server, as an MCP client does: 401 challenge, then well-known URLs."""
        async with self._http() as http:
            challenge = await self._challenge(http, mcp_url)
            hint = extract_field_from_www_auth(challenge, "resource_metadata") if challenge is not None else None
            prm = await self._resource_metadata(http, build_protected_resource_metadata_discovery_urls(hint, mcp_url))
            if prm is not None:
                resource = str(prm.resource)
                if not check_resource_allowed(resource_url_from_server_url(mcp_url), resource):
                    raise UpstreamError(f"the upstream says its resource is {resource}, which is not {mcp_url}")
                issuer = str(prm.authorization_servers[0])
            else:
                resource, issuer = resource_url_from_server_url(mcp_url), None
            metadata = await self._server_metadata(http, issuer, mcp_url)
        scope = extract_field_from_www_auth(challenge, "scope") if challenge is not None else None
        if scope is None and prm is not None and prm.scopes_supported:
            scope = " ".join(prm.scopes_supported)
        if "S256" not in (metadata.code_challenge_methods_supported or []):
            raise UpstreamError("the upstream's authorization server does not support PKCE with S256; refused")
        return Discovered(resource=resource, scope=scope, metadata=metadata)

    async def _challenge(self, http: httpx2.AsyncClient, mcp_url: str) -> httpx2.Response | None:
        headers = {"Accept": "application/json, text/event-stream"}
        try:
            response = await http.post(mcp_url, json=_PROBE, headers=headers)
        except httpx2.HTTPError as exc:
            raise UpstreamError(f"the upstream could not be reached: {type(exc).__name__}") from exc
        return response if response.status_code == 401 else None

    async def _resource_metadata(self, http: httpx2.AsyncClient, urls: list[str]) -> ProtectedResourceMetadata | None:
        for url in urls:
            response = await http.get(url)
            if response.status_code == 200:
                try:
                    return ProtectedResourceMetadata.model_validate_json(response.content)
                except ValidationError:
                    continue
        return None

    async def _server_metadata(self, http: httpx2.AsyncClient, issuer: str | None, mcp_url: str) -> OAuthMetadata:
        for url in build_oauth_authorization_server_metadata_discovery_urls(issuer, mcp_url):
            response = await http.get(url)
            if response.status_code != 200:
                continue
            try:
                metadata = OAuthMetadata.model_validate_json(response.content)
            except ValidationError:
                continue
            expected = issuer or f"{urlsplit(mcp_url).scheme}://{urlsplit(mcp_url).netloc}"
            if str(metadata.issuer).rstrip("/") != expected.rstrip("/"):
                raise UpstreamError(f"the authorization server's metadata names {metadata.issuer}, not {expected}")
            return metadata
        raise BadRequest(
            "the upstream publishes no OAuth authorization server metadata, so it cannot be signed in to with "
            "OAuth; install it with a token (or with auth_method 'none' if it needs no credential)"
        )

    async def register(
        self, metadata: OAuthMetadata, redirect_uri: str, client_name: str
    ) -> tuple[str, str | None, str]:
        """Register AgentPort dynamically; returns (client_id, client_secret or None, token endpoint auth method)."""
        if metadata.registration_endpoint is None:
            raise BadRequest(
                "the upstream's authorization server does not support dynamic registration; an operator must "
                "configure a client id and secret for it (AGENTPORT_UPSTREAM_OAUTH_CLIENTS)"
            )
        offered = metadata.token_endpoint_auth_methods_supported or ["client_secret_basic"]
        method = next((m for m in _PREFERRED_METHODS if m in offered), "none")
        body = {
            "client_name": client_name,
            "redirect_uris": [redirect_uri],
            "response_types": ["code"],
            "grant_types": ["authorization_code", "refresh_token"],
            "token_endpoint_auth_method": method,
        }
        async with self._http() as http:
            response = await http.post(str(metadata.registration_endpoint), json=body)
        if response.status_code not in (200, 201):
            raise UpstreamError(f"the upstream refused to register AgentPort as a client (HTTP {response.status_code})")
        info = response.json()
        client_id, secret = info.get("client_id"), info.get("client_secret")
        method = info.get("token_endpoint_auth_method") or method
        usable = method in _PREFERRED_METHODS and (method not in SECRET_METHODS or bool(secret))
        if not isinstance(client_id, str) or not usable:
            raise UpstreamError("the upstream's registration answer cannot be used (no client id, or no secret)")
        return client_id, secret, method

    def authorization_url(self, connection: Connection, state: str) -> tuple[str, str]:
        """The URL a human opens to sign in, and the PKCE verifier to keep for the exchange."""
        verifier = secrets.token_urlsafe(64)
        url = prepare_grant_uri(
            connection.authorization_endpoint,
            client_id=connection.client_id,
            response_type="code",
            redirect_uri=connection.redirect_uri,
            scope=connection.scope,
            state=state,
            code_challenge=create_s256_code_challenge(verifier),
            code_challenge_method="S256",
            resource=connection.resource,
        )
        return str(url), verifier

    async def exchange(self, connection: Connection, secret: str | None, code: str, verifier: str) -> dict[str, Any]:
        """Trade an authorization code for tokens."""
        async with self._oauth(connection, secret) as client:
            return await self._token_call(
                client.fetch_token(
                    connection.token_endpoint,
                    grant_type="authorization_code",
                    code=code,
                    code_verifier=verifier,
                    redirect_uri=connection.redirect_uri,
                    resource=connection.resource,
                )
            )

    async def refresh(self, connection: Connection, secret: str | None, refresh_token: str) -> dict[str, Any]:
        """New tokens for a refresh token (the upstream may rotate it)."""
        async with self._oauth(connection, secret) as client:
            return await self._token_call(
                client.refresh_token(
                    connection.token_endpoint,
                    refresh_token=refresh_token,
                    resource=connection.resource,
                )
            )

    async def _token_call(self, pending: Any) -> dict[str, Any]:
        try:
            token = await pending
        except OAuthError as exc:
            raise SignInRefused(str(exc.error), exc.description) from None
        except httpx2.HTTPStatusError as exc:
            raise UpstreamError(f"the upstream's token endpoint failed (HTTP {exc.response.status_code})") from None
        except httpx2.HTTPError as exc:
            raise UpstreamError(f"the upstream's token endpoint could not be reached: {type(exc).__name__}") from None
        if not token.get("access_token"):
            raise UpstreamError("the upstream's token endpoint answered without an access token")
        return dict(token)
