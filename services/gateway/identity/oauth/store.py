"""The authorization server's records: registered clients, codes and tokens (secrets only as hashes), and the
grants a human consented to. The objects here are what authlib's grant classes are handed."""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import asyncpg
from authlib.oauth2.rfc6749 import AuthorizationCodeMixin, ClientMixin, TokenMixin

from services.gateway.identity.oauth import redirect_uris
from services.gateway.identity.secrets_at_rest import token_hash
from shared.events import utcnow


@dataclass(frozen=True)
class Client(ClientMixin):  # type: ignore[misc]
    """A registered OAuth client (RFC 7591); `secret_hash` only for confidential clients."""

    client_id: str
    client_name: str
    redirect_uris: tuple[str, ...]
    grant_types: tuple[str, ...]
    token_endpoint_auth_method: str
    secret_hash: str | None = field(default=None, repr=False)

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        return self.redirect_uris[0] if len(self.redirect_uris) == 1 else None

    def get_allowed_scope(self, scope: str | None) -> str:
        # Scopes carry no meaning here (a grant acts as the human's API key would); the request is echoed.
        return scope or ""

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uris.matches(self.redirect_uris, redirect_uri)

    def check_client_secret(self, client_secret: str) -> bool:
        return self.secret_hash is not None and hmac.compare_digest(self.secret_hash, token_hash(client_secret))

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method == self.token_endpoint_auth_method

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in self.grant_types


@dataclass(frozen=True)
class AuthorizationCode(AuthorizationCodeMixin):  # type: ignore[misc]
    """A consumed authorization code: what it was issued for."""

    grant_id: str
    client_id: str
    redirect_uri: str | None
    code_challenge: str
    resource: str
    scope: str
    code_challenge_method: str = "S256"

    def get_redirect_uri(self) -> str | None:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope


@dataclass(frozen=True)
class StoredToken(TokenMixin):  # type: ignore[misc]
    """An access or refresh token as stored (by hash)."""

    token_hash: str
    kind: str
    grant_id: str
    client_id: str
    expires_at: datetime
    used_at: datetime | None
    revoked_at: datetime | None
    scope: str
    resource: str
    grant_revoked: bool

    def check_client(self, client: Client) -> bool:
        return bool(client.client_id == self.client_id)

    def get_scope(self) -> str:
        return self.scope

    def get_expires_in(self) -> int:
        return max(0, int((self.expires_at - utcnow()).total_seconds()))

    def is_expired(self) -> bool:
        return self.expires_at <= utcnow()

    def is_revoked(self) -> bool:
        return self.revoked_at is not None or self.grant_revoked


@dataclass(frozen=True)
class GrantHolder:
    """The human a grant acts for (authlib's `user`)."""

    grant_id: str
    org_id: str
    user_id: str
    client_id: str


# --- clients ---------------------------------------------------------------------------------


async def insert_client(pool: asyncpg.Pool, client: Client, metadata: dict[str, Any]) -> None:
    await pool.execute(
        """INSERT INTO oauth_clients (client_id, client_name, redirect_uris, grant_types, token_endpoint_auth_method,
                                      secret_hash, metadata) VALUES ($1, $2, $3, $4, $5, $6, $7)""",
        client.client_id,
        client.client_name,
        list(client.redirect_uris),
        list(client.grant_types),
        client.token_endpoint_auth_method,
        client.secret_hash,
        metadata,
    )


async def get_client(pool: asyncpg.Pool, client_id: str) -> Client | None:
    row = await pool.fetchrow("SELECT * FROM oauth_clients WHERE client_id=$1", client_id)
    if row is None:
        return None
    return Client(
        client_id=row["client_id"],
        client_name=row["client_name"],
        redirect_uris=tuple(row["redirect_uris"]),
        grant_types=tuple(row["grant_types"]),
        token_endpoint_auth_method=row["token_endpoint_auth_method"],
        secret_hash=row["secret_hash"],
    )


# --- codes -----------------------------------------------------------------------------------


async def save_code(pool: asyncpg.Pool, code: str, grant_id: str, item: AuthorizationCode, ttl: int) -> None:
    await pool.execute(
        """INSERT INTO oauth_codes (code_hash, grant_id, client_id, redirect_uri, code_challenge, resource, scope,
                                    expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, now() + $8::interval)""",
        token_hash(code),
        grant_id,
        item.client_id,
        item.redirect_uri,
        item.code_challenge,
        item.resource,
        item.scope,
        timedelta(seconds=ttl),
    )


async def consume_code(pool: asyncpg.Pool, code: str, client_id: str) -> tuple[AuthorizationCode | None, str | None]:
    """Use a code once: (the code, None), or (None, the grant id) when it was already used, or (None, None)."""
    row = await pool.fetchrow(
        """UPDATE oauth_codes SET used_at=now() WHERE code_hash=$1 AND client_id=$2 AND used_at IS NULL
           AND expires_at > now() RETURNING *""",
        token_hash(code),
        client_id,
    )
    if row is None:
        reused = await pool.fetchval(
            "SELECT grant_id FROM oauth_codes WHERE code_hash=$1 AND client_id=$2 AND used_at IS NOT NULL",
            token_hash(code),
            client_id,
        )
        return None, reused
    return AuthorizationCode(
        grant_id=row["grant_id"],
        client_id=row["client_id"],
        redirect_uri=row["redirect_uri"],
        code_challenge=row["code_challenge"],
        resource=row["resource"],
        scope=row["scope"],
    ), None


# --- tokens ----------------------------------------------------------------------------------


async def save_tokens(
    pool: asyncpg.Pool, grant_id: str, client_id: str, access: tuple[str, int], refresh: tuple[str, int] | None
) -> None:
    """Store a new access token (and refresh token) by hash; long-expired ones of the grant are dropped."""
    rows = [(token_hash(access[0]), "access", grant_id, client_id, utcnow() + timedelta(seconds=access[1]))]
    if refresh is not None:
        rows.append((token_hash(refresh[0]), "refresh", grant_id, client_id, utcnow() + timedelta(seconds=refresh[1])))
    async with pool.acquire() as conn, conn.transaction():
        await conn.executemany(
            "INSERT INTO oauth_tokens (token_hash, kind, grant_id, client_id, expires_at) VALUES ($1, $2, $3, $4, $5)",
            rows,
        )
        await conn.execute(
            "DELETE FROM oauth_tokens WHERE grant_id=$1 AND expires_at < now() - interval '1 day'", grant_id
        )


async def find_token(pool: asyncpg.Pool, token: str, kind: str | None = None) -> StoredToken | None:
    row = await pool.fetchrow(
        """SELECT t.*, g.scope, g.resource, g.revoked_at IS NOT NULL AS grant_revoked
           FROM oauth_tokens t JOIN oauth_grants g USING (grant_id)
           WHERE t.token_hash=$1 AND ($2::text IS NULL OR t.kind=$2)""",
        token_hash(token),
        kind,
    )
    if row is None:
        return None
    return StoredToken(
        token_hash=row["token_hash"],
        kind=row["kind"],
        grant_id=row["grant_id"],
        client_id=row["client_id"],
        expires_at=row["expires_at"],
        used_at=row["used_at"],
        revoked_at=row["revoked_at"],
        scope=row["scope"],
        resource=row["resource"],
        grant_revoked=row["grant_revoked"],
    )


async def use_refresh_token(pool: asyncpg.Pool, token: StoredToken) -> bool:
    """Mark a refresh token used (rotated); False if someone used it first."""
    done = await pool.fetchval(
        "UPDATE oauth_tokens SET used_at=now() WHERE token_hash=$1 AND used_at IS NULL RETURNING true",
        token.token_hash,
    )
    return bool(done)


async def revoke_token(pool: asyncpg.Pool, token: StoredToken) -> None:
    await pool.execute("UPDATE oauth_tokens SET revoked_at=now() WHERE token_hash=$1", token.token_hash)


async def grant_holder(pool: asyncpg.Pool, grant_id: str) -> GrantHolder | None:
    """The live grant's holder, or None once it is revoked."""
    row = await pool.fetchrow("SELECT * FROM oauth_grants WHERE grant_id=$1 AND revoked_at IS NULL", grant_id)
    if row is None:
        return None
    return GrantHolder(grant_id=grant_id, org_id=row["org_id"], user_id=row["user_id"], client_id=row["client_id"])


async def grant_org(pool: asyncpg.Pool, grant_id: str) -> str | None:
    org: str | None = await pool.fetchval("SELECT org_id FROM oauth_grants WHERE grant_id=$1", grant_id)
    return org


async def signing_key(pool: asyncpg.Pool, name: str, fresh: str) -> str:
    """A server secret shared by every gateway replica, created on first use."""
    await pool.execute("INSERT INTO oauth_keys (name, secret) VALUES ($1, $2) ON CONFLICT DO NOTHING", name, fresh)
    secret: str = await pool.fetchval("SELECT secret FROM oauth_keys WHERE name=$1", name)
    return secret
