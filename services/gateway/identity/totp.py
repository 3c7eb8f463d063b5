"""Two-factor authentication with TOTP: set-up, enable, disable, single-use recovery codes.

Secrets are encrypted at rest with the gateway's secret key and never travel on the bus; only the facts
`user.totp_enabled` / `user.totp_disabled` are published. A code is accepted once: a later check needs a
later time step, so an observed code cannot be replayed.
"""

from __future__ import annotations

import secrets
import time
from datetime import timedelta
from typing import Any

import asyncpg
import pyotp
from cryptography.fernet import Fernet, InvalidToken

from services.gateway.identity.principals import Principal
from services.gateway.identity.secrets_at_rest import token_hash
from shared.bus import Bus
from shared.errors import BadRequest, Conflict, Forbidden, TooManyAttempts
from shared.events import UserTotpDisabled, UserTotpEnabled

ISSUER = "AgentPort"
RECOVERY_CODES = 10
MAX_FAILURES = 5
LOCKOUT = timedelta(minutes=15)


class TotpRequired(Forbidden):
    code = "totp_required"


class TotpInvalid(Forbidden):
    code = "totp_invalid"


def new_recovery_codes() -> list[str]:
    """Codes like `k7qm-4xza-p2`: high entropy, easy to type."""
    alphabet = "abcdefghjkmnpqrstuvwxyz23456789"
    codes = []
    for _ in range(RECOVERY_CODES):
        raw = "".join(secrets.choice(alphabet) for _ in range(10))
        codes.append(f"{raw[:4]}-{raw[4:8]}-{raw[8:]}")
    return codes


def _recovery_hash(code: str) -> str:
    return token_hash("recovery:" + code.strip().lower().replace("-", "").replace(" ", ""))


def matching_step(secret: str, code: str, now: float | None = None) -> int | None:
    """The time step a six-digit code belongs to (allowing one step of clock drift), or None."""
    code = code.strip().replace(" ", "")
    if not (len(code) == 6 and code.isdigit()):
        return None
    totp = pyotp.TOTP(secret)
    now = time.time() if now is None else now
    step = int(now // totp.interval)
    for candidate in (step, step - 1, step + 1):
        if secrets.compare_digest(totp.generate_otp(candidate), code):
            return candidate
    return None


class TwoFactor:
    """Commands on a human's second factor; checks used by login and by every approval decision."""

    def __init__(self, bus: Bus, pool: asyncpg.Pool, box: Fernet) -> None:
        self.bus = bus
        self.pool = pool
        self.box = box

    def _seal(self, secret: str) -> str:
        return self.box.encrypt(secret.encode()).decode()

    def _open(self, sealed: str) -> str:
        try:
            return self.box.decrypt(sealed.encode()).decode()
        except InvalidToken as exc:
            raise Conflict("two-factor secret cannot be read: was the gateway's secret key changed?") from exc

    async def enabled(self, user_id: str) -> bool:
        return bool(await self.pool.fetchval("SELECT enabled FROM user_totp WHERE user_id=$1", user_id))

    async def status(self, user_id: str) -> dict[str, Any]:
        row = await self.pool.fetchrow("SELECT enabled, recovery_hashes FROM user_totp WHERE user_id=$1", user_id)
        on = bool(row and row["enabled"])
        return {"enabled": on, "recovery_codes_left": len(row["recovery_hashes"]) if on and row else 0}

    async def setup(self, who: Principal, email: str) -> dict[str, str]:
        """Start set-up: a fresh secret to scan, kept pending until a code proves the app has it."""
        user_id = _user(who)
        if await self.enabled(user_id):
            raise Conflict("two-factor is already on; turn it off first to set up a new authenticator")
        secret = pyotp.random_base32()
        await self.pool.execute(
            """INSERT INTO user_totp (user_id, pending_secret) VALUES ($1, $2)
               ON CONFLICT (user_id) DO UPDATE SET pending_secret=EXCLUDED.pending_secret""",
            user_id,
            self._seal(secret),
        )
        uri = pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name=ISSUER)
        return {"secret": secret, "otpauth_uri": uri}

    async def enable(self, who: Principal, code: str) -> list[str]:
        """Turn two-factor on once a code from the pending secret checks; returns the recovery codes, once."""
        user_id = _user(who)
        row = await self.pool.fetchrow("SELECT * FROM user_totp WHERE user_id=$1", user_id)
        if row is None or row["pending_secret"] is None:
            raise BadRequest("start two-factor set-up first")
        if row["enabled"]:
            raise Conflict("two-factor is already on")
        step = matching_step(self._open(row["pending_secret"]), code)
        if step is None:
            raise TotpInvalid("that code does not match; check the authenticator app's clock and try again")
        codes = new_recovery_codes()
        await self.pool.execute(
            """UPDATE user_totp SET secret=pending_secret, pending_secret=NULL, enabled=true, last_step=$2,
                      failures=0, locked_until=NULL, recovery_hashes=$3 WHERE user_id=$1""",
            user_id,
            step,
            [_recovery_hash(c) for c in codes],
        )
        await self.bus.publish(UserTotpEnabled(org_id=who.org_id, user_id=user_id, actor=who.actor))
        return codes

    async def disable(self, who: Principal, code: str | None) -> None:
        """Turn two-factor off; proving possession (a code or a recovery code) is required."""
        user_id = _user(who)
        if not await self.enabled(user_id):
            return
        await self.check(user_id, code)
        await self.pool.execute(
            "UPDATE user_totp SET enabled=false, secret=NULL, recovery_hashes='{}' WHERE user_id=$1", user_id
        )
        await self.bus.publish(UserTotpDisabled(org_id=who.org_id, user_id=user_id, actor=who.actor))

    async def require(self, user_id: str, code: str | None) -> None:
        """If the user has two-factor on, demand a fresh code (or an unused recovery code)."""
        if await self.enabled(user_id):
            await self.check(user_id, code)

    async def check(self, user_id: str, code: str | None) -> None:
        """Accept a code once; repeated failures lock the second factor for a while."""
        row = await self.pool.fetchrow("SELECT * FROM user_totp WHERE user_id=$1 AND enabled", user_id)
        if row is None:
            raise BadRequest("two-factor is not on")
        if not code or not code.strip():
            raise TotpRequired("two-factor is on: send the current code from the authenticator app (totp_code)")
        if row["locked_until"] is not None:
            if row["locked_until"].timestamp() > time.time():
                raise TooManyAttempts("too many wrong two-factor codes; try again later")
            await self.pool.execute("UPDATE user_totp SET failures=0, locked_until=NULL WHERE user_id=$1", user_id)
        step = matching_step(self._open(row["secret"]), code)
        if step is not None:
            fresh = await self.pool.fetchval(
                "UPDATE user_totp SET last_step=$2, failures=0 WHERE user_id=$1 AND last_step < $2 RETURNING 1",
                user_id,
                step,
            )
            if fresh:
                return
            await self._failed(user_id)
            raise TotpInvalid("that code was already used; wait for the next one")
        used = await self.pool.fetchval(
            """UPDATE user_totp SET recovery_hashes=array_remove(recovery_hashes, $2), failures=0
               WHERE user_id=$1 AND $2 = ANY(recovery_hashes) RETURNING 1""",
            user_id,
            _recovery_hash(code),
        )
        if used:
            return
        await self._failed(user_id)
        raise TotpInvalid("wrong two-factor code")

    async def _failed(self, user_id: str) -> None:
        await self.pool.execute(
            """UPDATE user_totp SET failures = failures + 1,
                   locked_until = CASE WHEN failures + 1 >= $2 THEN now() + $3::interval ELSE locked_until END
               WHERE user_id=$1""",
            user_id,
            MAX_FAILURES,
            LOCKOUT,
        )


def _user(who: Principal) -> str:
    if not who.is_human or who.actor.user_id is None:
        raise Forbidden("only a human has a second factor")
    return who.actor.user_id
