"""How the REST API shows things, following AgentPort's public shapes: lists are bare JSON arrays (a page's
total and neighbours travel in headers), and AgentPort's field names sit beside AgentPort's own."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from services.gateway.identity.accounts import NewKey


def listed(items: list[dict[str, Any]]) -> web.Response:
    """A whole list, as a bare JSON array."""
    return web.json_response(items)


def paged(request: web.Request, base_url: str, page: dict[str, Any], limit: int, offset: int) -> web.Response:
    """One page of a list as a bare JSON array; `X-Total-Count` and a `Link` to the next and previous pages."""
    total = int(page["total"])
    links = []
    if offset + limit < total:
        links.append(_link(request, base_url, limit, offset + limit, "next"))
    if offset > 0:
        links.append(_link(request, base_url, limit, max(0, offset - limit), "prev"))
    headers = {"X-Total-Count": str(total)}
    if links:
        headers["Link"] = ", ".join(links)
    return web.json_response(page["items"], headers=headers)


def _link(request: web.Request, base_url: str, limit: int, offset: int, rel: str) -> str:
    url = request.rel_url.update_query(limit=limit, offset=offset)
    return f'<{base_url.rstrip("/")}{url}>; rel="{rel}"'


def tool_view(tool: dict[str, Any]) -> dict[str, Any]:
    """A tool, with AgentPort's `execution_mode` beside `mode`."""
    return {**tool, "execution_mode": tool["mode"]}


def setting_view(tool: dict[str, Any], change: dict[str, Any] | None) -> dict[str, Any]:
    """One tool's setting; `changed` (with a diff) when the upstream changed it since its mode was set."""
    view = {"integration_id": tool["integration_id"], "tool_name": tool["name"], "mode": tool["mode"]}
    return {**view, "changed": change} if change else view


def created_key_view(key: NewKey) -> dict[str, Any]:
    """A new API key, the only time it is shown: AgentPort's `plain_key` and `key_prefix` beside `key`, `prefix`."""
    return {
        "id": key.key_id,
        "name": key.name,
        "prefix": key.prefix,
        "key_prefix": key.prefix,
        "key": key.key,
        "plain_key": key.key,
        "message": "Store this key now: it is shown only once.",
    }
