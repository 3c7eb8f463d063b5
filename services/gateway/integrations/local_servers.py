"""Local stdio servers the operator configured on the executors, as gateways show them: installable entries
beside the catalog, never definable through the API, and without their command or environment."""

from __future__ import annotations

import json
from typing import Any

from shared.bus import Bus

ANNOUNCE_BUCKET, ANNOUNCE_KEY = "keys", "stdio_servers"


async def announced(bus: Bus) -> list[dict[str, Any]]:
    """What the executors announced (nothing when no executor has started yet)."""
    kv = await bus.kv(ANNOUNCE_BUCKET)
    try:
        entry = await kv.get(ANNOUNCE_KEY)
    except Exception:
        return []
    if entry.value is None:
        return []
    data = json.loads(entry.value)
    return [item for item in data if isinstance(item, dict)] if isinstance(data, list) else []


def visible_to(entry: dict[str, Any], org_id: str, org_name: str | None) -> bool:
    """An entry limited to some orgs (by name or id) is shown to those only."""
    orgs = entry.get("orgs")
    return orgs is None or org_id in orgs or (org_name is not None and org_name in orgs)


def view(entry: dict[str, Any]) -> dict[str, Any]:
    """The entry as an integration an org can install."""
    return {
        "id": entry["id"],
        "name": entry.get("name") or entry["id"],
        "description": entry.get("description") or "",
        "type": "mcp",
        "kind": "stdio",
        "category": "local",
        "source": "operator",
        "mcp_url": "",
        "auth_methods": list(entry.get("auth_methods") or ["none"]),
        "timeout_seconds": entry.get("timeout_seconds"),
    }
