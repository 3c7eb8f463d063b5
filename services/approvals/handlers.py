"""Which events the approvals service consumes, the commands it answers, and what each does."""

from __future__ import annotations

from typing import Any

import asyncpg

from services.approvals import requests
from shared.bus import Bus
from shared.errors import BadRequest, NotFound
from shared.events import Actor, AnyEvent, CallRuled, OrgSettingsUpdated

DECISIONS = ("approve_once", "allow_tool", "deny")


class ApprovalHandlers:
    def __init__(self, bus: Bus, pool: asyncpg.Pool, default_expiry: int, log: Any) -> None:
        self.bus = bus
        self.pool = pool
        self.default_expiry = default_expiry
        self.log = log

    async def on_event(self, event: AnyEvent) -> None:
        if isinstance(event, CallRuled) and event.verdict == "hold":
            events = await requests.open_or_join(self.pool, event, self.default_expiry)
            await self.bus.publish_all(events)
        elif isinstance(event, OrgSettingsUpdated):
            await self.pool.execute(
                """INSERT INTO org_settings (org_id, approval_expiry_seconds) VALUES ($1, $2)
                   ON CONFLICT (org_id) DO UPDATE SET approval_expiry_seconds = EXCLUDED.approval_expiry_seconds""",
                event.org_id,
                event.approval_expiry_seconds,
            )

    async def announce(self, row: asyncpg.Record) -> None:
        """Publish a decided request's events, then remember they are out."""
        await self.bus.publish_all(requests.decision_events(row))
        await requests.mark_announced(self.pool, row["request_id"])
        self.log.info("approval.decided", request_id=row["request_id"], decision=row["decision"])

    async def decide_command(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Answer `approvals.decide` from the gateway on behalf of a human."""
        decision = payload.get("decision")
        if decision not in DECISIONS:
            raise BadRequest(f"decision must be one of {', '.join(DECISIONS)}")
        actor = Actor.model_validate(payload["actor"])
        row = await requests.decide(
            self.pool,
            str(payload["org_id"]),
            str(payload["request_id"]),
            decision,
            actor,
            payload.get("ip"),
            payload.get("reason"),
        )
        await self.announce(row)
        return requests.public_view(row)

    async def get_command(self, payload: dict[str, Any]) -> dict[str, Any]:
        row = await self.pool.fetchrow(
            "SELECT * FROM requests WHERE request_id=$1 AND org_id=$2",
            str(payload["request_id"]),
            str(payload["org_id"]),
        )
        if row is None:
            raise NotFound(f"no approval request {payload['request_id']}")
        return requests.public_view(row)

    async def list_command(self, payload: dict[str, Any]) -> dict[str, Any]:
        """A page of an org's requests, newest first, with the total that match."""
        limit = max(1, min(int(payload.get("limit") or 100), 500))
        offset = max(0, int(payload.get("offset") or 0))
        rows = await self.pool.fetch(
            """SELECT *, count(*) OVER () AS total FROM requests WHERE org_id=$1 AND ($2::text IS NULL OR status=$2)
               ORDER BY created_at DESC, request_id LIMIT $3 OFFSET $4""",
            str(payload["org_id"]),
            payload.get("status"),
            limit,
            offset,
        )
        return {"items": [requests.public_view(r) for r in rows], "total": rows[0]["total"] if rows else 0}

    async def sweep(self) -> None:
        """Expire what is due and re-announce anything a crash left unpublished."""
        for row in await requests.expire_due(self.pool):
            await self.announce(row)
        for row in await requests.unannounced(self.pool):
            await self.announce(row)
