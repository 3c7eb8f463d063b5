"""Which events the policy service consumes and what it does with each."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from services.policy import pinning
from services.policy.modes import apply_mode_set, current_mode, modes_for
from services.policy.rules import rule_on
from shared.bus import Bus
from shared.consumers import Consumer
from shared.events import (
    SYSTEM,
    AnyEvent,
    ApprovalDecided,
    CallDenied,
    CallRequested,
    CallRuled,
    IntegrationToolsRefreshed,
    PolicyModeSet,
    ToolDef,
    derived_id,
)


class PolicyHandlers:
    def __init__(self, bus: Bus, pool: asyncpg.Pool, log: Any) -> None:
        self.bus = bus
        self.pool = pool
        self.log = log
        self.consumer: Consumer | None = None

    async def on_event(self, event: AnyEvent) -> None:
        if isinstance(event, PolicyModeSet):
            await self.mode_set(event)
        elif isinstance(event, IntegrationToolsRefreshed):
            await self.tools_refreshed(event)
        elif isinstance(event, CallRequested):
            await self.rule(event)
        elif isinstance(event, ApprovalDecided) and event.decision == "allow_tool":
            await self.allow_forever(event)

    async def rule(self, event: CallRequested) -> None:
        """Publish the verdict for a requested call; a deny is also the call's end."""
        spec = event.spec
        mode = await current_mode(self.pool, event.org_id, spec.integration_id, spec.tool_name)
        changed = await pinning.has_pending_change(self.pool, event.org_id, spec.integration_id, spec.tool_name)
        verdict, rule = rule_on(mode, changed=changed)
        ruled = CallRuled(
            event_id=derived_id(event.call_id, "ruled"),
            org_id=event.org_id,
            call_id=event.call_id,
            verdict=verdict,
            rule=rule,
            spec=spec,
        )
        await self.bus.publish(ruled)
        if verdict == "deny":
            await self.bus.publish(
                CallDenied(
                    event_id=derived_id(event.call_id, "denied"),
                    org_id=event.org_id,
                    call_id=event.call_id,
                    by="policy",
                    rule=rule,
                    reason=f"the tool {spec.integration_id}/{spec.tool_name} is blocked by policy",
                )
            )
        self.log.info("call.ruled", call_id=event.call_id, verdict=verdict, rule=rule)

    async def allow_forever(self, event: ApprovalDecided) -> None:
        """ "Always allow this tool" becomes a mode change, recorded like any other."""
        change = PolicyModeSet(
            event_id=derived_id(event.request_id, "allow_tool"),
            org_id=event.org_id,
            integration_id=event.integration_id,
            tool_name=event.tool_name,
            mode="allow",
            actor=event.decided_by or SYSTEM,
            source="approval",
            request_id=event.request_id,
            occurred_at=event.occurred_at,
        )
        await self.mode_set(change)
        await self.bus.publish(change)

    async def mode_set(self, event: PolicyModeSet) -> None:
        """Apply a mode change and pin it; if the upstream already moved on from what was pinned, that is a change."""
        await apply_mode_set(self.pool, event)
        pinned = await pinning.pin_mode_set(self.pool, event)
        latest = await pinning.latest_definition(self.pool, event.org_id, event.integration_id, event.tool_name)
        if pinned is not None and latest is not None:
            await self._record_changes(event.org_id, event.integration_id, (latest,), event.event_id, event.occurred_at)

    async def tools_refreshed(self, event: IntegrationToolsRefreshed) -> None:
        """Compare each pinned tool with what the upstream offers now."""
        await pinning.remember_definitions(self.pool, event.org_id, event.integration_id, event.tools)
        await self._record_changes(event.org_id, event.integration_id, event.tools, event.event_id, event.occurred_at)

    async def _record_changes(
        self, org_id: str, integration_id: str, tools: tuple[ToolDef, ...], cause_id: str, at: datetime
    ) -> None:
        for change in await pinning.changes_in(self.pool, org_id, integration_id, tools, cause_id, at):
            # Published before it is applied: a crash in between repeats the same event (same id), never loses it.
            await self.bus.publish(change)
            await pinning.apply_change(self.pool, change)
            self.log.warning(
                "policy.tool_changed",
                integration_id=integration_id,
                tool=change.tool_name,
                mode_before=change.mode_before,
                mode_after=change.mode_after,
            )

    async def tool_changes_command(self, payload: dict[str, Any]) -> list[dict[str, Any]]:
        """Answer `policy.tool_changes`: upstream changes to pinned tools that no human has reviewed yet."""
        after_seq = int(payload.get("after_seq") or 0)
        if after_seq and self.consumer is not None:
            await self.consumer.wait_for_seq(after_seq, timeout=2.0)
        return await pinning.pending_changes(
            self.pool, str(payload["org_id"]), payload.get("integration_id"), payload.get("tool_name")
        )

    async def modes_command(self, payload: dict[str, Any]) -> dict[str, dict[str, str]]:
        """Answer `policy.modes`: the explicitly set modes of an org, once changes up to `after_seq` are in."""
        after_seq = int(payload.get("after_seq") or 0)
        if after_seq and self.consumer is not None:
            await self.consumer.wait_for_seq(after_seq, timeout=2.0)
        return await modes_for(self.pool, str(payload["org_id"]), payload.get("integration_id"))
