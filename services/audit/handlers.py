"""The audit service consumes every event and answers log queries for the gateway."""

from __future__ import annotations

from typing import Any

import asyncpg

from services.audit import log as audit_log
from shared.errors import NotFound
from shared.events import TERMINAL_TYPES, AnyEvent
from shared.metrics import CALLS


class AuditHandlers:
    def __init__(self, pool: asyncpg.Pool, log: Any) -> None:
        self.pool = pool
        self.log = log

    async def on_event(self, event: AnyEvent) -> None:
        appended = await audit_log.append(self.pool, event)
        if appended and event.type in TERMINAL_TYPES:
            CALLS.labels(event.type.removeprefix("call.")).inc()

    async def logs_command(self, payload: dict[str, Any]) -> dict[str, Any]:
        return await audit_log.list_calls(self.pool, str(payload["org_id"]), payload.get("filters") or {})

    async def call_command(self, payload: dict[str, Any]) -> dict[str, Any]:
        story = await audit_log.call_story(self.pool, str(payload["org_id"]), str(payload["call_id"]))
        if story is None:
            raise NotFound(f"no call {payload['call_id']} in the audit log")
        return story

    async def open_calls_command(self, payload: dict[str, Any]) -> list[dict[str, Any]]:
        return await audit_log.open_calls(self.pool, float(payload.get("older_than_seconds", 300)))

    async def verify_command(self, payload: dict[str, Any]) -> dict[str, Any]:
        return await audit_log.verify(self.pool, payload.get("org_id"))
