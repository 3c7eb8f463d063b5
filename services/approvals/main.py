"""The approvals service: parks gated calls until a human decides, and expires them."""

from __future__ import annotations

from pathlib import Path

from services.approvals.expiry import run_expiry
from services.approvals.handlers import ApprovalHandlers
from services.approvals.web.app import setup_web
from shared.runner import ServiceContext, ServiceSpec
from shared.settings import ApprovalsSettings


async def setup(ctx: ServiceContext) -> None:
    settings = ctx.settings
    assert isinstance(settings, ApprovalsSettings)
    handlers = ApprovalHandlers(ctx.bus, ctx.pool, settings.default_expiry_seconds, ctx.log)
    await ctx.consume("approvals", ("call.ruled", "org.settings_updated"), handlers.on_event)
    await ctx.serve_command("approvals.decide", handlers.decide_command)
    await ctx.serve_command("approvals.get", handlers.get_command)
    await ctx.serve_command("approvals.list", handlers.list_command)
    ctx.spawn(run_expiry(handlers, settings.expiry_check_seconds), "approvals-expiry")
    await setup_web(ctx, settings)


def spec() -> ServiceSpec:
    return ServiceSpec(name="approvals", setup=setup, schema="approvals", ddl=Path(__file__).with_name("schema.sql"))


def settings() -> ApprovalsSettings:
    return ApprovalsSettings()
