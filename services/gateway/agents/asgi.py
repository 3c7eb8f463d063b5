"""Serve an ASGI app (the MCP SDK's Streamable HTTP manager) from aiohttp.

Written for us because the published adapter never tells the app that the client went away,
which leaves an abandoned stream's handler running forever.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from aiohttp import web
from multidict import CIMultiDict

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]]

DISCONNECT_GRACE_SECONDS = 5.0


def _scope(request: web.Request, extra: dict[str, Any]) -> Scope:
    host, port = ("127.0.0.1", 0)
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    if sockname:
        host, port = sockname[0], sockname[1]
    peer = request.transport.get_extra_info("peername") if request.transport else None
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": f"{request.version.major}.{request.version.minor}",
        "method": request.method,
        "scheme": request.scheme,
        "path": request.path,
        "raw_path": request.raw_path.split("?", 1)[0].encode(),
        "query_string": request.query_string.encode(),
        "root_path": "",
        # The bytes as received: a header aiohttp decoded from UTF-8 (or could not) need not fit in latin-1.
        "headers": [(k.lower(), v) for k, v in request.raw_headers],
        "client": (peer[0], peer[1]) if peer else None,
        "server": (host, port),
        "state": {},
        **extra,
    }


async def serve_asgi(app: ASGIApp, request: web.Request, extra_scope: dict[str, Any]) -> web.StreamResponse:
    """Run one request through an ASGI app, streaming its response; client disconnects reach the app."""
    body = await request.read()
    disconnected = asyncio.Event()
    body_sent = False
    response: web.StreamResponse | None = None

    async def receive() -> Message:
        nonlocal body_sent
        if not body_sent:
            body_sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await disconnected.wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        nonlocal response
        if message["type"] == "http.response.start":
            headers: CIMultiDict[str] = CIMultiDict()
            for key, value in message.get("headers", []):
                headers.add(key.decode("latin-1"), value.decode("latin-1"))
            response = web.StreamResponse(status=message["status"], headers=headers)
            await response.prepare(request)
        elif message["type"] == "http.response.body":
            if response is None:
                raise RuntimeError("ASGI app sent a body before starting the response")
            if disconnected.is_set():
                return
            try:
                chunk = message.get("body", b"")
                if chunk and request.method != "HEAD":  # a body after HEAD would be read as the next response
                    await response.write(chunk)
                if not message.get("more_body", False):
                    await response.write_eof()
            except ConnectionResetError:
                # The client left (often right after reading its answer): further sends are no-ops, as in
                # other ASGI servers, and the app hears `http.disconnect` on its next receive.
                disconnected.set()

    task: asyncio.Future[None] = asyncio.ensure_future(app(_scope(request, extra_scope), receive, send))
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        # aiohttp cancels the handler when the client goes away: tell the app, give it a moment to clean up.
        disconnected.set()
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(task, DISCONNECT_GRACE_SECONDS)
        raise
    finally:
        disconnected.set()
    if response is None:
        return web.Response(status=500, text="the MCP handler sent no response")
    return response
