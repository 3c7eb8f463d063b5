"""Who is looking at a page: the identity the gateway forwards, trusted only with the shared proxy secret.

The header names and the key-value entries are the gateway's (`services/gateway/humans/ui_proxy.py`); they are
repeated here because a service never imports another's code.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from shared.bus import Bus

CONTEXT_HEADER = "X-AgentPort-Context"
PROXY_AUTH_HEADER = "X-AgentPort-Proxy-Secret"
FORWARDED_IP = "X-AgentPort-Client-IP"
KV_BUCKET = "keys"
SECRET_KEY = "ui-proxy-secret"  # noqa: S105 - the name of a key-value entry
UI_URL_KEY = "approvals-ui"
OPEN_PATHS = frozenset({"/health", "/ready", "/metrics"})
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class User:
    id: str
    email: str
    role: str
    org_id: str
    org_name: str
    two_factor: bool
    capabilities: tuple[str, ...]

    def can(self, capability: str) -> bool:
        return capability in self.capabilities


@dataclass(frozen=True)
class Viewer:
    """The browser's side of a request: the signed-in user (if any) and what pages need to act for them."""

    user: User | None
    csrf: str
    session: str | None
    client_ip: str | None
    gateway: str
    base_url: str
    fresh: bool = False
    invite: dict[str, Any] | None = None

    def signed_in(self) -> User:
        if self.user is None:
            raise web.HTTPSeeOther("/login")
        return self.user


VIEWER: web.RequestKey[Viewer] = web.RequestKey("viewer")
STARTED: web.RequestKey[float] = web.RequestKey("started")


def parse_context(raw: str) -> Viewer:
    data = json.loads(base64.urlsafe_b64decode(raw.encode()))
    user = data.get("user")
    return Viewer(
        user=User(
            id=user["id"],
            email=user["email"],
            role=user["role"],
            org_id=user["org_id"],
            org_name=user["org_name"],
            two_factor=bool(user["two_factor"]),
            capabilities=tuple(user["capabilities"]),
        )
        if user
        else None,
        csrf=str(data.get("csrf") or ""),
        session=data.get("session"),
        client_ip=data.get("client_ip"),
        gateway=str(data["gateway"]),
        base_url=str(data.get("base_url") or ""),
        fresh=bool(data.get("fresh")),
        invite=data.get("invite"),
    )


class ProxyGuard:
    """Admits only requests the gateway forwarded (they carry the shared secret), and reads who is asking."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self.secret: str | None = None

    async def _secret(self) -> str | None:
        if self.secret is None:
            try:
                entry = await (await self.bus.kv(KV_BUCKET)).get(SECRET_KEY)
            except Exception:
                return None
            self.secret = entry.value.decode() if entry.value else None
        return self.secret

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in OPEN_PATHS:
            return await handler(request)
        request[STARTED] = time.perf_counter()
        secret = await self._secret()
        sent = request.headers.get(PROXY_AUTH_HEADER, "")
        if secret is None or not hmac.compare_digest(secret.encode(), sent.encode()):
            return web.Response(status=403, text="the web UI is served through the AgentPort gateway")
        try:
            request[VIEWER] = parse_context(request.headers[CONTEXT_HEADER])
        except (KeyError, ValueError, TypeError, binascii.Error):
            return web.Response(status=400, text="missing or malformed gateway context")
        return await handler(request)


def viewer(request: web.Request) -> Viewer:
    return request[VIEWER]
