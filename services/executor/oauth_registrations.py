"""Which OAuth client AgentPort is at an upstream authorization server: one an operator configured for a catalog
entry, or one registered dynamically (RFC 7591) and kept, secret sealed, for every org to share."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import asyncpg
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from mcp.shared.auth import OAuthMetadata

from services.executor.oauth_client import Connection, Discovered, OAuthClient
from shared.sealing import open_sealed, public_key_text, seal
from shared.settings import ExecutorSettings

CLIENT_NAME = "AgentPort"


@dataclass(frozen=True)
class OperatorClient:
    """A client id and secret an operator registered by hand with an upstream (e.g. a GitHub OAuth app)."""

    client_id: str
    client_secret: str | None = field(default=None, repr=False)
    scope: str | None = None
    auth_method: str = "client_secret_post"


def operator_clients(settings: ExecutorSettings) -> dict[str, OperatorClient]:
    """AGENTPORT_UPSTREAM_OAUTH_CLIENTS: `{"<integration id>": {"client_id": …, "client_secret": …, "scope": …}}`."""
    if settings.upstream_oauth_clients is None:
        return {}
    raw = json.loads(settings.upstream_oauth_clients.get_secret_value() or "{}")
    if not isinstance(raw, dict):
        raise ValueError("AGENTPORT_UPSTREAM_OAUTH_CLIENTS must be a JSON object keyed by integration id")
    clients: dict[str, OperatorClient] = {}
    for integration_id, entry in raw.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("client_id"), str):
            raise ValueError(f"AGENTPORT_UPSTREAM_OAUTH_CLIENTS[{integration_id!r}] needs a client_id")
        method = entry.get("auth_method") or ("client_secret_post" if entry.get("client_secret") else "none")
        clients[integration_id] = OperatorClient(
            entry["client_id"], entry.get("client_secret"), entry.get("scope"), method
        )
    return clients


def _secret_context(issuer: str, redirect_uri: str) -> str:
    return f"upstream-oauth-client|{issuer}|{redirect_uri}"


class ClientRegistry:
    """Finds or makes AgentPort's client at an authorization server, and opens its secret when needed."""

    def __init__(
        self, pool: asyncpg.Pool, key: X25519PrivateKey, oauth: OAuthClient, operators: dict[str, OperatorClient]
    ) -> None:
        self.pool = pool
        self.key = key
        self.oauth = oauth
        self.operators = operators

    async def connection(self, integration_id: str, found: Discovered, redirect_uri: str) -> Connection:
        """The connection to use for an integration: the operator's client if configured, else a registered one."""
        metadata = found.metadata
        operator = self.operators.get(integration_id)
        if operator is not None:
            client_id, method, source, scope = operator.client_id, operator.auth_method, "operator", operator.scope
        else:
            client_id, method = await self._registered(metadata, redirect_uri)
            source, scope = "registered", None
        return Connection(
            issuer=str(metadata.issuer),
            authorization_endpoint=str(metadata.authorization_endpoint),
            token_endpoint=str(metadata.token_endpoint),
            resource=found.resource,
            scope=scope or found.scope,
            client_id=client_id,
            auth_method=method,
            client_source=source,
            redirect_uri=redirect_uri,
            iss_supported=bool(metadata.authorization_response_iss_parameter_supported),
        )

    async def _registered(self, metadata: OAuthMetadata, redirect_uri: str) -> tuple[str, str]:
        issuer = str(metadata.issuer)
        row = await self.pool.fetchrow(
            "SELECT client_id, auth_method FROM upstream_oauth_clients WHERE issuer=$1 AND redirect_uri=$2",
            issuer,
            redirect_uri,
        )
        if row is not None:
            return row["client_id"], row["auth_method"]
        client_id, secret, method = await self.oauth.register(metadata, redirect_uri, CLIENT_NAME)
        sealed = seal(public_key_text(self.key), secret, _secret_context(issuer, redirect_uri)) if secret else None
        # Two replicas registering at once: the first registration wins and both use it.
        await self.pool.execute(
            """INSERT INTO upstream_oauth_clients (issuer, redirect_uri, client_id, sealed_secret, auth_method)
               VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING""",
            issuer,
            redirect_uri,
            client_id,
            sealed,
            method,
        )
        row = await self.pool.fetchrow(
            "SELECT client_id, auth_method FROM upstream_oauth_clients WHERE issuer=$1 AND redirect_uri=$2",
            issuer,
            redirect_uri,
        )
        return row["client_id"], row["auth_method"]

    async def secret(self, integration_id: str, connection: Connection) -> str | None:
        """The client secret for a connection (opened in memory only), or None for a public client."""
        if connection.client_source == "operator":
            operator = self.operators.get(integration_id)
            return operator.client_secret if operator is not None else None
        sealed = await self.pool.fetchval(
            "SELECT sealed_secret FROM upstream_oauth_clients WHERE issuer=$1 AND redirect_uri=$2",
            connection.issuer,
            connection.redirect_uri,
        )
        if not sealed:
            return None
        return open_sealed(self.key, sealed, _secret_context(connection.issuer, connection.redirect_uri))
