"""The lifecycle of one approval request: opened (or joined), decided or expired, announced."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import asyncpg

from shared.errors import Conflict, NotFound
from shared.events import (
    Actor,
    ApprovalDecided,
    ApprovalRequested,
    CallCoalesced,
    CallDenied,
    CallExpired,
    CallReleased,
    CallRuled,
    CallSpec,
    Decision,
    Event,
    derived_id,
    new_id,
)

STATUS_FOR: dict[str, str] = {
    "approve_once": "approved",
    "allow_tool": "approved",
    "deny": "denied",
    "expired": "expired",
}


async def expiry_seconds(conn: asyncpg.Connection, org_id: str, default: int) -> int:
    value = await conn.fetchval("SELECT approval_expiry_seconds FROM org_settings WHERE org_id=$1", org_id)
    return int(value) if value is not None else default


async def open_or_join(pool: asyncpg.Pool, ruled: CallRuled, default_expiry: int) -> list[Event]:
    """Park a held call: a new pending request, or the pending one with identical arguments."""
    spec = ruled.spec
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"{ruled.org_id}/{spec.args_hash}")
        seen = await conn.fetchrow(
            "SELECT r.*, c.coalesced FROM request_calls c JOIN requests r USING (request_id) WHERE c.call_id=$1",
            ruled.call_id,
        )
        if seen is not None:
            return _opening_events(ruled, seen, coalesced=seen["coalesced"], primary_call=seen["call_id"])
        await conn.execute(
            """UPDATE requests SET status='expired', decision='expired', decided_at=now(), announced=false
               WHERE org_id=$1 AND integration_id=$2 AND tool_name=$3 AND args_hash=$4
               AND status='pending' AND expires_at <= now()""",
            ruled.org_id,
            spec.integration_id,
            spec.tool_name,
            spec.args_hash,
        )
        pending = await conn.fetchrow(
            """SELECT * FROM requests WHERE org_id=$1 AND integration_id=$2 AND tool_name=$3 AND args_hash=$4
               AND status='pending' AND expires_at > now()""",
            ruled.org_id,
            spec.integration_id,
            spec.tool_name,
            spec.args_hash,
        )
        if pending is not None:
            await conn.execute(
                "INSERT INTO request_calls (call_id, request_id, coalesced) VALUES ($1, $2, true)",
                ruled.call_id,
                pending["request_id"],
            )
            return _opening_events(ruled, pending, coalesced=True, primary_call=pending["call_id"])
        window = await expiry_seconds(conn, ruled.org_id, default_expiry)
        row = await conn.fetchrow(
            """INSERT INTO requests (request_id, org_id, call_id, integration_id, tool_name, args_hash, spec,
                                     status, expires_at)
               VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', now() + $8::interval) RETURNING *""",
            new_id(),
            ruled.org_id,
            ruled.call_id,
            spec.integration_id,
            spec.tool_name,
            spec.args_hash,
            spec.model_dump(mode="json"),
            timedelta(seconds=window),
        )
        await conn.execute(
            "INSERT INTO request_calls (call_id, request_id, coalesced) VALUES ($1, $2, false)",
            ruled.call_id,
            row["request_id"],
        )
        return _opening_events(ruled, row, coalesced=False, primary_call=ruled.call_id)


def _opening_events(ruled: CallRuled, row: asyncpg.Record, *, coalesced: bool, primary_call: str) -> list[Event]:
    events: list[Event] = [
        ApprovalRequested(
            event_id=derived_id(ruled.call_id, "approval_requested"),
            org_id=ruled.org_id,
            call_id=ruled.call_id,
            request_id=row["request_id"],
            expires_at=row["expires_at"],
            coalesced=coalesced,
            spec=ruled.spec,
        )
    ]
    if coalesced:
        events.append(
            CallCoalesced(
                event_id=derived_id(ruled.call_id, "coalesced"),
                org_id=ruled.org_id,
                call_id=ruled.call_id,
                request_id=row["request_id"],
                into_call_id=primary_call,
            )
        )
    return events


async def decide(
    pool: asyncpg.Pool,
    org_id: str,
    request_id: str,
    decision: Decision,
    actor: Actor | None,
    ip: str | None,
    reason: str | None,
) -> asyncpg.Record:
    """Record a human's decision on a pending request; a request is decided once."""
    row = await pool.fetchrow(
        """UPDATE requests SET status=$3, decision=$4, decided_by=$5, decided_ip=$6, reason=$7,
                  decided_at=now(), announced=false
           WHERE request_id=$1 AND org_id=$2 AND status='pending' AND expires_at > now() RETURNING *""",
        request_id,
        org_id,
        STATUS_FOR[decision],
        decision,
        actor.model_dump(mode="json") if actor else None,
        ip,
        reason,
    )
    if row is not None:
        return row
    existing = await pool.fetchrow("SELECT * FROM requests WHERE request_id=$1 AND org_id=$2", request_id, org_id)
    if existing is None:
        raise NotFound(f"no approval request {request_id}")
    if existing["status"] == "pending":
        raise Conflict("this approval request has expired", status="expired")
    raise Conflict(f"this approval request was already decided: {existing['status']}", status=existing["status"])


async def expire_due(pool: asyncpg.Pool) -> list[asyncpg.Record]:
    """Mark every pending request past its deadline as expired (each exactly once across replicas)."""
    rows: list[asyncpg.Record] = await pool.fetch(
        """UPDATE requests SET status='expired', decision='expired', decided_at=now(), announced=false
           WHERE request_id IN (SELECT request_id FROM requests WHERE status='pending' AND expires_at <= now()
                                FOR UPDATE SKIP LOCKED)
           RETURNING *"""
    )
    return rows


def decision_events(row: asyncpg.Record) -> list[Event]:
    """The facts a decided request announces: the decision, then the primary call's next step."""
    spec = CallSpec.model_validate(row["spec"])
    actor = Actor.model_validate(row["decided_by"]) if row["decided_by"] else None
    org_id, request_id, call_id, decision = row["org_id"], row["request_id"], row["call_id"], row["decision"]
    events: list[Event] = [
        ApprovalDecided(
            event_id=derived_id(request_id, "decided"),
            org_id=org_id,
            call_id=call_id,
            request_id=request_id,
            decision=decision,
            decided_by=actor,
            decided_ip=row["decided_ip"],
            reason=row["reason"],
            integration_id=spec.integration_id,
            tool_name=spec.tool_name,
        )
    ]
    if decision in ("approve_once", "allow_tool"):
        events.append(
            CallReleased(
                event_id=derived_id(call_id, "released"),
                org_id=org_id,
                call_id=call_id,
                request_id=request_id,
                decision=decision,
                approved_args_hash=row["args_hash"],
                spec=spec,
            )
        )
    elif decision == "deny":
        events.append(
            CallDenied(
                event_id=derived_id(call_id, "denied"),
                org_id=org_id,
                call_id=call_id,
                by="human",
                request_id=request_id,
                decided_by=actor,
                reason=row["reason"],
            )
        )
    else:
        events.append(
            CallExpired(event_id=derived_id(call_id, "expired"), org_id=org_id, call_id=call_id, request_id=request_id)
        )
    return events


async def mark_announced(pool: asyncpg.Pool, request_id: str) -> None:
    await pool.execute("UPDATE requests SET announced=true WHERE request_id=$1", request_id)


async def unannounced(pool: asyncpg.Pool) -> list[asyncpg.Record]:
    """Decided requests whose events may not have been published (a crash between commit and publish)."""
    rows: list[asyncpg.Record] = await pool.fetch(
        "SELECT * FROM requests WHERE NOT announced AND decided_at < now() - interval '2 seconds' LIMIT 100"
    )
    return rows


def public_view(row: asyncpg.Record) -> dict[str, Any]:
    """A request as the REST API and the UI show it."""
    spec = row["spec"]
    return {
        "id": row["request_id"],
        "call_id": row["call_id"],
        "status": row["status"],
        "decision": row["decision"],
        "integration_id": row["integration_id"],
        "tool_name": row["tool_name"],
        "arguments": spec["arguments"],
        "args_hash": row["args_hash"],
        "additional_info": spec.get("additional_info"),
        "requested_by": spec["actor"],
        "client_ip": spec.get("client_ip"),
        "created_at": row["created_at"].isoformat(),
        "expires_at": row["expires_at"].isoformat(),
        "decided_at": row["decided_at"].isoformat() if row["decided_at"] else None,
        "decided_by": row["decided_by"],
        "decided_ip": row["decided_ip"],
        "reason": row["reason"],
    }
