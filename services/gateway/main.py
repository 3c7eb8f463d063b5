"""The gateway: public /mcp and REST API; turns tool calls into events and waits for their outcome."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from services.gateway.agents.calls import Calls
from services.gateway.agents.mcp_endpoint import McpEndpoint, build_server
from services.gateway.agents.metatools import MetaTools
from services.gateway.agents.tool_notices import ToolNotices
from services.gateway.api.rest import RestApi
from services.gateway.http import errors, plain_text
from services.gateway.humans.human_side import setup_human_side
from services.gateway.identity.accounts import Accounts
from services.gateway.identity.oauth.routes import OAuthRoutes
from services.gateway.identity.principals import auth, principal
from services.gateway.integrations.upstream_oauth import UpstreamSignIn
from services.gateway.integrations.wiring import Integrations
from services.gateway.projection import PROJECTED, Projection
from services.gateway.waiters import Waiters
from shared.events import AnyEvent
from shared.netguard import AllowList
from shared.runner import ServiceContext, ServiceSpec
from shared.settings import GatewaySettings

VERSION = "0.1.0"
LIVE_EVENTS = ("*",)


async def setup(ctx: ServiceContext) -> None:
    settings = ctx.settings
    assert isinstance(settings, GatewaySettings)
    projection = Projection(ctx.pool)
    waiters = Waiters()
    await ctx.listen(LIVE_EVENTS, waiters.on_event)
    notices = ToolNotices()

    async def tools_changed(event: AnyEvent) -> None:
        # Applied here too (idempotently) so an agent told of the change reads it at once from any replica.
        await projection.apply(event)
        await notices.on_event(event)

    await ctx.listen(("integration.installed", "integration.removed", "integration.tools_refreshed"), tools_changed)
    # Replicas share one durable consumer: each event is projected once, by whichever replica pulls it.
    await ctx.consume("gateway", PROJECTED, projection.apply, concurrency=1)
    accounts = Accounts(ctx.bus, ctx.pool, projection)
    integrations = Integrations.create(
        ctx.bus,
        ctx.pool,
        waiters,
        projection,
        AllowList.parse(settings.upstream_allow),
        settings.install_wait_seconds,
    )
    calls = Calls(ctx.bus, ctx.pool, waiters, settings.base_url, settings.keepalive_seconds)

    async def after_store_loss() -> None:
        # Calls accepted but not yet held or ended were in the lost store: send them again to be ruled and run.
        count = await calls.records.republish_open(ctx.bus, settings.stream_max_age_seconds)
        ctx.log.warning("gateway.open_calls_republished", count=count)

    ctx.on_bus_reset(after_store_loss)
    meta = MetaTools(integrations, calls, settings.call_wait_seconds, settings.await_budget_seconds)
    endpoint = McpEndpoint(build_server(meta, VERSION, notices))
    await endpoint.start()
    ctx.shutdown_hooks.append(endpoint.stop)

    async def mcp(request: web.Request) -> web.StreamResponse:
        return await endpoint.handle(request, principal(request))

    ctx.app.router.add_route("*", "/mcp", mcp)
    sign_in = UpstreamSignIn(settings, ctx.bus, ctx.pool, integrations.installs)
    integrations.installs.sign_in = sign_in
    ctx.app.router.add_routes(sign_in.routes())
    # A lost upstream sign-in shows in get_auth_status at once, on every replica.
    await ctx.listen(("integration.auth_expired",), projection.apply)
    two_factor = await setup_human_side(ctx, settings, accounts)
    oauth = await OAuthRoutes.create(settings, ctx.bus, ctx.pool, projection, accounts, two_factor)
    ctx.app.router.add_routes(oauth.routes())
    ctx.shutdown_hooks.append(oauth.close)
    ctx.app.router.add_routes(
        RestApi(settings, ctx.bus, accounts, integrations, calls, projection, two_factor=two_factor).routes()
    )
    ctx.state.update(accounts=accounts, projection=projection)


def spec() -> ServiceSpec:
    return ServiceSpec(
        name="gateway",
        setup=setup,
        schema="gateway",
        ddl=Path(__file__).with_name("schema.sql"),
        middlewares=(errors, auth, plain_text),
        http_host=lambda s: s.host,
        http_port=lambda s: s.port,
    )


def settings() -> GatewaySettings:
    return GatewaySettings()
