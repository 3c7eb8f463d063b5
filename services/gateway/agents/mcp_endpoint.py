"""`/mcp`: the meta-tools over Streamable HTTP, served by the MCP SDK for every protocol version.

Stateless mode: any replica answers any request of a session, so no sticky routing is needed.
"""

from __future__ import annotations

import asyncio
from typing import Any

import mcp_types as types
from aiohttp import web
from mcp.server.lowlevel.server import NotificationOptions, Server
from mcp.server.models import InitializationOptions
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.shared.exceptions import MCPError
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from services.gateway.agents.asgi import serve_asgi
from services.gateway.agents.metatools import TOOLS, TOOLS_BY_NAME, MetaTools, summary_text
from services.gateway.agents.tool_notices import ToolNotices
from services.gateway.identity.principals import Principal
from shared.errors import BadRequest

PRINCIPAL_SCOPE_KEY = "agentport.principal"
# Headers the protocol reads: a value that is not ASCII is refused in our error shape, not misread as latin-1.
PROTOCOL_HEADERS = ("Accept", "Content-Type", "Mcp-Protocol-Version", "Mcp-Session-Id", "Last-Event-ID")

INSTRUCTIONS = (
    "AgentPort lets you use real services through approval policies set by humans. Discover with "
    "agentport__list_installed_integrations, agentport__list_integration_tools and agentport__describe_tool "
    "before calling. Call tools with agentport__call_tool and always give additional_info: one sentence a human "
    "can verify. If a call returns approval_required, share the approval_url with a human and immediately call "
    "agentport__await_approval. Give each call an idempotency_key; after a lost connection or a timeout, ask "
    "again with the same key (or await the call_id you were given) instead of starting a new call. Never retry "
    "or work around a denied call."
)


def _principal(ctx: Any) -> Principal:
    request = ctx.request
    principal = request.scope.get(PRINCIPAL_SCOPE_KEY) if request is not None else None
    if not isinstance(principal, Principal):
        raise MCPError(types.INVALID_REQUEST, "not authenticated")
    return principal


class _Server(Server[Any]):
    """Announces `tools.listChanged` to handshake-era clients too (they are told on their open requests)."""

    def create_initialization_options(
        self,
        notification_options: NotificationOptions | None = None,
        experimental_capabilities: dict[str, dict[str, Any]] | None = None,
        extensions: dict[str, dict[str, Any]] | None = None,
    ) -> InitializationOptions:
        return super().create_initialization_options(
            notification_options or NotificationOptions(tools_changed=True), experimental_capabilities, extensions
        )


def build_server(meta: MetaTools, version: str, notices: ToolNotices | None = None) -> Server[Any]:
    """The low-level MCP server exposing the meta-tools (and, with `notices`, tool-list change notifications)."""
    notices = notices or ToolNotices()

    async def list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
        return types.ListToolsResult(
            tools=[types.Tool(name=t.name, description=t.description, input_schema=t.input_schema) for t in TOOLS]
        )

    async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        if params.name not in TOOLS_BY_NAME:
            raise MCPError(
                types.INVALID_PARAMS,
                f"Unknown tool: {params.name}. AgentPort offers: {', '.join(sorted(TOOLS_BY_NAME))}",
            )
        who = _principal(ctx)

        async def progress(done: float, total: float, message: str) -> None:
            await ctx.session.report_progress(round(done, 1), total, message)

        if ctx.protocol_version in MODERN_PROTOCOL_VERSIONS:
            structured, is_error = await meta.run(who, params.name, dict(params.arguments or {}), progress)
        else:
            with notices.during_request(who.org_id, ctx.session, ctx.request_id):
                structured, is_error = await meta.run(who, params.name, dict(params.arguments or {}), progress)
        content: list[Any] = [types.TextContent(text=summary_text(structured))]
        if structured.get("status") == "executed":
            upstream = structured.get("result", {}).get("content") or []
            content = [types.TextContent(text=structured["message"]), *_blocks(upstream)]
        return types.CallToolResult(content=content, structured_content=structured, is_error=is_error)

    async def listen(ctx: Any, params: types.SubscriptionsListenRequestParams) -> types.SubscriptionsListenResult:
        return await notices.listen_handler(_principal(ctx).org_id)(ctx, params)

    return _Server(
        "agentport",
        version=version,
        instructions=INSTRUCTIONS,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
        on_subscriptions_listen=listen,
    )


def _blocks(upstream: list[dict[str, Any]]) -> list[Any]:
    """The upstream's own content blocks, passed through to the agent."""
    adapter = types.CallToolResult.model_validate({"content": upstream})
    return list(adapter.content)


class McpEndpoint:
    """Owns the SDK session manager, whose run() must be entered and left in one task."""

    def __init__(self, server: Server[Any]) -> None:
        self.manager = StreamableHTTPSessionManager(server, stateless=True)
        self._stop = asyncio.Event()
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="mcp-session-manager")
        await self._ready.wait()

    async def _run(self) -> None:
        async with self.manager.run():
            self._ready.set()
            await self._stop.wait()

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task

    async def handle(self, request: web.Request, principal: Principal) -> web.StreamResponse:
        for name in PROTOCOL_HEADERS:
            if not all(value.isascii() for value in request.headers.getall(name, ())):
                raise BadRequest(f"the {name} header must be ASCII text; it holds other characters")
        return await serve_asgi(self.manager.handle_request, request, {PRINCIPAL_SCOPE_KEY: principal})
