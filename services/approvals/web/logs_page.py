"""`/ui/logs`: calls filtered by integration, tool, outcome, key and time, page by page; and one call's
whole story (requested, ruled, approved by whom, executed, result or error)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from services.approvals.web.gateway_api import ApiError, GatewayApi
from services.approvals.web.render import page
from services.approvals.web.viewer import viewer
from shared.bus import Bus
from shared.errors import AgentPortError

PAGE_SIZE = 50
TEXT_FILTERS = ("integration_id", "tool_name", "status", "actor_id")
TIME_FILTERS = ("since", "until")
OUTCOMES = ("completed", "failed", "denied", "expired", "pending_approval", "running", "coalesced")


def _utc(value: str) -> str | None:
    """A `datetime-local` value (read as UTC) as ISO 8601, or None if it is not a time."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).isoformat()


def filters_of(query: Any) -> tuple[dict[str, str], dict[str, str]]:
    """The filters as the audit service takes them, and as the form shows them."""
    shown = {k: str(query.get(k, "")).strip() for k in (*TEXT_FILTERS, *TIME_FILTERS)}
    sent = {k: shown[k] for k in TEXT_FILTERS if shown[k]}
    for k in TIME_FILTERS:
        if shown[k] and (moment := _utc(shown[k])):
            sent[k] = moment
    return sent, shown


class LogsPage:
    def __init__(self, bus: Bus, api: GatewayApi) -> None:
        self.bus = bus
        self.api = api

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/ui/logs", self.show), web.get("/ui/logs/{call_id}", self.story)]

    async def _keys(self, request: web.Request) -> list[dict[str, Any]]:
        who = viewer(request)
        if who.user is None or not who.user.can("manage"):
            return []
        try:
            return list(await self.api.call(who, "GET", "/api/api-keys"))
        except ApiError:
            return []

    async def show(self, request: web.Request) -> web.Response:
        user = viewer(request).signed_in()
        sent, shown = filters_of(request.query)
        try:
            offset = max(0, int(request.query.get("offset", "0")))
        except ValueError:
            offset = 0
        result, keys = await asyncio.gather(
            self.bus.request(
                "audit.logs", {"org_id": user.org_id, "filters": {**sent, "limit": PAGE_SIZE, "offset": offset}}
            ),
            self._keys(request),
        )
        base = {k: v for k, v in shown.items() if v}
        newer = urlencode({**base, "offset": max(0, offset - PAGE_SIZE)}) if offset > 0 else None
        older = urlencode({**base, "offset": offset + PAGE_SIZE}) if offset + PAGE_SIZE < result["total"] else None
        return page(
            request,
            "logs.html",
            items=result["items"],
            total=result["total"],
            offset=offset,
            page_size=PAGE_SIZE,
            filters=shown,
            outcomes=OUTCOMES,
            keys=keys,
            newer=newer,
            older=older,
        )

    async def story(self, request: web.Request) -> web.Response:
        user = viewer(request).signed_in()
        try:
            story = await self.bus.request(
                "audit.call", {"org_id": user.org_id, "call_id": request.match_info["call_id"]}
            )
        except AgentPortError as exc:
            if exc.status == 404:
                return page(request, "not_found.html", status=404, what="call")
            raise
        return page(request, "call.html", summary=story["summary"], events=story["events"])
