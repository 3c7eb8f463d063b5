"""At-most-once execution: a call is claimed in PostgreSQL before it may reach upstream."""

from __future__ import annotations

from typing import Any

import asyncpg


async def claim(pool: asyncpg.Pool, call_id: str, org_id: str, executor_id: str) -> asyncpg.Record | None:
    """Claim a call; None means someone already did (the existing claim is returned instead)."""
    row = await pool.fetchrow(
        """INSERT INTO claims (call_id, org_id, claimed_by) VALUES ($1, $2, $3)
           ON CONFLICT (call_id) DO NOTHING RETURNING *""",
        call_id,
        org_id,
        executor_id,
    )
    if row is not None:
        return None
    return await pool.fetchrow("SELECT * FROM claims WHERE call_id=$1", call_id)


async def record_outcome(pool: asyncpg.Pool, call_id: str, outcome: dict[str, Any]) -> dict[str, Any]:
    """Store the outcome before publishing it; the first one recorded wins and is the one to publish."""
    won = await pool.fetchval(
        "UPDATE claims SET outcome=$2, finished_at=now() WHERE call_id=$1 AND outcome IS NULL RETURNING outcome",
        call_id,
        outcome,
    )
    if won is not None:
        return dict(won)
    recorded = await pool.fetchval("SELECT outcome FROM claims WHERE call_id=$1", call_id)
    return dict(recorded) if recorded is not None else outcome


async def beat(pool: asyncpg.Pool, executor_id: str) -> None:
    """Say this executor is alive, so others do not declare its running calls lost."""
    await pool.execute(
        """INSERT INTO executors (executor_id, seen_at) VALUES ($1, now())
           ON CONFLICT (executor_id) DO UPDATE SET seen_at = now()""",
        executor_id,
    )


async def is_alive(pool: asyncpg.Pool, executor_id: str, within_seconds: float) -> bool:
    """Whether an executor has said it is alive within the window."""
    alive = await pool.fetchval(
        "SELECT seen_at > now() - make_interval(secs => $2) FROM executors WHERE executor_id=$1",
        executor_id,
        within_seconds,
    )
    return bool(alive)


async def orphaned(
    pool: asyncpg.Pool, self_id: str, dead_after_seconds: float, limit: int = 100
) -> list[asyncpg.Record]:
    """Claims without an outcome whose executor stopped saying it is alive: their calls' outcomes are unknown."""
    return list(
        await pool.fetch(
            """SELECT c.call_id, c.org_id, c.claimed_by FROM claims c
               LEFT JOIN executors e ON e.executor_id = c.claimed_by
               WHERE c.outcome IS NULL AND c.claimed_by <> $1
                 AND (e.seen_at IS NULL OR e.seen_at < now() - make_interval(secs => $2))
               ORDER BY c.claimed_at LIMIT $3""",
            self_id,
            dead_after_seconds,
            limit,
        )
    )


async def recent_outcomes(pool: asyncpg.Pool, within_seconds: float, after: str = "", limit: int = 500) -> list[Any]:
    """Outcomes recorded within the window, by call id, a page at a time (to re-publish after a lost store)."""
    rows = await pool.fetch(
        """SELECT call_id, outcome FROM claims
           WHERE outcome IS NOT NULL AND finished_at > now() - make_interval(secs => $1) AND call_id > $2
           ORDER BY call_id LIMIT $3""",
        within_seconds,
        after,
        limit,
    )
    return list(rows)


async def settle_state(pool: asyncpg.Pool, call_ids: list[str]) -> dict[str, asyncpg.Record]:
    """The claims of these calls, by call id (absent: nobody claimed it)."""
    rows = await pool.fetch("SELECT * FROM claims WHERE call_id = ANY($1::text[])", call_ids)
    return {row["call_id"]: row for row in rows}


async def stream_replaced(pool: asyncpg.Pool, stream: str, created: str) -> bool:
    """Note the stream's creation time; True if it differs from the one noted before (the store was lost)."""
    before = await pool.fetchval(
        """INSERT INTO stream_epochs AS e (stream, created) VALUES ($1, $2)
           ON CONFLICT (stream) DO UPDATE SET created = EXCLUDED.created
           RETURNING (SELECT created FROM stream_epochs WHERE stream = $1)""",
        stream,
        created,
    )
    return before is not None and before != created
