"""The policy service's read model: each tool's mode per org, rebuilt from `policy.mode_set`."""

from __future__ import annotations

import asyncpg

from shared.events import PolicyModeSet, ToolMode


async def current_mode(pool: asyncpg.Pool, org_id: str, integration_id: str, tool_name: str) -> ToolMode | None:
    """The mode a human (or an approval) set for this tool, or None if never set."""
    mode = await pool.fetchval(
        "SELECT mode FROM tool_modes WHERE org_id=$1 AND integration_id=$2 AND tool_name=$3",
        org_id,
        integration_id,
        tool_name,
    )
    return mode  # type: ignore[no-any-return]


async def apply_mode_set(pool: asyncpg.Pool, event: PolicyModeSet) -> None:
    """Record a mode change; replaying an older event never overrides a newer one."""
    await pool.execute(
        """
        INSERT INTO tool_modes (org_id, integration_id, tool_name, mode, source, set_by, set_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7)
        ON CONFLICT (org_id, integration_id, tool_name) DO UPDATE
        SET mode = EXCLUDED.mode, source = EXCLUDED.source, set_by = EXCLUDED.set_by, set_at = EXCLUDED.set_at
        WHERE tool_modes.set_at <= EXCLUDED.set_at
        """,
        event.org_id,
        event.integration_id,
        event.tool_name,
        event.mode,
        event.source,
        event.actor.id,
        event.occurred_at,
    )


async def modes_for(pool: asyncpg.Pool, org_id: str, integration_id: str | None) -> dict[str, dict[str, str]]:
    """Every explicitly set mode of an org, by integration then tool."""
    rows = await pool.fetch(
        """SELECT integration_id, tool_name, mode FROM tool_modes
           WHERE org_id=$1 AND ($2::text IS NULL OR integration_id=$2)""",
        org_id,
        integration_id,
    )
    result: dict[str, dict[str, str]] = {}
    for row in rows:
        result.setdefault(row["integration_id"], {})[row["tool_name"]] = row["mode"]
    return result
