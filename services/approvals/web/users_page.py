"""`/ui/users`: the people of the org and their roles; invitations (the link shown once)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from aiohttp import web

from services.approvals.web.actions import act, form
from services.approvals.web.gateway_api import ApiError, GatewayApi
from services.approvals.web.render import page
from services.approvals.web.viewer import viewer

ROLES = ("owner", "admin", "approver", "viewer")


class UsersPage:
    def __init__(self, api: GatewayApi) -> None:
        self.api = api

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/ui/users", self.show),
            web.post("/ui/users/invite", self.invite),
            web.post("/ui/users/{user_id}/role", self.set_role),
            web.post("/ui/users/invitations/{invitation_id}/revoke", self.revoke_invitation),
        ]

    async def show(
        self, request: web.Request, *, error: ApiError | None = None, invited: dict[str, Any] | None = None
    ) -> web.Response:
        who = viewer(request)
        user = who.signed_in()
        users = (await self.api.call(who, "GET", "/api/users"))["items"]
        invitations = (await self.api.call(who, "GET", "/api/invitations"))["items"] if user.can("manage") else []
        return page(
            request,
            "users.html",
            users=users,
            invitations=invitations,
            roles=ROLES,
            invited=invited,
            error=error,
            done=request.query.get("done"),
            status=error.status if error else 200,
        )

    async def invite(self, request: web.Request) -> web.Response:
        who = viewer(request)
        data = await form(request)
        try:
            invited = await self.api.call(
                who, "POST", "/api/invitations", body={"email": data.get("email", ""), "role": data.get("role", "")}
            )
        except ApiError as error:
            return await self.show(request, error=error)
        return await self.show(request, invited=invited)

    async def set_role(self, request: web.Request) -> web.Response:
        role = (await form(request)).get("role", "")
        user_id = quote(request.match_info["user_id"], safe="")
        return await act(
            request,
            self.api,
            "PUT",
            f"/api/users/{user_id}/role",
            {"role": role},
            back="/ui/users",
            notice="role_changed",
            show=self.show,
        )

    async def revoke_invitation(self, request: web.Request) -> web.Response:
        invitation_id = quote(request.match_info["invitation_id"], safe="")
        return await act(
            request,
            self.api,
            "DELETE",
            f"/api/invitations/{invitation_id}",
            None,
            back="/ui/users",
            notice="invitation_revoked",
            show=self.show,
        )
