"""Tool-definition pinning: a mode a human sets is pinned to the tool's description and input schema; when the
upstream later changes either, an `allow` falls back to `require_approval` until a human sets the mode again.

This stops an upstream from swapping what an approved tool does. Each change is a `policy.tool_changed` event
(audited, with both definitions for the diff).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from shared.events import PolicyModeSet, PolicyToolChanged, ToolDef, ToolMode, derived_id, tool_fingerprint


def fingerprint(tool: ToolDef) -> str:
    return tool_fingerprint(tool.description, tool.input_schema)


def mode_after_change(mode: ToolMode) -> ToolMode:
    """What a changed tool's mode becomes: only `allow` loosens anything, so only it falls back."""
    return "require_approval" if mode == "allow" else mode


def change_for(
    org_id: str, integration_id: str, row: asyncpg.Record, current: ToolDef, cause_id: str, at: datetime
) -> PolicyToolChanged | None:
    """The change event if `current` differs from the definition this tool's mode is pinned to."""
    if row["pinned_fingerprint"] is None or row["pinned_fingerprint"] == fingerprint(current):
        return None
    if row["pending_fingerprint"] == fingerprint(current):
        return None
    mode: ToolMode = row["mode"]
    return PolicyToolChanged(
        event_id=derived_id(cause_id, integration_id, current.name, "tool_changed"),
        org_id=org_id,
        integration_id=integration_id,
        tool_name=current.name,
        before=ToolDef.model_validate(row["pinned"]),
        after=current,
        mode_before=mode,
        mode_after=mode_after_change(mode),
        occurred_at=at,
    )


_PIN_ROW = """SELECT m.mode, m.pinned, m.pinned_fingerprint, c.after_fingerprint AS pending_fingerprint
              FROM tool_modes m LEFT JOIN tool_changes c USING (org_id, integration_id, tool_name)
              WHERE m.org_id=$1 AND m.integration_id=$2 AND m.tool_name=$3"""


async def remember_definitions(
    pool: asyncpg.Pool, org_id: str, integration_id: str, tools: tuple[ToolDef, ...]
) -> None:
    """Keep each tool's latest definition (what an approval's "always allow" pins to)."""
    await pool.executemany(
        """INSERT INTO tool_definitions (org_id, integration_id, tool_name, definition, fingerprint)
           VALUES ($1, $2, $3, $4, $5) ON CONFLICT (org_id, integration_id, tool_name)
           DO UPDATE SET definition=EXCLUDED.definition, fingerprint=EXCLUDED.fingerprint""",
        [(org_id, integration_id, t.name, t.model_dump(mode="json"), fingerprint(t)) for t in tools],
    )


async def changes_in(
    pool: asyncpg.Pool, org_id: str, integration_id: str, tools: tuple[ToolDef, ...], cause_id: str, at: datetime
) -> list[PolicyToolChanged]:
    """The pinned tools among `tools` whose definition differs from their pin (and is not yet recorded)."""
    found: list[PolicyToolChanged] = []
    for tool in tools:
        row = await pool.fetchrow(_PIN_ROW, org_id, integration_id, tool.name)
        if row is None:
            continue
        if row["pinned_fingerprint"] is None:
            await _pin(pool, org_id, integration_id, tool)  # set before pinning existed: trust what is seen now
            continue
        change = change_for(org_id, integration_id, row, tool, cause_id, at)
        if change is not None:
            found.append(change)
    return found


async def apply_change(pool: asyncpg.Pool, change: PolicyToolChanged) -> None:
    """Record a change as pending review and lower the tool's mode; the pin stays on what a human approved."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            """INSERT INTO tool_changes (org_id, integration_id, tool_name, before, after, after_fingerprint,
                                         mode_before, mode_after, detected_at, event_id)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
               ON CONFLICT (org_id, integration_id, tool_name) DO UPDATE SET after=EXCLUDED.after,
                 after_fingerprint=EXCLUDED.after_fingerprint, detected_at=EXCLUDED.detected_at,
                 event_id=EXCLUDED.event_id""",
            change.org_id,
            change.integration_id,
            change.tool_name,
            change.before.model_dump(mode="json"),
            change.after.model_dump(mode="json"),
            fingerprint(change.after),
            change.mode_before,
            change.mode_after,
            change.occurred_at,
            change.event_id,
        )
        await conn.execute(
            """UPDATE tool_modes SET mode=$4, source='tool_changed', set_at=greatest(set_at, $5)
               WHERE org_id=$1 AND integration_id=$2 AND tool_name=$3""",
            change.org_id,
            change.integration_id,
            change.tool_name,
            change.mode_after,
            change.occurred_at,
        )


async def pin_mode_set(pool: asyncpg.Pool, event: PolicyModeSet) -> ToolDef | None:
    """A human (or an approval) set the mode: pin it to what they saw, and the pending change is reviewed."""
    pinned = event.pinned
    if pinned is None:
        raw = await pool.fetchval(
            "SELECT definition FROM tool_definitions WHERE org_id=$1 AND integration_id=$2 AND tool_name=$3",
            event.org_id,
            event.integration_id,
            event.tool_name,
        )
        pinned = ToolDef.model_validate(raw) if raw else None
    await pool.execute(
        "DELETE FROM tool_changes WHERE org_id=$1 AND integration_id=$2 AND tool_name=$3",
        event.org_id,
        event.integration_id,
        event.tool_name,
    )
    if pinned is not None:
        await _pin(pool, event.org_id, event.integration_id, pinned)
    return pinned


async def latest_definition(pool: asyncpg.Pool, org_id: str, integration_id: str, tool_name: str) -> ToolDef | None:
    raw = await pool.fetchval(
        "SELECT definition FROM tool_definitions WHERE org_id=$1 AND integration_id=$2 AND tool_name=$3",
        org_id,
        integration_id,
        tool_name,
    )
    return ToolDef.model_validate(raw) if raw else None


async def _pin(pool: asyncpg.Pool, org_id: str, integration_id: str, tool: ToolDef) -> None:
    await pool.execute(
        "UPDATE tool_modes SET pinned=$4, pinned_fingerprint=$5 WHERE org_id=$1 AND integration_id=$2 AND tool_name=$3",
        org_id,
        integration_id,
        tool.name,
        tool.model_dump(mode="json"),
        fingerprint(tool),
    )


async def has_pending_change(pool: asyncpg.Pool, org_id: str, integration_id: str, tool_name: str) -> bool:
    return bool(
        await pool.fetchval(
            "SELECT true FROM tool_changes WHERE org_id=$1 AND integration_id=$2 AND tool_name=$3",
            org_id,
            integration_id,
            tool_name,
        )
    )


async def pending_changes(
    pool: asyncpg.Pool, org_id: str, integration_id: str | None, tool_name: str | None
) -> list[dict[str, Any]]:
    """Changes no human has reviewed yet."""
    rows = await pool.fetch(
        """SELECT * FROM tool_changes WHERE org_id=$1 AND ($2::text IS NULL OR integration_id=$2)
             AND ($3::text IS NULL OR tool_name=$3) ORDER BY integration_id, tool_name""",
        org_id,
        integration_id,
        tool_name,
    )
    return [
        {
            "integration_id": r["integration_id"],
            "tool_name": r["tool_name"],
            "before": r["before"],
            "after": r["after"],
            "mode_before": r["mode_before"],
            "mode_after": r["mode_after"],
            "detected_at": r["detected_at"].isoformat(),
            "event_id": r["event_id"],
        }
        for r in rows
    ]
