"""The audit service: every event, appended to a tamper-evident log."""

from __future__ import annotations

from pathlib import Path

from services.audit.handlers import AuditHandlers
from shared.runner import ServiceContext, ServiceSpec
from shared.settings import AuditSettings


async def setup(ctx: ServiceContext) -> None:
    handlers = AuditHandlers(ctx.pool, ctx.log)
    await ctx.consume("audit", (">",), handlers.on_event)
    await ctx.serve_command("audit.logs", handlers.logs_command)
    await ctx.serve_command("audit.call", handlers.call_command)
    await ctx.serve_command("audit.verify", handlers.verify_command)
    await ctx.serve_command("audit.open_calls", handlers.open_calls_command)


def spec() -> ServiceSpec:
    return ServiceSpec(name="audit", setup=setup, schema="audit", ddl=Path(__file__).with_name("schema.sql"))


def settings() -> AuditSettings:
    return AuditSettings()
