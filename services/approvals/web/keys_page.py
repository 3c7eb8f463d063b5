"""`/ui/keys`: API keys: create (the key shown once, with client set-up snippets), list, revoke."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from aiohttp import web

from services.approvals.web.actions import act, form
from services.approvals.web.client_configs import client_configs
from services.approvals.web.gateway_api import ApiError, GatewayApi
from services.approvals.web.render import page
from services.approvals.web.viewer import viewer


class KeysPage:
    def __init__(self, api: GatewayApi) -> None:
        self.api = api

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/ui/keys", self.show),
            web.post("/ui/keys", self.create),
            web.post("/ui/keys/{key_id}/revoke", self.revoke),
        ]

    async def show(self, request: web.Request, *, error: ApiError | None = None) -> web.Response:
        who = viewer(request)
        user = who.signed_in()
        keys: list[dict[str, Any]] = []
        if user.can("manage"):
            keys = await self.api.call(who, "GET", "/api/api-keys")
        return page(
            request,
            "keys.html",
            keys=keys,
            error=error,
            done=request.query.get("done"),
            status=error.status if error else 200,
        )

    async def create(self, request: web.Request) -> web.Response:
        who = viewer(request)
        name = (await form(request)).get("name", "")
        try:
            created = await self.api.call(who, "POST", "/api/api-keys", body={"name": name})
        except ApiError as error:
            return await self.show(request, error=error)
        mcp_url = who.base_url.rstrip("/") + "/mcp"
        return page(request, "key_created.html", key=created, configs=client_configs(mcp_url, created["key"]))

    async def revoke(self, request: web.Request) -> web.Response:
        key_id = request.match_info["key_id"]
        return await act(
            request,
            self.api,
            "DELETE",
            f"/api/api-keys/{quote(key_id, safe='')}",
            None,
            back="/ui/keys",
            notice="revoked",
            show=self.show,
        )
