"""`/authorize`: the page where a human sees which client asks to act for them, and where it will be sent
back, and allows or denies it.

The human is the one signed in to AgentPort in this browser (the session cookie), or proves who they are on
the form itself (email, password and, when two-factor is on, a code: `Accounts.login` with its lockout), or
sends a human session token in `Authorization`. The form carries the authorization request in hidden fields and
a CSRF token: an HMAC over exactly those fields and a per-browser nonce cookie, so a submitted form cannot be
swapped for another request or replayed from another browser; a cookie-authenticated decision must also come
from our own origin.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Any

import structlog
from aiohttp import web
from authlib.oauth2.rfc6749 import OAuth2Error

from services.gateway.identity.accounts import Accounts
from services.gateway.identity.oauth import pages
from services.gateway.identity.oauth.adapter import Bridge, oauth_request, params_request
from services.gateway.identity.oauth.grants import Grants
from services.gateway.identity.oauth.server import GatewayAuthorizationServer
from services.gateway.identity.oauth.store import Client, GrantHolder
from services.gateway.identity.principals import MANAGE, Principal, authenticate, client_ip, session_human
from services.gateway.identity.sessions import check_same_origin
from shared.errors import AgentPortError, Unauthenticated
from shared.events import Actor, canonical_json
from shared.settings import GatewaySettings

log = structlog.get_logger("gateway.oauth")

AUTH_PARAMS = (
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "code_challenge",
    "code_challenge_method",
    "resource",
)
NONCE_COOKIE = "ap_oauth_consent"
CSRF_TTL_SECONDS = 15 * 60


@dataclass(frozen=True)
class Consent:
    """The consent page's two handlers and what they need."""

    server: GatewayAuthorizationServer
    bridge: Bridge
    accounts: Accounts
    grants: Grants
    csrf_key: bytes
    settings: GatewaySettings
    two_factor: Any

    async def show(self, request: web.Request) -> web.Response:
        """GET /authorize: validate the request, then show the consent page (or send the client its error)."""
        try:
            oreq = await oauth_request(request, self.server.issuer)
            grant = await self.bridge.run(lambda: self.server.get_consent_grant(oreq))
        except OAuth2Error as error:
            return self._refusal(error)
        params = _auth_params(oreq.payload.datalist)
        nonce = request.cookies.get(NONCE_COOKIE) or secrets.token_urlsafe(24)
        signed_in = await session_human(self.accounts.pool, request)
        response = self._page(grant.request.client, grant.redirect_uri, params, nonce, signed_in)
        if request.cookies.get(NONCE_COOKIE) != nonce:
            response.set_cookie(
                NONCE_COOKIE,
                nonce,
                httponly=True,
                samesite="Strict",
                path="/authorize",
                secure=self.server.issuer.startswith("https://"),
                max_age=CSRF_TTL_SECONDS,
            )
        return response

    async def decide(self, request: web.Request) -> web.Response:
        """POST /authorize: the human's decision, checked against the form's CSRF token."""
        form = await request.post()
        params = [(k, v) for k in AUTH_PARAMS for v in form.getall(k, []) if isinstance(v, str)]
        nonce = request.cookies.get(NONCE_COOKIE, "")
        if not self._csrf_ok(str(form.get("csrf", "")), params, nonce):
            return pages.problem(
                "This sign-in form expired or was opened in another browser. Start again from your application.",
                status=400,
            )
        try:
            oreq = params_request(request, self.server.issuer, "/authorize", params)
            grant = await self.bridge.run(lambda: self.server.get_consent_grant(oreq))
        except OAuth2Error as error:
            return self._refusal(error)
        client: Client = grant.request.client
        if form.get("decision") != "allow":
            log.info("oauth.consent_denied", client_id=client.client_id)
            return await self._respond(oreq, grant, None)
        try:
            human = await self._human(request, form)
            human.require_human(MANAGE, "connect an OAuth client (it acts like one of your API keys)")
        except AgentPortError as exc:
            signed_in = await session_human(self.accounts.pool, request)
            return self._page(
                client, grant.redirect_uri, params, nonce, signed_in, error=exc.message, status=exc.status
            )
        assert human.actor.user_id is not None
        grant_id = await self.grants.create(
            human.actor,
            human.org_id,
            client.client_id,
            client.client_name,
            grant.redirect_uri,
            oreq.resource or self.server.resource,
            oreq.scope or "",
        )
        holder = GrantHolder(
            grant_id=grant_id, org_id=human.org_id, user_id=human.actor.user_id, client_id=client.client_id
        )
        return await self._respond(oreq, grant, holder)

    async def _respond(self, oreq: Any, grant: Any, holder: GrantHolder | None) -> web.Response:
        """Send the browser back to the client with a code, or with access_denied when `holder` is None."""
        status, _, headers = await self.bridge.run(
            lambda: self.server.create_authorization_response(oreq, grant_user=holder, grant=grant)
        )
        location = dict(headers).get("Location")
        if status != 302 or not location:
            return pages.problem("The authorization could not be completed; start again from your application.")
        return _redirect(self.server.with_issuer(location))

    async def _human(self, request: web.Request, form: Any) -> Principal:
        """The human deciding: a session token in Authorization, the session cookie, else the form's sign-in."""
        if request.headers.get("Authorization") or request.headers.get("X-API-Key"):
            return await authenticate(self.accounts.pool, request)
        email, password = form.get("email"), form.get("password")
        if not isinstance(email, str) or not isinstance(password, str) or not email or not password:
            signed_in = await session_human(self.accounts.pool, request)
            if signed_in is None:
                raise Unauthenticated("sign in with your AgentPort email and password to allow this client")
            check_same_origin(request, self.settings)
            return signed_in
        code = form.get("totp_code")

        async def second_factor(user_id: str) -> None:
            if self.two_factor is not None:
                await self.two_factor.require(user_id, code if isinstance(code, str) else None)

        session = await self.accounts.login(
            email, password, self.settings.session_ttl_seconds, self.settings.login_max_failures, second_factor
        )
        try:
            row = await self.accounts.user_by_email(email)
        finally:
            await self.accounts.logout(session)
        actor = Actor(kind="user", id=row["user_id"], name=row["email"], user_id=row["user_id"])
        return Principal(org_id=row["org_id"], actor=actor, role=row["role"], client_ip=client_ip(request))

    def _refusal(self, error: OAuth2Error) -> web.Response:
        """An invalid request: back to the client if its redirect URI was verified, else a page for the human."""
        if error.redirect_uri:
            _, _, headers = error()
            return _redirect(self.server.with_issuer(dict(headers)["Location"]))
        text = error.description or error.error
        return pages.problem(f"This sign-in request is invalid ({error.error}): {text}", status=400)

    def _page(
        self,
        client: Client,
        redirect_uri: str,
        params: list[tuple[str, str]],
        nonce: str,
        signed_in: Principal | None,
        *,
        error: str | None = None,
        status: int = 200,
    ) -> web.Response:
        return pages.consent(
            client_name=client.client_name,
            client_id=client.client_id,
            redirect_uri=redirect_uri,
            scope=dict(params).get("scope", ""),
            params=params,
            csrf=self._csrf(params, nonce),
            signed_in_as=signed_in.actor.name if signed_in is not None else None,
            error=error,
            status=status,
        )

    def _csrf(self, params: list[tuple[str, str]], nonce: str, issued: int | None = None) -> str:
        issued = int(time.time()) if issued is None else issued
        body = canonical_json({"params": sorted(params), "nonce": nonce, "issued": issued})
        return f"{issued}.{hmac.new(self.csrf_key, body.encode(), hashlib.sha256).hexdigest()}"

    def _csrf_ok(self, token: str, params: list[tuple[str, str]], nonce: str) -> bool:
        issued_text, _, _ = token.partition(".")
        if not nonce or not issued_text.isdigit():
            return False
        issued = int(issued_text)
        if not 0 <= time.time() - issued <= CSRF_TTL_SECONDS:
            return False
        return hmac.compare_digest(token, self._csrf(params, nonce, issued))


def _auth_params(datalist: dict[str, list[str]]) -> list[tuple[str, str]]:
    return [(k, v) for k in AUTH_PARAMS for v in datalist.get(k, [])]


def _redirect(location: str) -> web.Response:
    return web.Response(status=302, headers={"Location": location, "Cache-Control": "no-store"})
