"""The tools of an org's installed integrations: listing and describing them with their approval mode, reading
them again from the upstream, and a human setting a tool's mode (pinned to the definition they saw)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from services.gateway.identity.principals import MANAGE, Principal
from services.gateway.integrations.installs import Installs
from services.gateway.integrations.tool_pinning import pending_changes, pinned_definition
from services.gateway.projection import Projection
from shared.bus import Bus
from shared.errors import BadRequest, NotFound
from shared.events import IntegrationToolsRefreshed, PolicyModeSet, ToolDef, ToolMode

DEFAULT_MODE: ToolMode = "require_approval"


class Tools:
    """Installed tools and their modes; modes live in the policy service, asked over the bus."""

    def __init__(self, bus: Bus, pool: asyncpg.Pool, projection: Projection, installs: Installs) -> None:
        self.bus = bus
        self.pool = pool
        self.projection = projection
        self.installs = installs
        # The last mode change this replica published per org, so its own reads include it.
        self._mode_seq: dict[str, int] = {}

    async def list(self, org_id: str, integration_id: str | None, query: str | None) -> list[dict[str, Any]]:
        """Installed tools with their current approval mode."""
        rows = await self.pool.fetch(
            """SELECT * FROM tools WHERE org_id=$1 AND ($2::text IS NULL OR integration_id=$2)
               ORDER BY integration_id, name""",
            org_id,
            integration_id,
        )
        if integration_id is not None and not rows:
            await self.installs.installed_one(org_id, integration_id)
        tokens = (query or "").lower().split()
        rows = [
            r
            for r in rows
            if all(
                t in f"{r['integration_id']} {r['name']} {r['title'] or ''} {r['description']}".lower() for t in tokens
            )
        ]
        modes = await self.modes(org_id, integration_id)
        return [
            {
                "integration_id": r["integration_id"],
                "name": r["name"],
                "title": r["title"],
                "description": r["description"],
                "input_schema": r["input_schema"],
                "mode": modes.get(r["integration_id"], {}).get(r["name"], DEFAULT_MODE),
            }
            for r in rows
        ]

    async def describe(self, org_id: str, integration_id: str, tool_name: str) -> dict[str, Any]:
        """One tool with its mode and, when the upstream changed it since its mode was set, that change."""
        for tool in await self.list(org_id, integration_id, None):
            if tool["name"] == tool_name:
                change = (await self.changes(org_id, integration_id, tool_name)).get((integration_id, tool_name))
                return {**tool, "changed": change} if change else tool
        raise NotFound(f"integration {integration_id!r} has no tool {tool_name!r}")

    async def changes(
        self, org_id: str, integration_id: str | None, tool_name: str | None = None
    ) -> dict[tuple[str, str], dict[str, Any]]:
        """Upstream changes to tools whose mode a human set, not yet reviewed (with a diff each)."""
        return await pending_changes(self.bus, org_id, integration_id, tool_name, self._mode_seq.get(org_id, 0))

    async def refresh(self, who: Principal, integration_id: str) -> dict[str, Any]:
        """Read an installed integration's tools from the upstream now."""
        await self.installs.installed_one(who.org_id, integration_id)
        answer = await self.bus.request(
            "executor.refresh_tools",
            {"org_id": who.org_id, "integration_id": integration_id},
            timeout=self.installs.install_wait,
        )
        tools = tuple(ToolDef.model_validate(t) for t in answer["tools"])
        # The executor published the change; applying it here too lets this reply show it at once.
        await self.projection.apply(
            IntegrationToolsRefreshed(
                org_id=who.org_id, integration_id=integration_id, tools=tools, trigger="on_demand"
            )
        )
        return {
            "integration_id": integration_id,
            "changed": answer["changed"],
            "tool_count": len(tools),
            "tools": await self.list(who.org_id, integration_id, None),
        }

    async def modes(self, org_id: str, integration_id: str | None) -> dict[str, dict[str, str]]:
        result: dict[str, dict[str, str]] = await self.bus.request(
            "policy.modes",
            {"org_id": org_id, "integration_id": integration_id, "after_seq": self._mode_seq.get(org_id, 0)},
        )
        return result

    async def set_mode(
        self,
        who: Principal,
        integration_id: str,
        tool_name: str,
        mode: str,
        confirm_allow: Callable[[], Awaitable[None]] | None = None,
    ) -> dict[str, Any]:
        """Record a human's choice of mode for one tool; `confirm_allow` is awaited when it lifts the tool's
        approval gate (a mode other than allow becomes allow) and may refuse."""
        who.require_human(MANAGE, "change a tool's approval mode")
        if mode not in ("allow", "require_approval", "deny"):
            raise BadRequest("mode must be one of allow, require_approval, deny")
        tool = await self.describe(who.org_id, integration_id, tool_name)
        if confirm_allow is not None and mode == "allow" and tool["mode"] != "allow":
            await confirm_allow()
        # The mode is pinned to the definition the human is looking at; a later upstream change is caught.
        seq = await self.bus.publish(
            PolicyModeSet(
                org_id=who.org_id,
                integration_id=integration_id,
                tool_name=tool_name,
                mode=mode,  # type: ignore[arg-type]
                actor=who.actor,
                pinned=pinned_definition(tool),
            )
        )
        self._mode_seq[who.org_id] = max(seq, self._mode_seq.get(who.org_id, 0))
        return await self.describe(who.org_id, integration_id, tool_name)
