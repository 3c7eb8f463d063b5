"""Browser sessions: the session cookie, and CSRF protection for every state change it authenticates.

A cookie-authenticated request that changes state must carry the session's CSRF token (a form field or
the `X-CSRF-Token` header) and must not come from another site (Origin, Sec-Fetch-Site). Before login,
forms carry a double-submit token matching the `agentport_csrf` cookie.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from urllib.parse import urlsplit

from aiohttp import web

from shared.errors import Forbidden
from shared.settings import GatewaySettings

SESSION_COOKIE = "agentport_session"
PRELOGIN_COOKIE = "agentport_csrf"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class CsrfRefused(Forbidden):
    code = "csrf_failed"


def csrf_token(session_token: str) -> str:
    """The session's CSRF token: derived from the secret cookie, so it needs no storage."""
    return hmac.new(session_token.encode(), b"agentport-csrf", hashlib.sha256).hexdigest()


def is_secure(settings: GatewaySettings) -> bool:
    return settings.base_url.lower().startswith("https://")


def set_session_cookie(response: web.StreamResponse, token: str, settings: GatewaySettings) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=settings.session_ttl_seconds,
        path="/",
        httponly=True,
        samesite="Lax",
        secure=is_secure(settings),
    )


def clear_session_cookie(response: web.StreamResponse, settings: GatewaySettings) -> None:
    response.del_cookie(SESSION_COOKIE, path="/", secure=is_secure(settings), httponly=True, samesite="Lax")


def prelogin_token(request: web.Request) -> tuple[str, bool]:
    """The double-submit token for sign-in forms, and whether it is new (and so must be set as a cookie)."""
    token = request.cookies.get(PRELOGIN_COOKIE)
    if token and len(token) >= 32:
        return token, False
    return secrets.token_urlsafe(32), True


def set_prelogin_cookie(response: web.StreamResponse, token: str, settings: GatewaySettings) -> None:
    response.set_cookie(PRELOGIN_COOKIE, token, path="/", httponly=True, samesite="Strict", secure=is_secure(settings))


def check_same_origin(request: web.Request, settings: GatewaySettings) -> None:
    """Refuse a state change that a browser says comes from another site."""
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None and site not in ("same-origin", "none"):
        raise CsrfRefused(f"refused a {site} request: it must come from AgentPort's own pages")
    origin = request.headers.get("Origin")
    if origin is None:
        return
    ours = urlsplit(settings.base_url)
    theirs = urlsplit(origin)
    if origin == "null" or not (
        (theirs.scheme, theirs.netloc) == (ours.scheme, ours.netloc) or theirs.netloc == request.host
    ):
        raise CsrfRefused("refused a request from another origin")


def check_token(expected: str, sent: str | None) -> None:
    # A header with raw non-UTF-8 bytes arrives as surrogate escapes: compared as the bytes sent, never a 500.
    if not sent or not hmac.compare_digest(expected.encode(), sent.encode("utf-8", "surrogateescape")):
        raise CsrfRefused("missing or wrong CSRF token; reload the page and try again")


async def sent_token(request: web.Request) -> str | None:
    """The CSRF token a request carries, in its header or (for a posted form) its form field."""
    header = request.headers.get(CSRF_HEADER)
    if header:
        return header
    if request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        value = (await request.post()).get(CSRF_FIELD)
        return value if isinstance(value, str) else None
    return None


async def check_session_request(request: web.Request, session_token: str, settings: GatewaySettings) -> None:
    """A cookie-authenticated state change: same origin and the session's CSRF token."""
    if request.method in SAFE_METHODS:
        return
    check_same_origin(request, settings)
    check_token(csrf_token(session_token), await sent_token(request))


async def check_prelogin_request(request: web.Request, settings: GatewaySettings) -> None:
    """A sign-in form: same origin and the double-submit token."""
    check_same_origin(request, settings)
    cookie = request.cookies.get(PRELOGIN_COOKIE)
    if not cookie:
        raise CsrfRefused("this browser did not keep AgentPort's cookie; enable cookies and reload the page")
    check_token(cookie, await sent_token(request))
