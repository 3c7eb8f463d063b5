"""The pages before a session: log in, register the first user, accept an invitation (their forms post to the
gateway, which sets the session cookie); and `/`, which sends each visitor where they belong."""

from __future__ import annotations

from aiohttp import web

from services.approvals.web.render import page, see_other
from services.approvals.web.viewer import viewer

ERRORS = {
    "bad_credentials": "Wrong email or password.",
    "locked": "Too many failed attempts: this account is locked for a while. Try again later.",
    "totp_required": "Two-factor is on for this account: enter the code from your authenticator app.",
    "totp_invalid": "That two-factor code is wrong or was already used.",
    "registration_closed": "This AgentPort already has users: ask an owner or admin for an invitation.",
    "bad_email": "Enter an email address like name@example.com.",
    "short_password": "Choose a password of at least 8 characters.",
    "passwords_differ": "The two passwords differ.",
    "invitation_gone": "This invitation is unknown, was already used, or has expired.",
    "already_registered": "An account with this email already exists: log in instead.",
    "invalid": "That did not work; check the form and try again.",
}


class SignInPages:
    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/", self.home),
            web.get("/login", self.login),
            web.get("/setup", self.register),
            web.get("/invite/{token}", self.invite),
        ]

    async def home(self, request: web.Request) -> web.Response:
        who = viewer(request)
        if who.user is not None:
            return see_other("/ui/approvals")
        return see_other("/setup" if who.fresh else "/login")

    def _error(self, request: web.Request) -> str | None:
        code = request.query.get("error")
        return ERRORS.get(code, ERRORS["invalid"]) if code else None

    async def login(self, request: web.Request) -> web.Response:
        who = viewer(request)
        if who.user is not None:
            return see_other("/ui/approvals")
        if who.fresh:
            return see_other("/setup")
        return page(
            request,
            "login.html",
            error=self._error(request),
            next=request.query.get("next", ""),
            email=request.query.get("email", ""),
            totp_asked=request.query.get("error", "").startswith("totp"),
        )

    async def register(self, request: web.Request) -> web.Response:
        who = viewer(request)
        if not who.fresh:
            return see_other("/login")
        return page(
            request,
            "setup.html",
            error=self._error(request),
            email=request.query.get("email", ""),
            org=request.query.get("org", ""),
        )

    async def invite(self, request: web.Request) -> web.Response:
        who = viewer(request)
        return page(
            request,
            "invite.html",
            invite=who.invite,
            token=request.match_info["token"],
            error=self._error(request),
            status=200 if who.invite else 404,
        )
