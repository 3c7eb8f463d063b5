"""`/ui/integrations`: the catalog, what is installed, install and remove, and each tool's mode in one click."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import quote

from aiohttp import web

from services.approvals.web.actions import act, form
from services.approvals.web.gateway_api import ApiError, GatewayApi
from services.approvals.web.render import page
from services.approvals.web.viewer import viewer

MODES = ("allow", "require_approval", "deny")


class IntegrationsPage:
    def __init__(self, api: GatewayApi) -> None:
        self.api = api

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/ui/integrations", self.show),
            web.post("/ui/integrations/install", self.install),
            web.post("/ui/integrations/{integration_id}/remove", self.remove),
            web.post("/ui/integrations/{integration_id}/tools/{tool_name}/mode", self.set_mode),
        ]

    async def show(self, request: web.Request, *, error: ApiError | None = None) -> web.Response:
        who = viewer(request)
        who.signed_in()
        catalog, installed, tools = await asyncio.gather(
            self.api.call(who, "GET", "/api/integrations"),
            self.api.call(who, "GET", "/api/installed"),
            self.api.call(who, "GET", "/api/tools"),
        )
        by_integration: dict[str, list[dict[str, Any]]] = {}
        for tool in tools:
            by_integration.setdefault(tool["integration_id"], []).append(tool)
        return page(
            request,
            "integrations.html",
            catalog=[c for c in catalog if not c.get("installed")],
            installed=installed,
            tools=by_integration,
            modes=MODES,
            error=error,
            done=request.query.get("done"),
            status=error.status if error else 200,
        )

    async def install(self, request: web.Request) -> web.Response:
        data = await form(request)
        body = {"integration_id": data.get("integration_id", ""), "auth_method": data.get("auth_method") or "none"}
        if data.get("token"):
            body["token"] = data["token"]
            body["auth_method"] = "token"
        return await act(
            request,
            self.api,
            "POST",
            "/api/installed",
            body,
            back="/ui/integrations",
            notice="installed",
            show=self.show,
        )

    async def remove(self, request: web.Request) -> web.Response:
        integration_id = request.match_info["integration_id"]
        return await act(
            request,
            self.api,
            "DELETE",
            f"/api/installed/{quote(integration_id, safe='')}",
            None,
            back="/ui/integrations",
            notice="removed",
            show=self.show,
        )

    async def set_mode(self, request: web.Request) -> web.Response:
        m = request.match_info
        data = await form(request)
        body = {"mode": data.get("mode", "")}
        if str(data.get("totp_code", "")).strip():
            body["totp_code"] = str(data["totp_code"]).strip()
        path = f"/api/tool-settings/{quote(m['integration_id'], safe='')}/{quote(m['tool_name'], safe='')}"
        return await act(
            request,
            self.api,
            "PUT",
            path,
            body,
            back=f"/ui/integrations#tool-{m['integration_id']}-{m['tool_name']}",
            notice="mode_set",
            show=self.show,
        )
