"""Wires the web UI into the approvals service: the proxy guard, the pages, static files and the live feed."""

from __future__ import annotations

import asyncio
from pathlib import Path

from aiohttp import web

from services.approvals.web.approval_page import ApprovalPage
from services.approvals.web.gateway_api import GatewayApi
from services.approvals.web.integrations_page import IntegrationsPage
from services.approvals.web.keys_page import KeysPage
from services.approvals.web.live import LIVE_EVENTS, LiveFeed
from services.approvals.web.logs_page import LogsPage
from services.approvals.web.queue_page import QueuePage
from services.approvals.web.settings_page import SettingsPage
from services.approvals.web.sign_in_pages import SignInPages
from services.approvals.web.users_page import UsersPage
from services.approvals.web.viewer import KV_BUCKET, UI_URL_KEY, ProxyGuard
from shared.runner import ServiceContext
from shared.settings import ApprovalsSettings

STATIC = Path(__file__).parent / "static"
STATIC_TYPES = {".css": "text/css", ".js": "text/javascript", ".svg": "image/svg+xml"}


async def static_file(request: web.Request) -> web.StreamResponse:
    """A bundled asset (everything is served locally: the UI works offline and air-gapped)."""
    name = request.match_info["name"]
    path = STATIC / name
    if "/" in name or name.startswith(".") or path.suffix not in STATIC_TYPES or not path.is_file():
        raise web.HTTPNotFound()
    return web.FileResponse(
        path, headers={"Cache-Control": "public, max-age=3600", "Content-Type": STATIC_TYPES[path.suffix]}
    )


async def announce(ctx: ServiceContext, settings: ApprovalsSettings) -> None:
    """Tell the gateway where the UI listens, once the HTTP server is bound."""
    while "http_address" not in ctx.state:  # noqa: ASYNC110 - the runner records the address; it signals nothing
        await asyncio.sleep(0.05)
    host, port = ctx.state["http_address"][:2]
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    url = settings.ui_url or (f"http://[{host}]:{port}" if ":" in str(host) else f"http://{host}:{port}")
    await (await ctx.bus.kv(KV_BUCKET)).put(UI_URL_KEY, url.rstrip("/").encode())
    ctx.log.info("approvals.ui_announced", url=url)


async def setup_web(ctx: ServiceContext, settings: ApprovalsSettings) -> None:
    guard = ProxyGuard(ctx.bus)
    ctx.app.middlewares.append(guard.middleware)
    api = GatewayApi(guard)
    await api.start()
    ctx.shutdown_hooks.append(api.stop)
    feed = LiveFeed(ctx.stopping)
    await ctx.listen(LIVE_EVENTS, feed.on_event)
    router = ctx.app.router
    for pages in (
        SignInPages(),
        QueuePage(ctx.pool),
        ApprovalPage(ctx.pool, api),
        IntegrationsPage(api),
        KeysPage(api),
        LogsPage(ctx.bus, api),
        SettingsPage(api),
        UsersPage(api),
    ):
        router.add_routes(pages.routes())
    router.add_get("/ui/events", feed.stream)
    router.add_get("/static/{name}", static_file)
    ctx.spawn(announce(ctx, settings), "approvals-ui-announce")
