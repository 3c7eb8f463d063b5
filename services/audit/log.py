"""Appending events to the org's chained log, and reading it back."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from services.audit.chain import GENESIS, entry_hash, verify_rows
from services.audit.summary import STATUS_AFTER, fold
from shared.events import AnyEvent

_SCRUBBED_FIELDS = ("sealed_credential", "password_hash", "key_hash")


def entry_for(event: AnyEvent) -> dict[str, Any]:
    """What the log keeps of an event: everything but sealed secrets and hashes of secrets."""
    data = event.model_dump(mode="json")
    for field in _SCRUBBED_FIELDS:
        if data.get(field):
            data[field] = "[withheld]"
    return data


async def append(pool: asyncpg.Pool, event: AnyEvent) -> bool:
    """Append one event (once: a redelivered event changes nothing); returns False if already logged."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "INSERT INTO chain_heads (org_id, org_seq, hash) VALUES ($1, 0, $2) ON CONFLICT DO NOTHING",
            event.org_id,
            GENESIS,
        )
        head = await conn.fetchrow("SELECT * FROM chain_heads WHERE org_id=$1 FOR UPDATE", event.org_id)
        if await conn.fetchval("SELECT 1 FROM log WHERE event_id=$1", event.event_id):
            return False
        entry = entry_for(event)
        if event.call_id is not None:
            summary = await _update_summary(conn, event)
            if event.type in STATUS_AFTER:
                entry = {**entry, "summary": summary}
        org_seq = head["org_seq"] + 1
        digest = entry_hash(head["hash"], event.org_id, org_seq, event.event_id, entry)
        await conn.execute(
            """INSERT INTO log (org_id, org_seq, event_id, type, call_id, occurred_at, entry, prev_hash, hash)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)""",
            event.org_id,
            org_seq,
            event.event_id,
            event.type,
            event.call_id,
            event.occurred_at,
            entry,
            head["hash"],
            digest,
        )
        await conn.execute("UPDATE chain_heads SET org_seq=$2, hash=$3 WHERE org_id=$1", event.org_id, org_seq, digest)
        return True


async def _update_summary(conn: asyncpg.Connection, event: AnyEvent) -> dict[str, Any]:
    assert event.call_id is not None
    current = await conn.fetchval("SELECT summary FROM calls WHERE call_id=$1 FOR UPDATE", event.call_id)
    summary = fold(current or {"call_id": event.call_id, "org_id": event.org_id}, event)
    await conn.execute(
        """INSERT INTO calls (call_id, org_id, status, integration_id, tool_name, actor_id, requested_at, finished_at,
                              summary)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
           ON CONFLICT (call_id) DO UPDATE SET status=EXCLUDED.status, integration_id=EXCLUDED.integration_id,
             tool_name=EXCLUDED.tool_name, actor_id=EXCLUDED.actor_id, requested_at=EXCLUDED.requested_at,
             finished_at=EXCLUDED.finished_at, summary=EXCLUDED.summary""",
        event.call_id,
        event.org_id,
        summary.get("status", "requested"),
        summary.get("integration_id"),
        summary.get("tool_name"),
        (summary.get("actor") or {}).get("id"),
        _ts(summary.get("requested_at")),
        _ts(summary.get("finished_at")),
        summary,
    )
    return summary


def _ts(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


async def list_calls(pool: asyncpg.Pool, org_id: str, filters: dict[str, Any]) -> dict[str, Any]:
    """Call summaries of an org, newest first, filtered and paginated."""
    limit = max(1, min(int(filters.get("limit") or 50), 500))
    offset = max(0, int(filters.get("offset") or 0))
    rows = await pool.fetch(
        """SELECT summary, count(*) OVER () AS total FROM calls
           WHERE org_id=$1
             AND ($2::text IS NULL OR integration_id=$2) AND ($3::text IS NULL OR tool_name=$3)
             AND ($4::text IS NULL OR status=$4) AND ($5::text IS NULL OR actor_id=$5)
             AND ($6::timestamptz IS NULL OR requested_at >= $6) AND ($7::timestamptz IS NULL OR requested_at < $7)
           ORDER BY requested_at DESC NULLS LAST, call_id LIMIT $8 OFFSET $9""",
        org_id,
        filters.get("integration_id"),
        filters.get("tool_name"),
        filters.get("status"),
        filters.get("actor_id"),
        _ts(filters.get("since")),
        _ts(filters.get("until")),
        limit,
        offset,
    )
    total = rows[0]["total"] if rows else 0
    return {"items": [r["summary"] for r in rows], "total": total, "limit": limit, "offset": offset}


async def open_calls(pool: asyncpg.Pool, older_than_seconds: float, limit: int = 1000) -> list[dict[str, Any]]:
    """Calls, of every org, that have no ending yet and were requested before the cut-off (for reconcile).

    Calls waiting for a human are left out: their approval request ends them (decision or expiry)."""
    rows = await pool.fetch(
        """SELECT call_id, org_id, status FROM calls
           WHERE status NOT IN ('completed', 'failed', 'denied', 'expired', 'coalesced', 'pending_approval')
             AND (requested_at IS NULL OR requested_at < now() - make_interval(secs => $1))
           ORDER BY requested_at NULLS FIRST LIMIT $2""",
        older_than_seconds,
        limit,
    )
    return [dict(r) for r in rows]


async def call_story(pool: asyncpg.Pool, org_id: str, call_id: str) -> dict[str, Any] | None:
    """One call's summary and every log entry about it, in order."""
    summary = await pool.fetchval("SELECT summary FROM calls WHERE call_id=$1 AND org_id=$2", call_id, org_id)
    if summary is None:
        return None
    entries = await pool.fetch(
        "SELECT org_seq, type, occurred_at, entry, hash FROM log WHERE call_id=$1 AND org_id=$2 ORDER BY org_seq",
        call_id,
        org_id,
    )
    return {
        "summary": summary,
        "events": [
            {
                "seq": e["org_seq"],
                "type": e["type"],
                "occurred_at": e["occurred_at"].isoformat(),
                "entry": e["entry"],
                "hash": e["hash"],
            }
            for e in entries
        ],
    }


async def verify(pool: asyncpg.Pool, org_id: str | None = None) -> dict[str, Any]:
    """Re-walk each org's chain; any edit or deletion is reported."""
    orgs = [org_id] if org_id else [r["org_id"] for r in await pool.fetch("SELECT DISTINCT org_id FROM chain_heads")]
    report: dict[str, Any] = {"ok": True, "orgs": {}}
    for org in orgs:
        # One snapshot for the entries and the head: read apart, an append landing in between looked like a
        # deleted entry (the head ahead of the log) and raised a false alarm while calls were being logged.
        async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            rows = [dict(r) for r in await conn.fetch("SELECT * FROM log WHERE org_id=$1 ORDER BY org_seq", org)]
            head = await conn.fetchrow("SELECT * FROM chain_heads WHERE org_id=$1", org)
        problems = verify_rows(rows, dict(head) if head else None)
        report["orgs"][org] = {"entries": len(rows), "problems": problems}
        report["ok"] = report["ok"] and not problems
    return report
