"""The policy service: rules on every requested call."""

from __future__ import annotations

from pathlib import Path

from services.policy.handlers import PolicyHandlers
from shared.runner import ServiceContext, ServiceSpec
from shared.settings import PolicySettings

CONSUMED = ("policy.mode_set", "call.requested", "approval.decided", "integration.tools_refreshed")


async def setup(ctx: ServiceContext) -> None:
    handlers = PolicyHandlers(ctx.bus, ctx.pool, ctx.log)
    # One ordered consumer: a mode change is always applied before the calls published after it.
    handlers.consumer = await ctx.consume("policy", CONSUMED, handlers.on_event)
    await ctx.serve_command("policy.modes", handlers.modes_command)
    await ctx.serve_command("policy.tool_changes", handlers.tool_changes_command)


def spec() -> ServiceSpec:
    return ServiceSpec(name="policy", setup=setup, schema="policy", ddl=Path(__file__).with_name("schema.sql"))


def settings() -> PolicySettings:
    return PolicySettings()
