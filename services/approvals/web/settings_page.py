"""`/ui/settings`: the approval expiry window, two-factor (QR set-up, enable, disable, recovery codes), password."""

from __future__ import annotations

import io
from typing import Any

import segno
from aiohttp import web
from markupsafe import Markup

from services.approvals.web.actions import act, form
from services.approvals.web.gateway_api import ApiError, GatewayApi
from services.approvals.web.render import page, see_other
from services.approvals.web.viewer import viewer


def qr_svg(uri: str) -> Markup:
    """An otpauth URI as an inline SVG QR code (made here: no outside service sees the secret)."""
    out = io.BytesIO()
    segno.make(uri, error="m").save(out, kind="svg", scale=5, border=4, xmldecl=False, svgclass="qr", nl=False)
    return Markup(out.getvalue().decode())  # noqa: S704 - segno's own SVG of our URI, not user markup


class SettingsPage:
    def __init__(self, api: GatewayApi) -> None:
        self.api = api

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/ui/settings", self.show),
            web.post("/ui/settings/expiry", self.expiry),
            web.post("/ui/settings/password", self.password),
            web.post("/ui/settings/totp/setup", self.totp_setup),
            web.post("/ui/settings/totp/enable", self.totp_enable),
            web.post("/ui/settings/totp/disable", self.totp_disable),
        ]

    async def show(
        self,
        request: web.Request,
        *,
        error: ApiError | None = None,
        setup: dict[str, Any] | None = None,
        recovery_codes: list[str] | None = None,
    ) -> web.Response:
        who = viewer(request)
        who.signed_in()
        org = await self.api.call(who, "GET", "/api/org-settings")
        totp = await self.api.call(who, "GET", "/api/users/me/totp")
        return page(
            request,
            "settings.html",
            org=org,
            totp=totp,
            setup=setup,
            recovery_codes=recovery_codes,
            error=error,
            done=request.query.get("done"),
            status=error.status if error else 200,
        )

    async def expiry(self, request: web.Request) -> web.Response:
        raw = (await form(request)).get("minutes", "")
        try:
            seconds = round(float(raw) * 60)
        except ValueError:
            return await self.show(request, error=ApiError(400, "bad_request", "the window is a number of minutes"))
        return await act(
            request,
            self.api,
            "PUT",
            "/api/org-settings",
            {"approval_expiry_seconds": seconds},
            back="/ui/settings",
            notice="expiry_set",
            show=self.show,
        )

    async def password(self, request: web.Request) -> web.Response:
        data = await form(request)
        if data.get("new_password") != data.get("new_password_again"):
            return await self.show(request, error=ApiError(400, "bad_request", "the new passwords differ"))
        body = {"current_password": data.get("current_password", ""), "new_password": data.get("new_password", "")}
        return await act(
            request,
            self.api,
            "POST",
            "/api/users/me/password",
            body,
            back="/ui/settings",
            notice="password_changed",
            show=self.show,
        )

    async def totp_setup(self, request: web.Request) -> web.Response:
        who = viewer(request)
        try:
            setup = await self.api.call(who, "POST", "/api/users/me/totp/setup")
        except ApiError as error:
            return await self.show(request, error=error)
        return await self.show(request, setup={**setup, "qr": qr_svg(setup["otpauth_uri"])})

    async def totp_enable(self, request: web.Request) -> web.Response:
        who = viewer(request)
        code = (await form(request)).get("code", "")
        try:
            enabled = await self.api.call(who, "POST", "/api/users/me/totp/enable", body={"code": code})
        except ApiError as error:
            return await self.show(request, error=error)
        return await self.show(request, recovery_codes=enabled["recovery_codes"])

    async def totp_disable(self, request: web.Request) -> web.Response:
        who = viewer(request)
        code = (await form(request)).get("code", "")
        try:
            await self.api.call(who, "POST", "/api/users/me/totp/disable", body={"code": code})
        except ApiError as error:
            return await self.show(request, error=error)
        return see_other("/ui/settings?done=totp_disabled")
