"""A form post that becomes one REST call: on success back to the page with a notice, else the page again
with the gateway's message."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from services.approvals.web.gateway_api import ApiError, GatewayApi
from services.approvals.web.render import see_other
from services.approvals.web.viewer import viewer

Show = Callable[..., Awaitable[web.Response]]


async def form(request: web.Request) -> dict[str, str]:
    """The posted form's text fields."""
    return {k: v for k, v in (await request.post()).items() if isinstance(v, str)}


async def act(
    request: web.Request,
    api: GatewayApi,
    method: str,
    path: str,
    body: dict[str, Any] | None,
    *,
    back: str,
    notice: str,
    show: Show,
) -> web.Response:
    """Make the call as the viewer; redirect to `back` with `notice`, or re-render with the error."""
    try:
        await api.call(viewer(request), method, path, body=body)
    except ApiError as error:
        return await show(request, error=error)
    anchor = ""
    if "#" in back:
        back, anchor = back.split("#", 1)
        anchor = "#" + anchor
    return see_other(f"{back}?{urlencode({'done': notice})}{anchor}")
