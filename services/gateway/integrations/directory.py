"""Integrations an org can install: the bundled catalog, its own custom definitions and the operator's local
servers, each seen as one view, and which of them the org has installed."""

from __future__ import annotations

from typing import Any

import asyncpg

from services.gateway.integrations import local_servers
from services.gateway.integrations.catalog import CatalogEntry, get_entry, load_catalog, search_catalog
from shared.bus import Bus
from shared.errors import NotFound


def _catalog_view(entry: CatalogEntry) -> dict[str, Any]:
    data = entry.model_dump(mode="json")
    data["source"] = "catalog"
    return data


def _custom_view(row: asyncpg.Record) -> dict[str, Any]:
    auth = row["auth"]
    view = {
        "id": row["integration_id"],
        "name": row["name"],
        "description": row["description"],
        "type": "mcp",
        "kind": row["kind"],
        "category": "custom",
        "mcp_url": row["mcp_url"],
        "source": "custom",
        "auth_methods": _custom_auth_methods(row["kind"], auth["type"]),
        "auth": auth,
        "timeout_seconds": row["timeout_seconds"],
    }
    if row["kind"] == "openapi" and row["openapi"]:
        source = row["openapi"]
        view.update(
            type="api",
            base_url=source.get("base_url"),
            document_url=source.get("document_url"),
            operations=source.get("operations"),
        )
    return view


def _custom_auth_methods(kind: str, auth_type: str) -> list[str]:
    """A custom MCP server that takes a bearer token may also hand one out through OAuth (discovered on install)."""
    if auth_type == "none":
        return ["none"]
    return ["token", "oauth"] if kind == "mcp" and auth_type == "bearer" else ["token"]


def _matches(view: dict[str, Any], tokens: list[str]) -> bool:
    return all(
        any(t in str(view.get(f) or "").lower() for f in ("id", "name", "description", "category")) for t in tokens
    )


class Directory:
    """Finding integrations: search and look up one, across the catalog, custom definitions and local servers."""

    def __init__(self, bus: Bus, pool: asyncpg.Pool) -> None:
        self.bus = bus
        self.pool = pool
        self.catalog = load_catalog()

    async def available(self, org_id: str, type_: str | None, query: str | None) -> list[dict[str, Any]]:
        """Catalog and custom integrations matching a query (tokens ANDed, case-insensitive)."""
        custom = [
            _custom_view(r)
            for r in await self.pool.fetch("SELECT * FROM custom_integrations WHERE org_id=$1 ORDER BY name", org_id)
        ]
        custom += await self.local_views(org_id)
        tokens = (query or "").lower().split()
        custom = [c for c in custom if _matches(c, tokens) and (not type_ or c["type"] == type_)]
        installed = await self.installed_ids(org_id)
        views = custom + [_catalog_view(e) for e in search_catalog(self.catalog, query, type_)]
        for view in views:
            view["installed"] = view["id"] in installed
        return views

    async def get(self, org_id: str, integration_id: str) -> dict[str, Any]:
        row = await self.pool.fetchrow(
            "SELECT * FROM custom_integrations WHERE org_id=$1 AND integration_id=$2", org_id, integration_id
        )
        local = [v for v in await self.local_views(org_id) if v["id"] == integration_id]
        if row is not None:
            view = _custom_view(row)
        elif local:
            view = local[0]
        else:
            entry = get_entry(self.catalog, integration_id)
            if entry is None:
                raise NotFound(f"no integration {integration_id!r}; list the available integrations to find its id")
            view = _catalog_view(entry)
        view["installed"] = integration_id in await self.installed_ids(org_id)
        return view

    async def local_views(self, org_id: str) -> list[dict[str, Any]]:
        """The operator's local servers this org may see."""
        entries = await local_servers.announced(self.bus)
        if not entries:
            return []
        org_name = await self.pool.fetchval("SELECT name FROM orgs WHERE org_id=$1", org_id)
        return [local_servers.view(e) for e in entries if local_servers.visible_to(e, org_id, org_name)]

    async def installed_ids(self, org_id: str) -> set[str]:
        return {
            r["integration_id"]
            for r in await self.pool.fetch("SELECT integration_id FROM installed WHERE org_id=$1", org_id)
        }
