"""The web UI on the gateway's origin: the approvals service renders the pages; the gateway authenticates
the browser's session cookie, checks CSRF, and forwards who is asking in a header only it can set.

The approvals service trusts that header only with the shared proxy secret, which lives in the bus's
key-value store (reachable only by services on the bus). Any copy a client sends is dropped here.
"""

from __future__ import annotations

import base64
import contextlib
import json
import secrets
from typing import Any
from urllib.parse import urlencode

import aiohttp
import asyncpg
import structlog
from aiohttp import web

from services.gateway.http import safe_next
from services.gateway.identity.invitations import Invitations
from services.gateway.identity.principals import FORWARDED_IP, PROXY_AUTH_HEADER, client_ip
from services.gateway.identity.roles import capabilities
from services.gateway.identity.secrets_at_rest import token_hash
from services.gateway.identity.sessions import (
    SAFE_METHODS,
    SESSION_COOKIE,
    CsrfRefused,
    check_session_request,
    csrf_token,
    prelogin_token,
    set_prelogin_cookie,
)
from shared.bus import Bus
from shared.errors import Unauthenticated, Unavailable
from shared.runner import CTX_KEY
from shared.settings import GatewaySettings

log = structlog.get_logger("gateway.ui_proxy")

CONTEXT_HEADER = "X-AgentPort-Context"
KV_BUCKET = "keys"
SECRET_KEY = "ui-proxy-secret"  # noqa: S105 - the name of a key-value entry, not a secret
UI_URL_KEY = "approvals-ui"
ANONYMOUS_PREFIXES = ("/login", "/setup", "/invite/", "/static/")
REQUEST_HEADERS = (
    "Accept",
    "Accept-Language",
    "Content-Type",
    "If-None-Match",
    "If-Modified-Since",
    "Last-Event-ID",
    "User-Agent",
)
RESPONSE_HEADERS = (
    "Content-Type",
    "Cache-Control",
    "Location",
    "ETag",
    "Last-Modified",
    "Server-Timing",
    "Content-Security-Policy",
    "X-Frame-Options",
    "Referrer-Policy",
    "X-Content-Type-Options",
    "Permissions-Policy",
    "Vary",
)
STREAMING_PATHS = ("/ui/events",)


async def shared_secret(bus: Bus) -> str:
    """The proxy secret, made once by whichever gateway replica comes first."""
    kv = await bus.kv(KV_BUCKET)
    with contextlib.suppress(Exception):
        await kv.create(SECRET_KEY, secrets.token_urlsafe(32).encode())
    entry = await kv.get(SECRET_KEY)
    assert entry.value is not None
    return entry.value.decode()


class UiProxy:
    def __init__(
        self, settings: GatewaySettings, bus: Bus, pool: asyncpg.Pool, invitations: Invitations, secret: str
    ) -> None:
        self.settings = settings
        self.bus = bus
        self.pool = pool
        self.invitations = invitations
        self.secret = secret
        self.client: aiohttp.ClientSession | None = None
        self._target: str | None = settings.approvals_ui_url.rstrip("/") or None

    async def start(self) -> None:
        self.client = aiohttp.ClientSession(auto_decompress=True, cookie_jar=aiohttp.DummyCookieJar())

    async def stop(self) -> None:
        if self.client is not None:
            await self.client.close()

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/", self.handle),
            web.get("/login", self.handle),
            web.get("/setup", self.handle),
            web.get("/invite/{token}", self.handle),
            web.route("*", "/approve/{request_id}", self.handle),
            web.route("*", "/ui/{tail:.*}", self.handle),
            web.get("/static/{tail:.*}", self.handle),
        ]

    async def target(self, refresh: bool = False) -> str:
        """Where the approvals service serves the UI: configured, or as it announced itself on the bus."""
        if self.settings.approvals_ui_url:
            return self.settings.approvals_ui_url.rstrip("/")
        if self._target is None or refresh:
            try:
                entry = await (await self.bus.kv(KV_BUCKET)).get(UI_URL_KEY)
            except Exception as exc:
                raise Unavailable("the web UI is not available: is the approvals service running?") from exc
            assert entry.value is not None
            self._target = entry.value.decode().rstrip("/")
        return self._target

    def internal_url(self, request: web.Request) -> str:
        """How the approvals service calls this gateway's REST API back."""
        if self.settings.internal_url:
            return self.settings.internal_url.rstrip("/")
        host, port = request.app[CTX_KEY].state.get("http_address", (self.settings.host, self.settings.port))[:2]
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        return f"http://[{host}]:{port}" if ":" in str(host) else f"http://{host}:{port}"

    async def _viewer(self, token: str) -> asyncpg.Record | None:
        row: asyncpg.Record | None = await self.pool.fetchrow(
            """SELECT u.user_id, u.org_id, u.email, u.role, o.name AS org_name, coalesce(t.enabled, false) AS totp
               FROM sessions s JOIN users u USING (user_id) JOIN orgs o ON o.org_id = u.org_id
               LEFT JOIN user_totp t ON t.user_id = u.user_id
               WHERE s.token_hash=$1 AND s.expires_at > now()""",
            token_hash(token),
        )
        return row

    async def _context(self, request: web.Request, token: str | None, row: asyncpg.Record | None) -> dict[str, Any]:
        context: dict[str, Any] = {
            "client_ip": client_ip(request),
            "gateway": self.internal_url(request),
            "base_url": self.settings.base_url,
        }
        if row is not None and token is not None:
            context.update(
                session=token,
                csrf=csrf_token(token),
                user={
                    "id": row["user_id"],
                    "email": row["email"],
                    "role": row["role"],
                    "org_id": row["org_id"],
                    "org_name": row["org_name"],
                    "two_factor": row["totp"],
                    "capabilities": capabilities(row["role"]),
                },
            )
            return context
        context["fresh"] = not await self.pool.fetchval("SELECT EXISTS (SELECT 1 FROM users)")
        if request.path.startswith("/invite/"):
            context["invite"] = await self.invitations.peek(request.match_info.get("token", ""))
        return context

    async def handle(self, request: web.Request) -> web.StreamResponse:
        token = request.cookies.get(SESSION_COOKIE)
        if token is not None and not (token.isascii() and token.isprintable()):
            token = None  # no session token has such characters: signed out
        row = await self._viewer(token) if token else None
        anonymous_ok = request.path == "/" or request.path.startswith(ANONYMOUS_PREFIXES)
        if row is None and not anonymous_ok:
            if request.method == "GET" and not request.path.startswith(STREAMING_PATHS):
                raise web.HTTPSeeOther("/login?" + urlencode({"next": safe_next(request.path_qs)}))
            raise Unauthenticated("sign in first")
        new_prelogin = None
        context = await self._context(request, token, row)
        if row is not None and token is not None:
            await check_session_request(request, token, self.settings)
        elif request.method not in SAFE_METHODS:
            raise CsrfRefused("sign in first")
        else:
            context["csrf"], is_new = prelogin_token(request)
            new_prelogin = context["csrf"] if is_new else None
        response = await self._forward(request, context)
        if new_prelogin is not None:
            set_prelogin_cookie(response, new_prelogin, self.settings)
        return response

    async def _forward(self, request: web.Request, context: dict[str, Any]) -> web.StreamResponse:
        assert self.client is not None
        headers = {h: request.headers[h] for h in REQUEST_HEADERS if h in request.headers}
        headers[PROXY_AUTH_HEADER] = self.secret
        headers[CONTEXT_HEADER] = base64.urlsafe_b64encode(json.dumps(context).encode()).decode()
        if context.get("client_ip"):
            headers[FORWARDED_IP] = str(context["client_ip"])
        body = await request.read() if request.body_exists else None
        streaming = request.path.startswith(STREAMING_PATHS)
        timeout = aiohttp.ClientTimeout(total=None if streaming else 60, sock_connect=5)
        for attempt in (0, 1):
            base = await self.target(refresh=attempt == 1)
            try:
                upstream = await self.client.request(
                    request.method,
                    base + request.path_qs,
                    headers=headers,
                    data=body,
                    allow_redirects=False,
                    timeout=timeout,
                )
                break
            except aiohttp.ClientConnectorError as exc:
                if attempt == 1 or self.settings.approvals_ui_url:
                    log.warning("ui_proxy.unreachable", target=base, error=str(exc))
                    raise Unavailable("the web UI is not reachable: is the approvals service running?") from exc
        async with upstream:
            out_headers = {h: upstream.headers[h] for h in RESPONSE_HEADERS if h in upstream.headers}
            if upstream.headers.get("Content-Type", "").startswith("text/event-stream"):
                stream = web.StreamResponse(status=upstream.status, headers=out_headers)
                await stream.prepare(request)
                async for chunk in upstream.content.iter_any():
                    await stream.write(chunk)
                return stream
            return web.Response(status=upstream.status, body=await upstream.read(), headers=out_headers)
