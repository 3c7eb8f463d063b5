"""The calls the gateway accepted, one row each in `calls`, scoped by org.

A call is recorded before its `call.requested` event is published, with that very event kept until the call
is held or ends (a small outbox): a publish that timed out is sent again, with the same event id, when the agent
asks again with its idempotency key or awaits the call, and every open call is sent again after a lost store.
The projection records the same row from `call.requested`, so other replicas and a rebuild know every call too.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from shared.bus import Bus
from shared.events import CallRequested, encode_event, parse_event


@dataclass(frozen=True)
class CallRecord:
    call_id: str
    org_id: str
    integration_id: str | None
    tool_name: str | None
    args_hash: str | None
    idempotency_key: str | None
    request_id: str | None
    published: bool
    pending_event: str | None

    def unpublished(self) -> CallRequested | None:
        """The recorded event, if the bus has not confirmed it yet."""
        if self.published or self.pending_event is None:
            return None
        event = parse_event(self.pending_event)
        return event if isinstance(event, CallRequested) else None

    def asks_for(self, event: CallRequested) -> bool:
        """Whether `event` asks for the same tool with the same arguments as this call."""
        spec = event.spec
        return (self.integration_id, self.tool_name, self.args_hash) == (
            spec.integration_id,
            spec.tool_name,
            spec.args_hash,
        )


class CallRecords:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def record(self, event: CallRequested) -> CallRecord | None:
        """Record a new call (unpublished); if its id (so its idempotency key) is taken, the call recorded first."""
        spec = event.spec
        inserted = await self.pool.fetchval(
            """INSERT INTO calls (call_id, org_id, status, integration_id, tool_name, args_hash, idempotency_key,
                                  published, pending_event, created_at)
               VALUES ($1, $2, 'requested', $3, $4, $5, $6, false, $7, $8)
               ON CONFLICT DO NOTHING RETURNING call_id""",
            event.call_id,
            event.org_id,
            spec.integration_id,
            spec.tool_name,
            spec.args_hash,
            spec.idempotency_key,
            encode_event(event).decode(),
            event.occurred_at,
        )
        if inserted is not None:
            return None
        # The call id derives from the org and the key, so the call holding the key is the one with this id.
        earlier = await self.find(event.org_id, event.call_id)
        if earlier is None:
            raise RuntimeError(f"call {event.call_id} is neither new nor recorded for its org")
        return earlier

    async def find(self, org_id: str, call_id: str) -> CallRecord | None:
        """The org's call with this id (another org's call is not found)."""
        return _record(
            await self.pool.fetchrow(
                """SELECT call_id, org_id, integration_id, tool_name, args_hash, idempotency_key, request_id,
                          published, pending_event
                   FROM calls WHERE call_id=$1 AND org_id=$2""",
                call_id,
                org_id,
            )
        )

    async def confirm(self, event: CallRequested) -> None:
        """The bus stored the call's event. The event is kept until the call is held or ends (the projection
        clears it then), to be published again if NATS loses its store meanwhile."""
        await self.pool.execute(
            "UPDATE calls SET published=true WHERE call_id=$1 AND org_id=$2",
            event.call_id,
            event.org_id,
        )

    async def republish_open(self, bus: Bus, within_seconds: float) -> int:
        """After NATS lost its store: publish again (same event ids) the calls accepted within the window that
        are neither held nor ended, so they are ruled and run (an executor's claim keeps any from running twice)."""
        rows = await self.pool.fetch(
            """SELECT pending_event FROM calls
               WHERE outcome IS NULL AND request_id IS NULL AND pending_event IS NOT NULL
                 AND created_at > now() - make_interval(secs => $1)
               ORDER BY created_at""",
            within_seconds,
        )
        for row in rows:
            await bus.publish(parse_event(row["pending_event"]))
        return len(rows)

    async def left_open(self, older_than_seconds: float, limit: int = 1000) -> list[CallRecord]:
        """Calls of every org accepted before the cut-off that have no ending and wait for no human (reconcile)."""
        rows = await self.pool.fetch(
            """SELECT call_id, org_id, integration_id, tool_name, args_hash, idempotency_key, request_id,
                      published, pending_event
               FROM calls
               WHERE outcome IS NULL AND request_id IS NULL AND NOT coalesced
                 AND created_at < now() - make_interval(secs => $1)
               ORDER BY created_at LIMIT $2""",
            older_than_seconds,
            limit,
        )
        return [CallRecord(**dict(row)) for row in rows]

    async def forget(self, event: CallRequested) -> None:
        """The bus refused the call's event for good (too large): it never existed."""
        await self.pool.execute(
            "DELETE FROM calls WHERE call_id=$1 AND org_id=$2 AND NOT published", event.call_id, event.org_id
        )


def _record(row: asyncpg.Record | None) -> CallRecord | None:
    return CallRecord(**dict(row)) if row is not None else None
