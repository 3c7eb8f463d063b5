"""A real upstream MCP server on loopback that counts every tool invocation it receives."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from mcp.server.mcpserver import Context, MCPServer

CALL_ID_META_KEY = "io.agentport/call_id"


@dataclass
class Invocation:
    """A tool that ran, with the arguments it was given (defaults filled in)."""

    tool: str
    arguments: dict[str, Any]
    authorization: str | None
    call_id: str | None


@dataclass
class Received:
    """A `tools/call` request as it arrived, before validation: the tool, the arguments exactly as sent."""

    tool: str
    arguments: dict[str, Any]
    call_id: str | None


@dataclass
class Upstream:
    url: str
    token: str | None
    invocations: list[Invocation] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    auth_headers_seen: list[str | None] = field(default_factory=list)

    def count(self, tool: str, **arguments: Any) -> int:
        return sum(
            1 for i in self.invocations if i.tool == tool and all(i.arguments.get(k) == v for k, v in arguments.items())
        )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _ReceivingServer(MCPServer):
    """Records every tool call request it receives, even one whose arguments its tool would refuse."""

    def __init__(self, up: Upstream) -> None:
        super().__init__("fake-upstream")
        self._up = up

    async def call_tool(self, name: str, arguments: dict[str, Any], context: Context | None = None) -> Any:
        meta = (context.request_context.meta if context is not None else None) or {}
        self._up.received.append(Received(name, copy.deepcopy(arguments), meta.get(CALL_ID_META_KEY)))  # type: ignore[arg-type]
        return await super().call_tool(name, arguments, context)


def build(up: Upstream) -> Any:
    server = _ReceivingServer(up)

    def record(ctx: Context, tool: str, **arguments: Any) -> None:
        meta = ctx.request_context.meta or {}
        headers = ctx.headers or {}
        up.invocations.append(
            Invocation(tool, arguments, headers.get("authorization"), meta.get(CALL_ID_META_KEY))  # type: ignore[arg-type]
        )

    @server.tool(description="Echo the text back.")
    def echo(text: str, ctx: Context) -> str:
        record(ctx, "echo", text=text)
        return f"echo: {text}"

    @server.tool(description="Add two integers.")
    def add(a: int, b: int, ctx: Context) -> dict[str, int]:
        record(ctx, "add", a=a, b=b)
        return {"sum": a + b}

    @server.tool(description="Delete a repository (dangerous).")
    def delete_repo(name: str, ctx: Context) -> str:
        record(ctx, "delete_repo", name=name)
        return f"deleted {name}"

    @server.tool(description="Send an email.")
    def send_email(to: str, subject: str, ctx: Context, body: str = "") -> str:
        record(ctx, "send_email", to=to, subject=subject, body=body)
        return f"sent to {to}"

    @server.tool(description="Wait, then answer.")
    async def slow(seconds: float, tag: str, ctx: Context) -> str:
        record(ctx, "slow", seconds=seconds, tag=tag)
        await asyncio.sleep(seconds)
        return f"slept {seconds}"

    app = server.streamable_http_app(stateless_http=True)

    async def guarded(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            auth = dict(scope["headers"]).get(b"authorization")
            seen = auth.decode() if auth else None
            up.auth_headers_seen.append(seen)
            if up.token is not None and seen != f"Bearer {up.token}":
                await send(
                    {
                        "type": "http.response.start",
                        "status": 401,
                        "headers": [(b"content-type", b"application/json")],
                    }
                )
                await send({"type": "http.response.body", "body": b'{"error":"unauthorized"}'})
                return
        await app(scope, receive, send)

    return guarded


@contextlib.asynccontextmanager
async def serving_on_loopback(app: Any, port: int) -> AsyncIterator[None]:
    """Serve an ASGI app on 127.0.0.1:`port` for the duration of the block."""
    # Shutdown must not wait on streams the executor keeps open (e.g. `subscriptions/listen`).
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", lifespan="on", timeout_graceful_shutdown=1
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    try:
        yield
    finally:
        server.should_exit = True
        # A forced shutdown ends the serve task cancelled; that is expected, not a failure of the test.
        done, _ = await asyncio.wait({task}, timeout=10)
        if task in done and not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]


@contextlib.asynccontextmanager
async def running_upstream(token: str | None) -> AsyncIterator[Upstream]:
    port = free_port()
    up = Upstream(url=f"http://127.0.0.1:{port}/mcp", token=token)
    async with serving_on_loopback(build(up), port):
        yield up
