"""Signing in to an upstream MCP server, the executor's half: it prepares the authorization URL (discovery,
registration, PKCE) and, once the human is back at the gateway's callback, exchanges the code for tokens.

The gateway only relays the browser: the PKCE verifier, the client secret and the tokens never leave this
service, and the code arrives sealed to its key.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import asyncpg
import structlog
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from services.executor.oauth_client import Connection, OAuthClient
from services.executor.oauth_registrations import ClientRegistry
from services.executor.token_refresh import UpstreamTokens
from shared.errors import BadRequest, UpstreamError
from shared.sealing import open_sealed, public_key_text, seal, seal_context

log = structlog.get_logger("executor.oauth")
DEFAULT_FLOW_SECONDS = 900


def code_context(org_id: str, integration_id: str, flow_id: str) -> str:
    """What a sealed authorization code is bound to (the gateway seals with the same context)."""
    return f"{seal_context(org_id, integration_id)}/oauth-code/{flow_id}"


def _verifier_context(org_id: str, integration_id: str, flow_id: str) -> str:
    return f"{seal_context(org_id, integration_id)}/oauth-verifier/{flow_id}"


def _ids(payload: dict[str, Any]) -> tuple[str, str, str]:
    return str(payload["org_id"]), str(payload["integration_id"]), str(payload["flow_id"])


class OAuthFlows:
    """Answers `executor.oauth_begin` and `executor.oauth_complete`."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        key: X25519PrivateKey,
        oauth: OAuthClient,
        clients: ClientRegistry,
        tokens: UpstreamTokens,
    ) -> None:
        self.pool = pool
        self.key = key
        self.oauth = oauth
        self.clients = clients
        self.tokens = tokens

    async def begin(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Discover the upstream's authorization server and return the URL a human opens to sign in."""
        org_id, integration_id, flow_id = _ids(payload)
        found = await self.oauth.discover(str(payload["mcp_url"]))
        connection = await self.clients.connection(integration_id, found, str(payload["redirect_uri"]))
        url, verifier = self.oauth.authorization_url(connection, str(payload["state"]))
        sealed = seal(public_key_text(self.key), verifier, _verifier_context(org_id, integration_id, flow_id))
        ttl = timedelta(seconds=int(payload.get("expires_in") or DEFAULT_FLOW_SECONDS))
        await self.pool.execute(
            """INSERT INTO upstream_oauth_flows (flow_id, org_id, integration_id, sealed_verifier, connection,
                                                 expires_at) VALUES ($1, $2, $3, $4, $5, now() + $6::interval)""",
            flow_id,
            org_id,
            integration_id,
            sealed,
            connection.to_json(),
            ttl,
        )
        await self.pool.execute("DELETE FROM upstream_oauth_flows WHERE expires_at < now() - interval '1 day'")
        log.info(
            "upstream_oauth.flow_started",
            integration_id=integration_id,
            flow_id=flow_id,
            issuer=connection.issuer,
            client_source=connection.client_source,
        )
        return {"authorization_url": url, "issuer": connection.issuer}

    async def complete(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Exchange the code the human brought back for tokens, and keep them sealed."""
        org_id, integration_id, flow_id = _ids(payload)
        flow = await self.pool.fetchrow(
            """UPDATE upstream_oauth_flows SET used_at=now() WHERE flow_id=$1 AND org_id=$2 AND integration_id=$3
               AND used_at IS NULL AND expires_at > now() RETURNING *""",
            flow_id,
            org_id,
            integration_id,
        )
        if flow is None:
            raise BadRequest("this sign-in expired or was already completed; start it again")
        connection = Connection.from_json(flow["connection"])
        issuer = payload.get("iss")
        if (issuer is not None and issuer != connection.issuer) or (issuer is None and connection.iss_supported):
            raise UpstreamError("the sign-in came back from an unexpected authorization server (iss mismatch)")
        code = open_sealed(self.key, str(payload["sealed_code"]), code_context(org_id, integration_id, flow_id))
        verifier = open_sealed(self.key, flow["sealed_verifier"], _verifier_context(org_id, integration_id, flow_id))
        secret = await self.clients.secret(integration_id, connection)
        tokens = await self.oauth.exchange(connection, secret, code, verifier)
        await self.tokens.connect((org_id, integration_id), connection, tokens)
        log.info(
            "upstream_oauth.connected",
            integration_id=integration_id,
            flow_id=flow_id,
            refreshable=bool(tokens.get("refresh_token")),
        )
        return {"status": "connected"}
