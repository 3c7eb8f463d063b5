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
