"""Sign-in forms posted by browsers: log in, log out, register the first user, accept an invitation.

Each answers with a redirect (post/redirect/get) and sets or clears the session cookie; a failure goes
back to its form with a short error code the page explains.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import urlencode

import asyncpg
from aiohttp import web

from services.gateway.http import safe_next
from services.gateway.identity.accounts import Accounts
from services.gateway.identity.invitations import Invitations
from services.gateway.identity.sessions import (
    SESSION_COOKIE,
    check_prelogin_request,
    check_session_request,
    clear_session_cookie,
    set_session_cookie,
)
from services.gateway.identity.totp import TotpInvalid, TotpRequired, TwoFactor
from shared.errors import AgentPortError, Conflict, NotFound, TooManyAttempts, Unauthenticated
from shared.settings import GatewaySettings

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")
REGISTER_LOCK = "agentport-first-user"


def _back(path: str, **params: str) -> web.HTTPSeeOther:
    query = urlencode({k: v for k, v in params.items() if v})
    return web.HTTPSeeOther(f"{path}?{query}" if query else path)


def _text(form: Mapping[str, object], name: str) -> str:
    """A form field as text; passwords are kept exactly as typed, the rest trimmed."""
    value = form.get(name)
    if not isinstance(value, str):
        return ""
    return value if name.startswith("password") else value.strip()


def _redirect(path: str) -> web.Response:
    return web.Response(status=303, headers={"Location": path})


class SignIn:
    def __init__(
        self,
        settings: GatewaySettings,
        pool: asyncpg.Pool,
        accounts: Accounts,
        invitations: Invitations,
        two_factor: TwoFactor,
    ) -> None:
        self.settings = settings
        self.pool = pool
        self.accounts = accounts
        self.invitations = invitations
        self.two_factor = two_factor

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/login", self.login),
            web.post("/logout", self.logout),
            web.post("/setup", self.register),
            web.post("/invite/{token}", self.accept_invitation),
        ]

    async def _open_session(self, email: str, password: str, code: str, next_path: str) -> web.StreamResponse:
        async def second_factor(user_id: str) -> None:
            await self.two_factor.require(user_id, code or None)

        token = await self.accounts.login(
            email, password, self.settings.session_ttl_seconds, self.settings.login_max_failures, second_factor
        )
        response = _redirect(next_path)
        set_session_cookie(response, token, self.settings)
        return response

    async def login(self, request: web.Request) -> web.StreamResponse:
        await check_prelogin_request(request, self.settings)
        form = await request.post()
        next_path = safe_next(form.get("next"))
        email = _text(form, "email")
        try:
            return await self._open_session(email, _text(form, "password"), _text(form, "totp_code"), next_path)
        except TooManyAttempts:
            error = "locked"
        except TotpRequired:
            error = "totp_required"
        except TotpInvalid:
            error = "totp_invalid"
        except Unauthenticated:
            error = "bad_credentials"
        raise _back("/login", error=error, next=next_path if next_path != "/" else "", email=email)

    async def logout(self, request: web.Request) -> web.StreamResponse:
        token = request.cookies.get(SESSION_COOKIE)
        if token:
            await check_session_request(request, token, self.settings)
            await self.accounts.logout(token)
        response = _redirect("/login")
        clear_session_cookie(response, self.settings)
        return response

    async def register(self, request: web.Request) -> web.StreamResponse:
        """The first user of a fresh install becomes the owner of a new org; later people are invited."""
        await check_prelogin_request(request, self.settings)
        form = await request.post()
        email, password, org = _text(form, "email"), _text(form, "password"), _text(form, "org")
        if not _EMAIL.match(email):
            raise _back("/setup", error="bad_email", email=email, org=org)
        if len(password) < 8:
            raise _back("/setup", error="short_password", email=email, org=org)
        if password != _text(form, "password_again"):
            raise _back("/setup", error="passwords_differ", email=email, org=org)
        async with self.pool.acquire() as conn:
            await conn.execute("SELECT pg_advisory_lock(hashtext($1))", REGISTER_LOCK)
            try:
                if await self.accounts.any_users():
                    raise _back("/login", error="registration_closed")
                await self.accounts.create_user(email, password, org or None)
            finally:
                await conn.execute("SELECT pg_advisory_unlock(hashtext($1))", REGISTER_LOCK)
        return await self._open_session(email, password, "", "/")

    async def accept_invitation(self, request: web.Request) -> web.StreamResponse:
        await check_prelogin_request(request, self.settings)
        token = request.match_info["token"]
        form = await request.post()
        password = _text(form, "password")
        here = f"/invite/{token}"
        if len(password) < 8:
            raise _back(here, error="short_password")
        if password != _text(form, "password_again"):
            raise _back(here, error="passwords_differ")
        try:
            email = await self.invitations.accept(token, password)
        except NotFound:
            raise _back(here, error="invitation_gone") from None
        except Conflict:
            raise _back("/login", error="already_registered") from None
        except AgentPortError:
            raise _back(here, error="invalid") from None
        return await self._open_session(email, password, "", "/")
