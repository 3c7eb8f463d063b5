"""Orgs, human accounts, API keys and login sessions."""

from __future__ import annotations

import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import asyncpg
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from services.gateway.identity.secrets_at_rest import token_hash
from shared.bus import Bus
from shared.errors import BadRequest, Conflict, NotFound, TooManyAttempts, Unauthenticated
from shared.events import (
    Actor,
    KeyCreated,
    KeyRevoked,
    OrgCreated,
    Role,
    UserCreated,
    UserPasswordChanged,
    UserRoleChanged,
    new_id,
    utcnow,
)

_hasher = PasswordHasher()
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")
KEY_PREFIX = "ap_"
SESSION_PREFIX = "aps_"
LOCKOUT = timedelta(minutes=15)
DEFAULT_ORG = "default"


@dataclass(frozen=True)
class NewKey:
    key_id: str
    name: str
    prefix: str
    key: str


class Accounts:
    """Commands on accounts: each publishes its event and applies it at once (read-your-writes)."""

    def __init__(self, bus: Bus, pool: asyncpg.Pool, projection: Any) -> None:
        self.bus = bus
        self.pool = pool
        self.projection = projection
        # Set when two-factor is wired in: a login path that passes no second factor then fails closed.
        self.default_second_factor: Callable[[str], Awaitable[None]] | None = None

    async def _record(self, *events: Any) -> None:
        for event in events:
            await self.bus.publish(event)
            await self.projection.apply(event)

    async def create_user(self, email: str, password: str, org_name: str | None, role: Role | None = None) -> str:
        """Create a human account; the first user of an org is its owner."""
        email = email.strip().lower()
        if not _EMAIL.match(email):
            raise BadRequest("email must look like name@example.com")
        if len(password) < 8:
            raise BadRequest("password must be at least 8 characters")
        if await self.pool.fetchval("SELECT 1 FROM users WHERE email=$1", email):
            raise Conflict(f"a user with email {email} already exists")
        name = (org_name or DEFAULT_ORG).strip()
        org_id = await self.pool.fetchval("SELECT org_id FROM orgs WHERE name=$1", name)
        events: list[Any] = []
        if org_id is None:
            org_id = new_id()
            events.append(OrgCreated(org_id=org_id, name=name))
            role = "owner"
        elif role is None:
            role = "admin"
        user_id = new_id()
        events.append(
            UserCreated(org_id=org_id, user_id=user_id, email=email, role=role, password_hash=_hasher.hash(password))
        )
        await self._record(*events)
        return user_id

    async def user_by_email(self, email: str) -> asyncpg.Record:
        row = await self.pool.fetchrow("SELECT * FROM users WHERE email=$1", email.strip().lower())
        if row is None:
            raise NotFound(f"no user with email {email}")
        return row

    async def create_key(self, user_id: str, name: str, actor: Actor) -> NewKey:
        """Create an API key for a user; the key itself is returned once and stored only as a hash."""
        user = await self.pool.fetchrow("SELECT * FROM users WHERE user_id=$1", user_id)
        if user is None:
            raise NotFound("no such user")
        name = name.strip()
        if not name or len(name) > 100:
            raise BadRequest("a key needs a name of 1 to 100 characters")
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        event = KeyCreated(
            org_id=user["org_id"],
            key_id=new_id(),
            name=name,
            prefix=key[:10],
            key_hash=token_hash(key),
            user_id=user_id,
            actor=actor,
        )
        await self._record(event)
        return NewKey(key_id=event.key_id, name=name, prefix=event.prefix, key=key)

    async def revoke_key(self, org_id: str, key_id: str, actor: Actor) -> None:
        row = await self.pool.fetchrow("SELECT * FROM api_keys WHERE key_id=$1 AND org_id=$2", key_id, org_id)
        if row is None:
            raise NotFound(f"no API key {key_id}")
        if row["revoked_at"] is None:
            await self._record(KeyRevoked(org_id=org_id, key_id=key_id, actor=actor))

    async def list_keys(self, org_id: str) -> list[dict[str, Any]]:
        rows = await self.pool.fetch(
            "SELECT key_id, name, prefix, user_id, created_at, revoked_at FROM api_keys WHERE org_id=$1 "
            "ORDER BY created_at DESC",
            org_id,
        )
        return [
            {
                "id": r["key_id"],
                "name": r["name"],
                "prefix": r["prefix"],
                "key_prefix": r["prefix"],
                "user_id": r["user_id"],
                "created_at": r["created_at"].isoformat(),
                "revoked_at": r["revoked_at"].isoformat() if r["revoked_at"] else None,
            }
            for r in rows
        ]

    async def login(
        self,
        email: str,
        password: str,
        ttl_seconds: int,
        max_failures: int,
        second_factor: Callable[[str], Awaitable[None]] | None = None,
    ) -> str:
        """Check a password (with lockout after repeated failures), then any second factor, and open a session."""
        row = await self.pool.fetchrow("SELECT * FROM users WHERE email=$1", email.strip().lower())
        if row is None:
            _hasher.hash(password)  # Same cost whether or not the account exists.
            raise Unauthenticated("wrong email or password")
        if row["locked_until"] is not None and row["locked_until"] > utcnow():
            raise TooManyAttempts("too many failed logins; try again later")
        try:
            _hasher.verify(row["password_hash"], password)
        except (VerificationError, InvalidHashError) as exc:
            await self.pool.execute(
                """UPDATE users SET failed_logins = failed_logins + 1,
                   locked_until = CASE WHEN failed_logins + 1 >= $2 THEN now() + $3::interval ELSE locked_until END
                   WHERE user_id=$1""",
                row["user_id"],
                max_failures,
                LOCKOUT,
            )
            raise Unauthenticated("wrong email or password") from exc
        check = second_factor or self.default_second_factor
        if check is not None:
            await check(row["user_id"])
        await self.pool.execute("UPDATE users SET failed_logins=0, locked_until=NULL WHERE user_id=$1", row["user_id"])
        token = SESSION_PREFIX + secrets.token_urlsafe(32)
        await self.pool.execute(
            "INSERT INTO sessions (token_hash, user_id, org_id, expires_at) VALUES ($1, $2, $3, now() + $4::interval)",
            token_hash(token),
            row["user_id"],
            row["org_id"],
            timedelta(seconds=ttl_seconds),
        )
        return token

    async def logout(self, token: str) -> None:
        await self.pool.execute("DELETE FROM sessions WHERE token_hash=$1", token_hash(token))

    async def logout_others(self, user_id: str, keep_token: str | None) -> None:
        """End every session of a user but the one in use (after a password change)."""
        await self.pool.execute(
            "DELETE FROM sessions WHERE user_id=$1 AND token_hash <> $2", user_id, token_hash(keep_token or "")
        )

    async def any_users(self) -> bool:
        return bool(await self.pool.fetchval("SELECT EXISTS (SELECT 1 FROM users)"))

    async def join_org(self, org_id: str, email: str, password: str, role: Role) -> str:
        """Create a human account in an existing org (an accepted invitation)."""
        email = email.strip().lower()
        check_password(password)
        if await self.pool.fetchval("SELECT 1 FROM users WHERE email=$1", email):
            raise Conflict(f"a user with email {email} already exists")
        user_id = new_id()
        await self._record(
            UserCreated(org_id=org_id, user_id=user_id, email=email, role=role, password_hash=_hasher.hash(password))
        )
        return user_id

    async def list_users(self, org_id: str) -> list[dict[str, Any]]:
        rows = await self.pool.fetch(
            """SELECT u.user_id, u.email, u.role, u.created_at, coalesce(t.enabled, false) AS totp
               FROM users u LEFT JOIN user_totp t USING (user_id) WHERE u.org_id=$1 ORDER BY u.created_at""",
            org_id,
        )
        return [
            {
                "id": r["user_id"],
                "email": r["email"],
                "role": r["role"],
                "two_factor": r["totp"],
                "created_at": r["created_at"].isoformat(),
            }
            for r in rows
        ]

    async def set_role(self, org_id: str, user_id: str, role: Role, actor: Actor) -> Role:
        """Give a user another role; an org always keeps at least one owner. Returns the previous role."""
        row = await self.pool.fetchrow("SELECT role FROM users WHERE user_id=$1 AND org_id=$2", user_id, org_id)
        if row is None:
            raise NotFound("no such user in this organization")
        if row["role"] == "owner" and role != "owner":
            owners = await self.pool.fetchval("SELECT count(*) FROM users WHERE org_id=$1 AND role='owner'", org_id)
            if owners <= 1:
                raise Conflict("an organization needs an owner: make someone else owner first")
        if row["role"] != role:
            await self._record(UserRoleChanged(org_id=org_id, user_id=user_id, role=role, actor=actor))
        previous: Role = row["role"]
        return previous

    async def change_password(self, org_id: str, user_id: str, current: str, new: str, actor: Actor) -> None:
        """Change a password after checking the current one."""
        row = await self.pool.fetchrow("SELECT password_hash FROM users WHERE user_id=$1", user_id)
        if row is None:
            raise NotFound("no such user")
        try:
            _hasher.verify(row["password_hash"], current)
        except (VerificationError, InvalidHashError) as exc:
            raise BadRequest("the current password is wrong") from exc
        check_password(new)
        await self._record(
            UserPasswordChanged(org_id=org_id, user_id=user_id, password_hash=_hasher.hash(new), actor=actor)
        )


def check_password(password: str) -> None:
    if len(password) < 8:
        raise BadRequest("password must be at least 8 characters")
