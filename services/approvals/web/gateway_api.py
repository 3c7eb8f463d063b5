"""The gateway's REST API, called as the signed-in human: every change a page makes goes through it, so the
roles, two-factor and audit rules are the REST API's own."""

from __future__ import annotations

from typing import Any

import aiohttp

from services.approvals.web.viewer import FORWARDED_IP, PROXY_AUTH_HEADER, ProxyGuard, Viewer


class ApiError(Exception):
    """The gateway refused: its status, stable code and message, to show on the page."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class GatewayApi:
    def __init__(self, guard: ProxyGuard) -> None:
        self.guard = guard
        self.client: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self.client = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=90, sock_connect=5), cookie_jar=aiohttp.DummyCookieJar()
        )

    async def stop(self) -> None:
        if self.client is not None:
            await self.client.close()

    async def call(
        self,
        who: Viewer,
        method: str,
        path: str,
        *,
        body: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
    ) -> Any:
        """One REST call on the viewer's behalf; raises ApiError with the gateway's own message."""
        assert self.client is not None
        if who.session is None:
            raise ApiError(401, "unauthenticated", "sign in first")
        headers = {"Authorization": f"Bearer {who.session}", PROXY_AUTH_HEADER: self.guard.secret or ""}
        if who.client_ip:
            headers[FORWARDED_IP] = who.client_ip
        try:
            async with self.client.request(
                method, who.gateway + path, json=body, params=params, headers=headers
            ) as response:
                data = await response.json(content_type=None)
                status = response.status
        except (aiohttp.ClientError, ValueError) as exc:
            raise ApiError(503, "unavailable", "the gateway did not answer; try again") from exc
        if status >= 400:
            error = (data or {}).get("error") or {} if isinstance(data, dict) else {}
            raise ApiError(status, str(error.get("code", "error")), str(error.get("message", "request failed")))
        return data
