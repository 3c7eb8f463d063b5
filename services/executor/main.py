"""The executor: performs allowed calls upstream with credentials only it can open."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from services.executor import claims
from services.executor.credentials import load_private_key, publish_public_key
from services.executor.handlers import HEARTBEAT_SECONDS, ExecutorHandlers, describe_failure
from services.executor.integrations import Integrations
from services.executor.oauth_client import OAuthClient
from services.executor.oauth_flows import OAuthFlows
from services.executor.oauth_registrations import ClientRegistry, operator_clients
from services.executor.stdio import announce, load_stdio_servers
from services.executor.token_refresh import UpstreamTokens
from services.executor.tool_lists import ToolLists
from services.executor.upstream import UpstreamPool
from shared.netguard import AllowList, guarded_client
from shared.runner import ServiceContext, ServiceSpec, instance_id
from shared.settings import ExecutorSettings

CALLS_IN_FLIGHT = 32
# Room for an outcome event's own fields around the upstream's result.
OUTCOME_ENVELOPE_BYTES = 16 * 1024


async def setup(ctx: ServiceContext) -> None:
    settings = ctx.settings
    assert isinstance(settings, ExecutorSettings)
    key = load_private_key(settings)
    stdio_servers = load_stdio_servers(settings)
    allow = AllowList.parse(settings.upstream_allow)
    mcp = UpstreamPool(allow, settings.connect_timeout_seconds)
    http = guarded_client(allow, timeout=settings.call_timeout_seconds)
    # A result must also fit in the outcome event that carries it (bytes, as the server counts them).
    max_bytes = min(settings.max_response_bytes, ctx.bus.max_event_bytes() - OUTCOME_ENVELOPE_BYTES)
    integrations = Integrations(ctx.pool, mcp, http, stdio_servers, settings.call_timeout_seconds, max_bytes)
    tool_lists = ToolLists(ctx.bus, ctx.pool, key, integrations, describe_failure, ctx.log)
    mcp.on_tools_changed = tool_lists.changed
    # Hooks run last-first: stop refreshing, then end upstream sessions (and local server processes).
    ctx.shutdown_hooks.extend((http.aclose, mcp.close, tool_lists.close))
    oauth = OAuthClient(allow, settings.connect_timeout_seconds)
    registry = ClientRegistry(ctx.pool, key, oauth, operator_clients(settings))
    tokens = UpstreamTokens(ctx.pool, key, ctx.bus, oauth, registry, settings.upstream_oauth_refresh_skew_seconds)
    mcp.auth_for = tokens.auth_for
    flows = OAuthFlows(ctx.pool, key, oauth, registry, tokens)
    executor_id = instance_id(settings, "executor")
    handlers = ExecutorHandlers(
        ctx.bus,
        ctx.pool,
        integrations,
        tool_lists,
        executor_id,
        ctx.log,
        oauth_tokens=tokens,
        max_calls_per_org=settings.max_calls_per_org,
    )
    await claims.beat(ctx.pool, executor_id)
    ctx.spawn(_heartbeat(ctx, handlers), "executor-heartbeat")
    await ctx.consume("executor-config", ("integration.installed", "integration.removed"), handlers.on_config)
    await ctx.consume(
        "executor-calls",
        ("call.ruled", "call.released"),
        handlers.on_call,
        concurrency=CALLS_IN_FLIGHT,
        ack_wait=settings.ack_wait_seconds,
        on_poison=handlers.on_poison,
    )
    await ctx.serve_command("executor.refresh_tools", tool_lists.refresh_command)
    await ctx.serve_command("executor.oauth_begin", flows.begin)
    await ctx.serve_command("executor.oauth_complete", flows.complete)
    await ctx.serve_command("executor.settle", handlers.settle)

    async def after_store_loss() -> None:
        # What lived only in the lost store: the public key, local servers, and outcomes of recent calls.
        await claims.stream_replaced(ctx.pool, ctx.bus.stream, str(ctx.bus.stream_created))
        await announce(ctx.bus, stdio_servers)
        await publish_public_key(ctx.bus, key)
        await handlers.republish_outcomes(settings.stream_max_age_seconds)

    ctx.on_bus_reset(after_store_loss)
    if await claims.stream_replaced(ctx.pool, ctx.bus.stream, str(ctx.bus.stream_created)):
        # The store was lost while no executor ran: the stream it works on now never had these outcomes.
        ctx.log.warning("executor.stream_replaced", stream=ctx.bus.stream)
        ctx.spawn(handlers.republish_outcomes(settings.stream_max_age_seconds), "republish-outcomes")
    await announce(ctx.bus, stdio_servers)
    if stdio_servers:
        ctx.log.info("executor.stdio_servers", ids=sorted(stdio_servers))
    # Published last: gateways (and tests) take the key as the sign that the executor is ready.
    await publish_public_key(ctx.bus, key)


async def _heartbeat(ctx: ServiceContext, handlers: ExecutorHandlers) -> None:
    """Keep saying this executor is alive, and end the calls of executors that stopped saying so."""
    handlers.beating_since = time.monotonic()
    failing = False
    while True:
        await asyncio.sleep(HEARTBEAT_SECONDS)
        try:
            await claims.beat(ctx.pool, handlers.executor_id)
        except Exception:
            handlers.beating_since = None
            if not failing:
                ctx.log.warning("executor.heartbeat_failed", executor_id=handlers.executor_id)
            failing = True
            continue
        if handlers.beating_since is None:
            handlers.beating_since = time.monotonic()
            ctx.log.info("executor.heartbeat_recovered", executor_id=handlers.executor_id)
        failing = False
        try:
            await handlers.sweep_orphans()
        except Exception as exc:
            ctx.log.warning("executor.sweep_failed", error=type(exc).__name__)


def spec() -> ServiceSpec:
    return ServiceSpec(name="executor", setup=setup, schema="executor", ddl=Path(__file__).with_name("schema.sql"))


def settings() -> ExecutorSettings:
    return ExecutorSettings()
