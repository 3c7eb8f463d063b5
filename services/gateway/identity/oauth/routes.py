"""The authorization server's HTTP surface: discovery (RFC 8414, RFC 9728), registration, authorize, token,
revocation, and the REST routes where humans see and revoke connected clients."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import structlog
from aiohttp import web
from authlib.oauth2.rfc6749 import OAuth2Error

from services.gateway.identity.accounts import Accounts
from services.gateway.identity.oauth import store
from services.gateway.identity.oauth.adapter import CORS, Bridge, json_request, oauth_request, to_response
from services.gateway.identity.oauth.consent import Consent
from services.gateway.identity.oauth.grants import Grants
from services.gateway.identity.oauth.server import AUTH_METHODS, GRANT_TYPES, GatewayAuthorizationServer, Lifetimes
from services.gateway.identity.principals import principal
from shared.bus import Bus
from shared.settings import GatewaySettings

log = structlog.get_logger("gateway.oauth")

CSRF_KEY_NAME = "consent-csrf"


def authorization_server_metadata(issuer: str) -> dict[str, Any]:
    """RFC 8414 metadata: what a client needs to register, authorize and get tokens here."""
    return {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/authorize",
        "token_endpoint": f"{issuer}/token",
        "registration_endpoint": f"{issuer}/register",
        "revocation_endpoint": f"{issuer}/revoke",
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": list(GRANT_TYPES),
        "token_endpoint_auth_methods_supported": AUTH_METHODS,
        "revocation_endpoint_auth_methods_supported": AUTH_METHODS,
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": True,
    }


def protected_resource_metadata(issuer: str) -> dict[str, Any]:
    """RFC 9728 metadata for `/mcp`: which authorization server issues its tokens."""
    return {
        "resource": f"{issuer}/mcp",
        "authorization_servers": [issuer],
        "bearer_methods_supported": ["header"],
        "resource_name": "AgentPort",
    }


class OAuthRoutes:
    """Builds the authorization server and serves its routes."""

    def __init__(self, server: GatewayAuthorizationServer, consent: Consent, grants: Grants) -> None:
        self.server = server
        self.consent = consent
        self.grants = grants
        self.bridge = server.bridge

    @classmethod
    async def create(
        cls, settings: GatewaySettings, bus: Bus, pool: Any, projection: Any, accounts: Accounts, two_factor: Any
    ) -> OAuthRoutes:
        """The server and its pages; `two_factor` checks the code of a human who signs in on the consent page."""
        issuer = settings.base_url.rstrip("/")
        bridge = Bridge(asyncio.get_running_loop())
        grants = Grants(bus, pool, projection)
        lifetimes = Lifetimes(
            code=settings.oauth_code_seconds,
            access=settings.oauth_access_token_seconds,
            refresh=settings.oauth_refresh_token_seconds,
        )
        server = GatewayAuthorizationServer(pool, bridge, grants, issuer, f"{issuer}/mcp", lifetimes)
        key = await store.signing_key(pool, CSRF_KEY_NAME, secrets.token_hex(32))
        consent = Consent(server, bridge, accounts, grants, bytes.fromhex(key), settings, two_factor)
        return cls(server, consent, grants)

    async def close(self) -> None:
        self.bridge.close()

    def routes(self) -> list[web.RouteDef]:
        cors_paths = (
            "/.well-known/oauth-authorization-server",
            "/.well-known/oauth-protected-resource",
            "/.well-known/oauth-protected-resource/mcp",
            "/register",
            "/token",
            "/revoke",
        )
        return [
            web.get("/.well-known/oauth-authorization-server", self.as_metadata),
            web.get("/.well-known/oauth-protected-resource", self.resource_metadata),
            web.get("/.well-known/oauth-protected-resource/mcp", self.resource_metadata),
            web.post("/register", self.register),
            web.get("/authorize", self.consent.show),
            web.post("/authorize", self.consent.decide),
            web.post("/token", self.token),
            web.post("/revoke", self.revoke),
            *(web.options(path, self.preflight) for path in cors_paths),
            web.get("/api/oauth/grants", self.list_grants),
            web.delete("/api/oauth/grants/{grant_id}", self.revoke_grant),
        ]

    async def as_metadata(self, request: web.Request) -> web.Response:
        return web.json_response(authorization_server_metadata(self.server.issuer), headers=CORS)

    async def resource_metadata(self, request: web.Request) -> web.Response:
        return web.json_response(protected_resource_metadata(self.server.issuer), headers=CORS)

    async def preflight(self, request: web.Request) -> web.Response:
        return web.Response(status=204, headers={**CORS, "Access-Control-Allow-Methods": "GET, POST, OPTIONS"})

    async def register(self, request: web.Request) -> web.Response:
        """RFC 7591: the response is the only place a client secret is ever shown."""
        try:
            oreq = await json_request(request, self.server.issuer)
            status, body, headers = await self.bridge.run(
                lambda: self.server.create_endpoint_response("client_registration", oreq)
            )
        except OAuth2Error as error:
            return to_response(*error())
        if status == 201:
            log.info(
                "oauth.client_registered",
                client_id=body.get("client_id"),
                client_name=body.get("client_name"),
                auth_method=body.get("token_endpoint_auth_method"),
                ip=request.remote,
            )
        return to_response(status, body, headers)

    async def token(self, request: web.Request) -> web.Response:
        try:
            oreq = await oauth_request(request, self.server.issuer)
            result = await self.bridge.run(lambda: self.server.create_token_response(oreq))
        except OAuth2Error as error:
            return to_response(*error())
        status, body, headers = result
        if status != 200:
            log.info("oauth.token_refused", error=body.get("error"), grant_type=oreq.payload.grant_type)
        return to_response(status, body, headers)

    async def revoke(self, request: web.Request) -> web.Response:
        try:
            oreq = await oauth_request(request, self.server.issuer)
            result = await self.bridge.run(lambda: self.server.create_endpoint_response("revocation", oreq))
        except OAuth2Error as error:
            return to_response(*error())
        return to_response(*result)

    async def list_grants(self, request: web.Request) -> web.Response:
        """The OAuth clients connected to the caller's org."""
        items = await self.grants.list_for(principal(request))
        return web.json_response({"items": items, "count": len(items)})

    async def revoke_grant(self, request: web.Request) -> web.Response:
        await self.grants.revoke_for(principal(request), request.match_info["grant_id"])
        return web.json_response({"status": "revoked"})
