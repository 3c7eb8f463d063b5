"""Tool-definition pinning as humans see it: the definition a mode is pinned to, and a pending upstream change
shown as a diff until a human reviews it (by setting the tool's mode again)."""

from __future__ import annotations

import difflib
import json
from typing import Any

from shared.bus import Bus
from shared.events import ToolDef, tool_fingerprint


def pinned_definition(tool: dict[str, Any]) -> ToolDef:
    """The definition a human is looking at when setting a mode: what the mode gets pinned to."""
    return ToolDef(
        name=tool["name"],
        description=tool.get("description") or "",
        title=tool.get("title"),
        input_schema=dict(tool.get("input_schema") or {"type": "object"}),
    )


def _lines(tool: dict[str, Any]) -> list[str]:
    body = {"description": tool.get("description", ""), "input_schema": tool.get("input_schema", {})}
    return json.dumps(body, indent=2, sort_keys=True, ensure_ascii=False).splitlines()


def definition_diff(before: dict[str, Any], after: dict[str, Any]) -> str:
    """A unified diff of description and input schema, the part a mode is pinned to."""
    name = after.get("name") or before.get("name") or "tool"
    return "\n".join(
        difflib.unified_diff(
            _lines(before), _lines(after), fromfile=f"{name} (approved)", tofile=f"{name} (now)", lineterm=""
        )
    )


def change_view(change: dict[str, Any]) -> dict[str, Any]:
    """A pending change as REST and the approval page show it."""
    before, after = change["before"], change["after"]
    return {
        "detected_at": change["detected_at"],
        "mode_before": change["mode_before"],
        "mode_after": change["mode_after"],
        "before": before,
        "after": after,
        "before_fingerprint": tool_fingerprint(before.get("description", ""), before.get("input_schema", {})),
        "after_fingerprint": tool_fingerprint(after.get("description", ""), after.get("input_schema", {})),
        "diff": definition_diff(before, after),
        "message": "The upstream changed this tool after its mode was set; review the change and set its mode "
        "again to accept it.",
    }


async def pending_changes(
    bus: Bus, org_id: str, integration_id: str | None = None, tool_name: str | None = None, after_seq: int = 0
) -> dict[tuple[str, str], dict[str, Any]]:
    """Unreviewed upstream changes, by (integration, tool), once policy has seen events up to `after_seq`."""
    rows: list[dict[str, Any]] = await bus.request(
        "policy.tool_changes",
        {"org_id": org_id, "integration_id": integration_id, "tool_name": tool_name, "after_seq": after_seq},
    )
    return {(r["integration_id"], r["tool_name"]): change_view(r) for r in rows}
