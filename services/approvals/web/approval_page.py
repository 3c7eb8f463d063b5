"""`/approve/{id}`: one request in full (what, with which arguments, who asked and from where), and the
decision buttons; a decided or expired request shows its outcome instead."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import asyncpg
from aiohttp import web

from services.approvals import requests
from services.approvals.web.gateway_api import ApiError, GatewayApi
from services.approvals.web.render import page, see_other
from services.approvals.web.viewer import viewer

DECISIONS = {"approve_once": "approve-once", "allow_tool": "allow-tool", "deny": "deny"}


async def load_request(pool: asyncpg.Pool, org_id: str, request_id: str) -> dict[str, Any] | None:
    """A request of the viewer's org, as the REST API shows it (another org's is simply not found)."""
    row = await pool.fetchrow("SELECT * FROM requests WHERE request_id=$1 AND org_id=$2", request_id, org_id)
    if row is None:
        return None
    view = requests.public_view(row)
    if view["status"] == "pending" and row["expires_at"] <= datetime.now(UTC):
        view["status"] = "expired"  # The sweep marks it within a second; the page need not wait for that.
    return view


class ApprovalPage:
    def __init__(self, pool: asyncpg.Pool, api: GatewayApi) -> None:
        self.pool = pool
        self.api = api

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/approve/{request_id}", self.show), web.post("/approve/{request_id}", self.decide)]

    async def show(self, request: web.Request, *, error: ApiError | None = None, reason: str = "") -> web.Response:
        user = viewer(request).signed_in()
        item = await load_request(self.pool, user.org_id, request.match_info["request_id"])
        if item is None:
            return page(request, "not_found.html", status=404, what="approval request")
        change = await self._tool_change(request, item) if item["status"] == "pending" else None
        return page(
            request,
            "approval.html",
            item=item,
            change=change,
            error=error,
            reason=reason,
            status=error.status if error else 200,
        )

    async def _tool_change(self, request: web.Request, item: dict[str, Any]) -> dict[str, Any] | None:
        """An unreviewed upstream change to this tool (with its diff), which the human should see first."""
        try:
            full = await self.api.call(viewer(request), "GET", f"/api/tool-approvals/requests/{item['id']}")
        except ApiError:
            return None  # The page still shows the request; the change is also on the integrations page.
        change = full.get("tool_change") if isinstance(full, dict) else None
        return change if isinstance(change, dict) else None

    async def decide(self, request: web.Request) -> web.Response:
        who = viewer(request)
        who.signed_in()
        form = await request.post()
        decision = DECISIONS.get(str(form.get("decision", "")))
        reason = str(form.get("reason", "")).strip()
        if decision is None:
            return await self.show(request, error=ApiError(400, "bad_request", "choose approve, allow or deny"))
        body: dict[str, Any] = {}
        if decision == "deny" and reason:
            body["reason"] = reason[:2000]
        code = str(form.get("totp_code", "")).strip()
        if code:
            body["totp_code"] = code
        request_id = request.match_info["request_id"]
        try:
            await self.api.call(who, "POST", f"/api/tool-approvals/requests/{request_id}/{decision}", body=body)
        except ApiError as error:
            if error.status == 409:  # Decided elsewhere or expired meanwhile: the page shows what happened.
                return see_other(f"/approve/{request_id}")
            return await self.show(request, error=error, reason=reason)
        back = str(form.get("back", ""))
        return see_other(back if back == "/ui/approvals" else f"/approve/{request_id}")
