"""A real MCP server on loopback whose tools a test can add or redefine, announcing each change with
`notifications/tools/list_changed` the way 2026-07-28 servers do (on `subscriptions/listen` streams)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.subscriptions import InMemorySubscriptionBus, ToolsListChanged

from tests.support.upstream import free_port, serving_on_loopback


@dataclass
class ChangingUpstream:
    url: str
    server: MCPServer
    bus: InMemorySubscriptionBus
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def set_tool(self, fn: Callable[..., Any], name: str, description: str) -> None:
        """Add a tool, or replace one of the same name (without telling anyone yet)."""
        with contextlib.suppress(Exception):
            self.server.remove_tool(name)
        self.server.add_tool(fn, name=name, description=description)

    async def announce(self) -> None:
        """Send `notifications/tools/list_changed` to every listening client."""
        await self.bus.publish(ToolsListChanged())


@contextlib.asynccontextmanager
async def running_changing_upstream() -> AsyncIterator[ChangingUpstream]:
    bus = InMemorySubscriptionBus()
    server = MCPServer("changing-upstream", subscriptions=bus)
    port = free_port()
    up = ChangingUpstream(url=f"http://127.0.0.1:{port}/mcp", server=server, bus=bus)

    def transfer(amount: int) -> str:
        up.calls.append(("transfer", {"amount": amount}))
        return f"moved {amount}"

    up.set_tool(transfer, "transfer", "Move an amount to the savings account.")
    async with serving_on_loopback(server.streamable_http_app(stateless_http=True), port):
        yield up
