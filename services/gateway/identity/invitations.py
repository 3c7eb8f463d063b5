"""Invitations into an org: an owner or admin invites someone with a role; the link is shown once."""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

import asyncpg

from services.gateway.identity.accounts import Accounts
from services.gateway.identity.principals import Principal
from services.gateway.identity.roles import ROLES, check_invite
from services.gateway.identity.secrets_at_rest import token_hash
from shared.bus import Bus
from shared.errors import BadRequest, Conflict, NotFound
from shared.events import Role, UserInvited, new_id, utcnow

INVITE_PREFIX = "apinv_"


class Invitations:
    def __init__(self, bus: Bus, pool: asyncpg.Pool, accounts: Accounts, base_url: str, ttl_seconds: int) -> None:
        self.bus = bus
        self.pool = pool
        self.accounts = accounts
        self.base_url = base_url.rstrip("/")
        self.ttl = timedelta(seconds=ttl_seconds)

    def link(self, token: str) -> str:
        return f"{self.base_url}/invite/{token}"

    async def invite(self, who: Principal, email: str, role: str) -> dict[str, Any]:
        """Invite `email` with `role`; returns the one-time link (stored only as a hash)."""
        if role not in ROLES:
            raise BadRequest(f"role must be one of {', '.join(ROLES)}")
        checked: Role = role
        check_invite(who, checked)
        email = email.strip().lower()
        if "@" not in email or len(email) > 320:
            raise BadRequest("email must look like name@example.com")
        if await self.pool.fetchval("SELECT 1 FROM users WHERE email=$1", email):
            raise Conflict(f"a user with email {email} already exists")
        token = INVITE_PREFIX + secrets.token_urlsafe(32)
        event = UserInvited(
            org_id=who.org_id,
            invitation_id=new_id(),
            email=email,
            role=checked,
            expires_at=utcnow() + self.ttl,
            actor=who.actor,
        )
        await self.pool.execute(
            """INSERT INTO invitations (invitation_id, org_id, email, role, token_hash, invited_by, expires_at)
               VALUES ($1, $2, $3, $4, $5, $6, $7)""",
            event.invitation_id,
            who.org_id,
            email,
            checked,
            token_hash(token),
            who.actor.id,
            event.expires_at,
        )
        await self.bus.publish(event)
        return {
            **_view_of(event.invitation_id, email, checked, event.expires_at.isoformat()),
            "url": self.link(token),
            "token": token,
        }

    async def pending(self, org_id: str) -> list[dict[str, Any]]:
        rows = await self.pool.fetch(
            """SELECT * FROM invitations WHERE org_id=$1 AND accepted_at IS NULL AND revoked_at IS NULL
               AND expires_at > now() ORDER BY created_at DESC""",
            org_id,
        )
        return [_view_of(r["invitation_id"], r["email"], r["role"], r["expires_at"].isoformat()) for r in rows]

    async def revoke(self, who: Principal, invitation_id: str) -> None:
        check_invite(who, "viewer")
        done = await self.pool.fetchval(
            """UPDATE invitations SET revoked_at=now() WHERE invitation_id=$1 AND org_id=$2 AND accepted_at IS NULL
               RETURNING 1""",
            invitation_id,
            who.org_id,
        )
        if not done:
            raise NotFound(f"no open invitation {invitation_id}")

    async def peek(self, token: str) -> dict[str, Any] | None:
        """What an open invitation offers (for its page), or None if it is unknown, used or expired."""
        row = await self.pool.fetchrow(
            """SELECT i.email, i.role, o.name AS org FROM invitations i JOIN orgs o USING (org_id)
               WHERE i.token_hash=$1 AND i.accepted_at IS NULL AND i.revoked_at IS NULL AND i.expires_at > now()""",
            token_hash(token),
        )
        return dict(row) if row else None

    async def accept(self, token: str, password: str) -> str:
        """Create the invited account (once); returns its email."""
        row = await self.pool.fetchrow(
            """UPDATE invitations SET accepted_at=now() WHERE token_hash=$1 AND accepted_at IS NULL
               AND revoked_at IS NULL AND expires_at > now() RETURNING *""",
            token_hash(token),
        )
        if row is None:
            raise NotFound("this invitation is unknown, was already used, or has expired")
        try:
            await self.accounts.join_org(row["org_id"], row["email"], password, row["role"])
        except Exception:
            await self.pool.execute(
                "UPDATE invitations SET accepted_at=NULL WHERE invitation_id=$1", row["invitation_id"]
            )
            raise
        return str(row["email"])


def _view_of(invitation_id: str, email: str, role: str, expires_at: str) -> dict[str, Any]:
    return {"id": invitation_id, "email": email, "role": role, "expires_at": expires_at}
