"""REST for people: users and their roles, invitations, two-factor and passwords."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from services.gateway.http import json_body, str_field
from services.gateway.identity.accounts import Accounts
from services.gateway.identity.invitations import Invitations
from services.gateway.identity.principals import MANAGE, READ, principal
from services.gateway.identity.roles import ROLES, capabilities, check_role_change
from services.gateway.identity.sessions import SESSION_COOKIE
from services.gateway.identity.totp import TwoFactor
from shared.errors import BadRequest, Forbidden
from shared.events import Role

INVITATION_ACCEPT_PATH = "/api/invitations/accept"


class PeopleApi:
    def __init__(self, accounts: Accounts, invitations: Invitations, two_factor: TwoFactor) -> None:
        self.accounts = accounts
        self.invitations = invitations
        self.two_factor = two_factor

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/api/users", self.list_users),
            web.put("/api/users/{user_id}/role", self.set_role),
            web.post("/api/users/me/password", self.change_password),
            web.get("/api/users/me/totp", self.totp_status),
            web.post("/api/users/me/totp/setup", self.totp_setup),
            web.post("/api/users/me/totp/enable", self.totp_enable),
            web.post("/api/users/me/totp/disable", self.totp_disable),
            web.get("/api/invitations", self.list_invitations),
            web.post("/api/invitations", self.invite),
            web.post(INVITATION_ACCEPT_PATH, self.accept),
            web.delete("/api/invitations/{invitation_id}", self.revoke_invitation),
        ]

    async def list_users(self, request: web.Request) -> web.Response:
        who = principal(request)
        who.require_human(READ, "see the people of the organization")
        return web.json_response({"items": await self.accounts.list_users(who.org_id)})

    async def set_role(self, request: web.Request) -> web.Response:
        who = principal(request)
        who.require_human(MANAGE, "change roles")
        role = str_field(await json_body(request), "role")
        if role not in ROLES:
            raise BadRequest(f"role must be one of {', '.join(ROLES)}")
        user_id = request.match_info["user_id"]
        if user_id == who.actor.user_id:
            raise Forbidden("you cannot change your own role")
        current = next((u for u in await self.accounts.list_users(who.org_id) if u["id"] == user_id), None)
        new_role: Role = role
        check_role_change(who, current["role"] if current else "viewer", new_role)
        await self.accounts.set_role(who.org_id, user_id, new_role, who.actor)
        return web.json_response({"id": user_id, "role": new_role, "capabilities": capabilities(new_role)})

    async def change_password(self, request: web.Request) -> web.Response:
        who = principal(request)
        who.require_human(READ, "change a password")
        assert who.actor.user_id is not None
        body = await json_body(request)
        await self.accounts.change_password(
            who.org_id,
            who.actor.user_id,
            str_field(body, "current_password") or "",
            str_field(body, "new_password") or "",
            who.actor,
        )
        await self.accounts.logout_others(who.actor.user_id, _session_token(request))
        return web.json_response({"status": "changed"})

    async def totp_status(self, request: web.Request) -> web.Response:
        who = principal(request)
        who.require_human(READ, "use two-factor")
        assert who.actor.user_id is not None
        return web.json_response(await self.two_factor.status(who.actor.user_id))

    async def totp_setup(self, request: web.Request) -> web.Response:
        who = principal(request)
        who.require_human(READ, "use two-factor")
        return web.json_response(await self.two_factor.setup(who, who.actor.name))

    async def totp_enable(self, request: web.Request) -> web.Response:
        who = principal(request)
        who.require_human(READ, "use two-factor")
        codes = await self.two_factor.enable(who, str_field(await json_body(request), "code") or "")
        return web.json_response(
            {
                "enabled": True,
                "recovery_codes": codes,
                "message": "Keep these recovery codes somewhere safe: each works once, and they are shown only now.",
            }
        )

    async def totp_disable(self, request: web.Request) -> web.Response:
        who = principal(request)
        who.require_human(READ, "use two-factor")
        await self.two_factor.disable(who, str_field(await json_body(request), "code", required=False))
        return web.json_response({"enabled": False})

    async def list_invitations(self, request: web.Request) -> web.Response:
        who = principal(request)
        who.require_human(MANAGE, "see invitations")
        return web.json_response({"items": await self.invitations.pending(who.org_id)})

    async def invite(self, request: web.Request) -> web.Response:
        who = principal(request)
        body = await json_body(request)
        invited = await self.invitations.invite(who, str_field(body, "email") or "", str_field(body, "role") or "")
        return web.json_response(invited, status=201)

    async def revoke_invitation(self, request: web.Request) -> web.Response:
        who = principal(request)
        await self.invitations.revoke(who, request.match_info["invitation_id"])
        return web.json_response({"status": "revoked"})

    async def accept(self, request: web.Request) -> web.Response:
        """Public: accept an invitation with the token from its link and a password."""
        body: dict[str, Any] = await json_body(request)
        email = await self.invitations.accept(str_field(body, "token") or "", str_field(body, "password") or "")
        return web.json_response({"email": email}, status=201)


def _session_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip()
    return request.cookies.get(SESSION_COOKIE)
