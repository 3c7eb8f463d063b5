"""The one service runner: connects NATS and PostgreSQL, serves /health, /ready and /metrics,
runs the consumers a service declares, and drains on SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import structlog
from aiohttp import web
from nats.aio.subscription import Subscription
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from shared import logging as ap_logging
from shared import tracing
from shared.bus import Bus, CommandHandler
from shared.consumers import Consumer, EventHandler, PoisonHandler
from shared.db import connect as db_connect
from shared.errors import Unavailable
from shared.events import AnyEvent, derived_id
from shared.metrics import EVENTS_HANDLED, HANDLER_SECONDS, REGISTRY
from shared.settings import CommonSettings

Setup = Callable[["ServiceContext"], Awaitable[None]]
CTX_KEY: web.AppKey[ServiceContext] = web.AppKey("agentport_ctx")


@dataclass
class ServiceContext:
    """What a running service has: its settings, bus, database pool and HTTP app."""

    name: str
    settings: CommonSettings
    bus: Bus
    db: asyncpg.Pool | None
    app: web.Application
    log: Any
    consumers: dict[str, Consumer] = field(default_factory=dict)
    subscriptions: list[Subscription] = field(default_factory=list)
    background: list[asyncio.Task[Any]] = field(default_factory=list)
    shutdown_hooks: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def pool(self) -> asyncpg.Pool:
        assert self.db is not None, f"{self.name} has no database"
        return self.db

    async def consume(
        self,
        durable: str,
        event_types: Sequence[str],
        handler: EventHandler,
        *,
        concurrency: int = 1,
        ack_wait: float = 30.0,
        on_poison: PoisonHandler | None = None,
        max_ack_pending: int | None = None,
    ) -> Consumer:
        """Declare a durable consumer; its handler is timed and counted."""

        async def measured(event: AnyEvent) -> None:
            started = time.perf_counter()
            outcome = "ok"
            try:
                await handler(event)
            except Exception:
                outcome = "error"
                raise
            finally:
                HANDLER_SECONDS.labels(durable, event.type).observe(time.perf_counter() - started)
                EVENTS_HANDLED.labels(durable, event.type, outcome).inc()

        consumer = await self.bus.consume(
            durable,
            event_types,
            measured,
            concurrency=concurrency,
            ack_wait=ack_wait,
            on_poison=on_poison,
            max_ack_pending=max_ack_pending,
        )
        self.consumers[durable] = consumer
        return consumer

    def on_bus_reset(self, hook: Callable[[], Awaitable[None]]) -> None:
        """Run `hook` when the event stream is found re-created (the NATS store was lost)."""
        self.bus.on_reset.append(hook)

    async def serve_command(self, name: str, handler: CommandHandler) -> None:
        """Answer a request/reply command on the bus."""
        self.subscriptions.append(await self.bus.serve(name, handler))

    async def listen(self, event_types: Sequence[str], handler: EventHandler) -> None:
        """Receive live events without a durable consumer."""
        self.subscriptions.append(await self.bus.listen(event_types, handler))

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        """Run a background task for the life of the service; a crash is logged, not swallowed."""
        task = asyncio.create_task(coro, name=name)

        def done(t: asyncio.Task[Any]) -> None:
            if not t.cancelled() and t.exception() is not None:
                self.log.error("service.task_crashed", task=name, error=repr(t.exception()))

        task.add_done_callback(done)
        self.background.append(task)
        return task


@dataclass
class ServiceSpec:
    """A service's declaration: its name, database schema, HTTP side and set-up."""

    name: str
    setup: Setup
    schema: str | None = None
    ddl: Path | None = None
    middlewares: Sequence[Any] = ()
    http_host: Callable[[Any], str] = lambda s: s.health_host
    http_port: Callable[[Any], int] = lambda s: s.health_port
    client_max_size: int = 4 * 1024 * 1024


async def _health(_: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def _ready(request: web.Request) -> web.Response:
    ctx = request.app[CTX_KEY]
    checks: dict[str, str] = {}
    checks["nats"] = "ok" if ctx.bus.nc.is_connected else "down"
    checks["stream"] = "ok" if ctx.bus.stream_ok else "missing"
    stalled = sorted(c.durable for c in ctx.consumers.values() if not c.healthy)
    checks["consumers"] = "ok" if not stalled else "failing: " + ", ".join(stalled)
    if ctx.db is not None:
        try:
            async with asyncio.timeout(2):
                await ctx.db.fetchval("SELECT 1")
            checks["postgres"] = "ok"
        except Exception:
            checks["postgres"] = "down"
    ready = all(v == "ok" for v in checks.values()) and not ctx.stopping.is_set()
    return web.json_response(
        {"status": "ready" if ready else "not_ready", "service": ctx.name, "checks": checks},
        status=200 if ready else 503,
    )


async def _metrics(_: web.Request) -> web.Response:
    return web.Response(body=generate_latest(REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST})


def instance_id(settings: CommonSettings, name: str) -> str:
    """A stable-enough identity for this process, used in logs and claims."""
    import os
    import socket

    return settings.instance_id or derived_id(name, socket.gethostname(), str(os.getpid()))[:12]


async def start_service(spec: ServiceSpec, settings: CommonSettings) -> tuple[ServiceContext, web.AppRunner]:
    """Connect everything, run the service's set-up and start serving HTTP."""
    ap_logging.configure(spec.name, settings.log_level, settings.log_format)
    tracing.configure(spec.name)
    log = structlog.get_logger(spec.name)
    if not settings.nats_url:
        raise Unavailable("NATS_URL is not set (use `agentport serve all` to start embedded servers)")
    bus = await Bus.connect(
        settings.nats_url, settings.namespace, f"agentport-{spec.name}", policy=settings.stream_policy()
    )
    db = None
    if spec.schema is not None:
        if not settings.database_url:
            raise Unavailable("DATABASE_URL is not set")
        db = await db_connect(settings.database_url, f"{settings.namespace}_{spec.schema}", spec.ddl)
    app = web.Application(middlewares=list(spec.middlewares), client_max_size=spec.client_max_size)
    ctx = ServiceContext(name=spec.name, settings=settings, bus=bus, db=db, app=app, log=log)
    app[CTX_KEY] = ctx
    app.router.add_get("/health", _health)
    app.router.add_get("/ready", _ready)
    app.router.add_get("/metrics", _metrics)
    await spec.setup(ctx)
    ctx.spawn(_watch_stream(ctx), "bus-watchdog")
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None, shutdown_timeout=5)
    await runner.setup()
    host, port = spec.http_host(settings), spec.http_port(settings)
    site = web.TCPSite(runner, host, port, reuse_address=True)
    await site.start()
    bound = runner.addresses[0] if runner.addresses else (host, port)
    ctx.state["http_address"] = bound
    log.info("service.started", http=f"http://{bound[0]}:{bound[1]}", namespace=settings.namespace)
    return ctx, runner


STREAM_CHECK_SECONDS = 3.0


async def _watch_stream(ctx: ServiceContext) -> None:
    """Notice a lost NATS store within seconds: re-create the stream and consumers, run the reset hooks."""
    while True:
        await asyncio.sleep(STREAM_CHECK_SECONDS)
        if not ctx.bus.nc.is_connected:
            continue
        try:
            await ctx.bus.check_stream()
        except Exception as exc:
            ctx.log.warning("bus.stream_check_failed", error=str(exc) or type(exc).__name__)


async def stop_service(ctx: ServiceContext, runner: web.AppRunner) -> None:
    """Stop taking work, let in-flight handlers finish, then close connections."""
    ctx.stopping.set()
    for hook in reversed(ctx.shutdown_hooks):
        with contextlib.suppress(Exception):
            await hook()
    for sub in ctx.subscriptions:
        with contextlib.suppress(Exception):
            await sub.unsubscribe()
    await asyncio.gather(*(c.stop() for c in ctx.consumers.values()), return_exceptions=True)
    for task in ctx.background:
        task.cancel()
    await asyncio.gather(*ctx.background, return_exceptions=True)
    await runner.cleanup()
    await ctx.bus.close()
    if ctx.db is not None:
        await ctx.db.close()
    ctx.log.info("service.stopped")


async def run_until_signalled(spec: ServiceSpec, settings: CommonSettings) -> None:
    """Run a service until SIGTERM or SIGINT, then drain it."""
    ctx, runner = await start_service(spec, settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await stop_service(ctx, runner)
