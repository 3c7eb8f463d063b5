"""Grants: a human's consent that a client may act for them on `/mcp`. Creating and revoking one is an event;
humans list the clients connected to their org and revoke them."""

from __future__ import annotations

from typing import Any

import asyncpg
import structlog

from services.gateway.identity.principals import MANAGE, READ, Principal
from shared.bus import Bus
from shared.errors import Forbidden, NotFound
from shared.events import SYSTEM, Actor, OAuthGrantCreated, OAuthGrantRevoked, OAuthRevocationReason, new_id

log = structlog.get_logger("gateway.oauth")


class Grants:
    """Commands on grants: each publishes its event and applies it at once (read-your-writes)."""

    def __init__(self, bus: Bus, pool: asyncpg.Pool, projection: Any) -> None:
        self.bus = bus
        self.pool = pool
        self.projection = projection

    async def create(
        self,
        human: Actor,
        org_id: str,
        client_id: str,
        client_name: str,
        redirect_uri: str,
        resource: str,
        scope: str,
    ) -> str:
        """Record that `human` allowed the client; returns the new grant's id."""
        assert human.user_id is not None
        event = OAuthGrantCreated(
            org_id=org_id,
            grant_id=new_id(),
            client_id=client_id,
            client_name=client_name,
            redirect_uri=redirect_uri,
            resource=resource,
            scope=scope,
            user_id=human.user_id,
            actor=human,
        )
        await self.bus.publish(event)
        await self.projection.apply(event)
        log.info("oauth.grant_created", grant_id=event.grant_id, client_id=client_id, user_id=human.user_id)
        return event.grant_id

    async def revoke(
        self, org_id: str, grant_id: str, client_id: str, reason: OAuthRevocationReason, actor: Actor = SYSTEM
    ) -> None:
        """End a grant: every token issued under it stops working at once."""
        event = OAuthGrantRevoked(org_id=org_id, grant_id=grant_id, client_id=client_id, reason=reason, actor=actor)
        await self.bus.publish(event)
        await self.projection.apply(event)
        log.info("oauth.grant_revoked", grant_id=grant_id, client_id=client_id, reason=reason)

    async def revoke_quietly(self, grant_id: str, reason: OAuthRevocationReason) -> None:
        """Revoke a grant found through a token or code (reuse detected, client revocation)."""
        row = await self.pool.fetchrow(
            "SELECT org_id, client_id FROM oauth_grants WHERE grant_id=$1 AND revoked_at IS NULL", grant_id
        )
        if row is not None:
            await self.revoke(row["org_id"], grant_id, row["client_id"], reason)

    async def list_for(self, who: Principal) -> list[dict[str, Any]]:
        """The org's connected clients (live grants), newest first."""
        who.require_human(READ, "see connected OAuth clients")
        rows = await self.pool.fetch(
            """SELECT g.*, u.email,
                      (SELECT max(t.created_at) FROM oauth_tokens t WHERE t.grant_id=g.grant_id) AS last_token_at
               FROM oauth_grants g LEFT JOIN users u ON u.user_id=g.user_id
               WHERE g.org_id=$1 AND g.revoked_at IS NULL ORDER BY g.created_at DESC""",
            who.org_id,
        )
        return [
            {
                "grant_id": r["grant_id"],
                "client_id": r["client_id"],
                "client_name": r["client_name"],
                "redirect_uri": r["redirect_uri"],
                "user_id": r["user_id"],
                "user_email": r["email"],
                "scope": r["scope"],
                "created_at": r["created_at"].isoformat(),
                "last_token_at": r["last_token_at"].isoformat() if r["last_token_at"] else None,
            }
            for r in rows
        ]

    async def revoke_for(self, who: Principal, grant_id: str) -> None:
        """A human revokes a connected client: owners and admins any of the org's, others only their own."""
        who.require_human(READ, "revoke OAuth clients")
        row = await self.pool.fetchrow(
            "SELECT * FROM oauth_grants WHERE grant_id=$1 AND org_id=$2", grant_id, who.org_id
        )
        if row is None:
            raise NotFound(f"no connected OAuth client {grant_id}")
        if who.role not in MANAGE and row["user_id"] != who.actor.user_id:
            raise Forbidden(f"your role ({who.role}) can revoke only the clients you connected")
        if row["revoked_at"] is None:
            await self.revoke(who.org_id, grant_id, row["client_id"], "revoked_by_human", who.actor)
