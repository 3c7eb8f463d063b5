"""Upstream OAuth tokens: kept sealed to the executor's key, renewed before they expire or after an upstream 401,
so an agent never notices; when the upstream refuses to renew, the integration needs a human to sign in again.

A refresh holds the token row's lock, so two executors never spend the same (rotating) refresh token.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncGenerator
from datetime import datetime
from typing import Any

import asyncpg
import httpx2
import structlog
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from services.executor.oauth_client import Connection, OAuthClient, SignInRefused
from services.executor.oauth_registrations import ClientRegistry
from shared.bus import Bus
from shared.errors import UpstreamError
from shared.events import IntegrationAuthExpired, derived_id
from shared.sealing import open_sealed, public_key_text, seal

log = structlog.get_logger("executor.oauth")
Key = tuple[str, str]


def _context(key: Key) -> str:
    return f"upstream-oauth-tokens|{key[0]}|{key[1]}"


def reconnect_message(integration_id: str, reason: str) -> str:
    """What an agent is told when an upstream sign-in can no longer be renewed."""
    return (
        f"The sign-in to {integration_id} has expired and the upstream refused to renew it ({reason}). "
        f'Ask a human to reconnect it: call agentport__start_oauth_flow(integration_id="{integration_id}") '
        "and have them open the URL it returns."
    )


class UpstreamTokens:
    """The token set of each OAuth-connected integration, and keeping it fresh."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        key: X25519PrivateKey,
        bus: Bus,
        oauth: OAuthClient,
        clients: ClientRegistry,
        skew_seconds: float,
    ) -> None:
        self.pool = pool
        self.key = key
        self.bus = bus
        self.oauth = oauth
        self.clients = clients
        self.skew = skew_seconds
        self._access: dict[Key, tuple[str, float | None]] = {}

    def _seal(self, key: Key, tokens: dict[str, Any]) -> str:
        return seal(public_key_text(self.key), json.dumps(tokens), _context(key))

    def _open(self, key: Key, sealed: str) -> dict[str, Any]:
        tokens: dict[str, Any] = json.loads(open_sealed(self.key, sealed, _context(key)))
        return tokens

    async def connect(self, key: Key, connection: Connection, tokens: dict[str, Any]) -> None:
        """Keep the tokens of a completed sign-in (replacing any earlier ones)."""
        await self.pool.execute(
            """INSERT INTO upstream_tokens (org_id, integration_id, status, sealed_tokens, connection, connected_at)
               VALUES ($1, $2, 'connected', $3, $4, now())
               ON CONFLICT (org_id, integration_id) DO UPDATE SET status='connected', problem=NULL,
                 sealed_tokens=EXCLUDED.sealed_tokens, connection=EXCLUDED.connection, connected_at=now(),
                 refreshed_at=NULL""",
            key[0],
            key[1],
            self._seal(key, _kept(tokens)),
            connection.to_json(),
        )
        self._access.pop(key, None)

    async def forget(self, key: Key, before: datetime) -> None:
        """Drop the tokens of an integration removed or reinstalled without OAuth (not of a later sign-in)."""
        await self.pool.execute(
            "DELETE FROM upstream_tokens WHERE org_id=$1 AND integration_id=$2 AND connected_at < $3", *key, before
        )
        self._access.pop(key, None)

    async def uses_oauth(self, key: Key) -> bool:
        return bool(
            await self.pool.fetchval("SELECT true FROM upstream_tokens WHERE org_id=$1 AND integration_id=$2", *key)
        )

    async def problem(self, key: Key) -> str | None:
        """Why the integration needs a human to sign in again, or None."""
        problem: str | None = await self.pool.fetchval(
            "SELECT problem FROM upstream_tokens WHERE org_id=$1 AND integration_id=$2 AND status='needs_reauth'", *key
        )
        return problem

    async def access_token(self, key: Key) -> str | None:
        """A usable access token, renewed first when it is about to expire; None once a sign-in is needed."""
        cached = self._access.get(key)
        if cached is not None and not self._expiring(cached[1]):
            return cached[0]
        return await self._renew(key, rejected=None)

    async def after_rejection(self, key: Key, rejected: str) -> str | None:
        """The upstream answered 401 to `rejected`: a newer token (another replica's, or freshly renewed)."""
        self._access.pop(key, None)
        return await self._renew(key, rejected=rejected)

    def _expiring(self, expires_at: float | None) -> bool:
        return expires_at is not None and expires_at - self.skew <= time.time()

    async def _renew(self, key: Key, rejected: str | None) -> str | None:
        try:
            return await self._renew_locked(key, rejected)
        except Exception as exc:
            # Never raise into the HTTP client: the request then goes out as it is and fails visibly upstream.
            log.warning("upstream_oauth.renew_failed", integration_id=key[1], error=str(exc)[:300])
            return None

    async def _renew_locked(self, key: Key, rejected: str | None) -> str | None:
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "SELECT * FROM upstream_tokens WHERE org_id=$1 AND integration_id=$2 FOR UPDATE", *key
            )
            if row is None or row["status"] != "connected":
                return None
            tokens = self._open(key, row["sealed_tokens"])
            current, expires_at = str(tokens["access_token"]), tokens.get("expires_at")
            if current != rejected and not self._expiring(expires_at):
                self._access[key] = (current, expires_at)
                return current
            try:
                fresh = await self._refresh(key, Connection.from_json(row["connection"]), tokens)
            except SignInRefused as exc:
                expired = self._expired(key, row["connected_at"], exc.error)
                await conn.execute(
                    """UPDATE upstream_tokens SET status='needs_reauth', problem=$3
                       WHERE org_id=$1 AND integration_id=$2""",
                    *key,
                    expired.message,
                )
            except UpstreamError as exc:
                # The authorization server is unreachable: a token that has not quite expired still serves.
                log.warning("upstream_oauth.refresh_failed", integration_id=key[1], error=exc.message)
                still_valid = current != rejected and (expires_at is None or expires_at > time.time())
                return current if still_valid else None
            else:
                await conn.execute(
                    """UPDATE upstream_tokens SET sealed_tokens=$3, refreshed_at=now()
                       WHERE org_id=$1 AND integration_id=$2""",
                    *key,
                    self._seal(key, fresh),
                )
                self._access[key] = (fresh["access_token"], fresh.get("expires_at"))
                log.info("upstream_oauth.refreshed", integration_id=key[1])
                return str(fresh["access_token"])
        log.warning("upstream_oauth.needs_reauth", integration_id=key[1])
        await self.bus.publish(expired)
        return None

    def _expired(self, key: Key, connected_at: datetime, reason: str) -> IntegrationAuthExpired:
        return IntegrationAuthExpired(
            event_id=derived_id(key[0], key[1], "auth_expired", connected_at.isoformat()),
            org_id=key[0],
            integration_id=key[1],
            message=reconnect_message(key[1], reason),
        )

    async def _refresh(self, key: Key, connection: Connection, tokens: dict[str, Any]) -> dict[str, Any]:
        refresh_token = tokens.get("refresh_token")
        if not refresh_token:
            raise SignInRefused("no_refresh_token", "the upstream issued no refresh token")
        secret = await self.clients.secret(key[1], connection)
        fresh = _kept(await self.oauth.refresh(connection, secret, refresh_token))
        fresh.setdefault("refresh_token", refresh_token)  # an upstream that does not rotate keeps the old one
        return fresh

    async def auth_for(self, key: Key) -> httpx2.Auth | None:
        """Bearer authentication for an upstream MCP session, if the integration signed in with OAuth."""
        return _Bearer(self, key) if await self.uses_oauth(key) else None


def _kept(token: dict[str, Any]) -> dict[str, Any]:
    """The parts of a token response worth keeping."""
    kept = {k: token[k] for k in ("access_token", "refresh_token", "expires_at", "scope") if token.get(k)}
    if "expires_at" not in kept and token.get("expires_in"):
        kept["expires_at"] = int(time.time()) + int(token["expires_in"])
    return kept


class _Bearer(httpx2.Auth):
    """Adds the current access token; on a 401, renews it and sends the request once more."""

    def __init__(self, tokens: UpstreamTokens, key: Key) -> None:
        self.tokens = tokens
        self.key = key

    async def async_auth_flow(self, request: httpx2.Request) -> AsyncGenerator[httpx2.Request, httpx2.Response]:
        token = await self.tokens.access_token(self.key)
        if token is not None:
            request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code != 401 or token is None:
            return
        # A 401 means the upstream did not act on the request, so sending it again is safe.
        fresh = await self.tokens.after_rejection(self.key, token)
        if fresh is not None and fresh != token:
            request.headers["Authorization"] = f"Bearer {fresh}"
            yield request
