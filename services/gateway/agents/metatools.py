"""The `agentport__*` meta-tools an agent sees over MCP: their schemas and what each does."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import structlog

from services.gateway.agents.calls import MAX_IDEMPOTENCY_KEY, Calls, Progress, validate_arguments
from services.gateway.http import DATABASE_DOWN, NUL_REFUSED
from services.gateway.identity.principals import Principal
from services.gateway.integrations.wiring import Integrations
from shared.db import unreachable as database_unreachable
from shared.errors import AgentPortError, BadRequest
from shared.events import contains_nul

log = structlog.get_logger("gateway.metatools")

PREFIX = "agentport__"
INTERNAL_ERROR = "AgentPort hit an internal error running this tool; it was logged. Try again shortly."

Handler = Callable[["MetaTools", Principal, dict[str, Any], Progress | None], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class MetaTool:
    name: str
    description: str
    input_schema: dict[str, Any]
    handler: Handler


def _schema(properties: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": list(required), "additionalProperties": False}


_STR = {"type": "string", "minLength": 1}
_OPT = {"type": "string"}


class MetaTools:
    def __init__(self, integrations: Integrations, calls: Calls, call_wait: float, await_budget: float) -> None:
        self.integrations = integrations
        self.calls = calls
        self.call_wait = call_wait
        self.await_budget = await_budget

    async def run(
        self, who: Principal, name: str, arguments: dict[str, Any], progress: Progress | None
    ) -> tuple[dict[str, Any], bool]:
        """Run one meta-tool; returns the structured result and whether it is an error."""
        tool = TOOLS_BY_NAME[name]
        try:
            if contains_nul(arguments):
                raise BadRequest(NUL_REFUSED)
            validate_arguments(tool.input_schema, arguments, name)
            result = await tool.handler(self, who, arguments, progress)
        except AgentPortError as exc:
            return {
                "status": "error",
                "error": {"code": exc.code, "message": exc.message},
                "message": exc.message,
            }, True
        except Exception as exc:
            if database_unreachable(exc):
                log.warning("metatool.database_unavailable", tool=name, error=type(exc).__name__)
                code, message = "unavailable", DATABASE_DOWN
            else:
                log.exception("metatool.failed", tool=name)
                code, message = "internal", INTERNAL_ERROR
            return {"status": "error", "error": {"code": code, "message": message}, "message": message}, True
        return result, result.get("status") in ("error", "denied", "expired")


async def _list_available(m: MetaTools, who: Principal, a: dict[str, Any], _: Progress | None) -> dict[str, Any]:
    items = await m.integrations.directory.available(who.org_id, a.get("type"), a.get("query"))
    return {"status": "ok", "integrations": items, "count": len(items)}


async def _get_integration(m: MetaTools, who: Principal, a: dict[str, Any], _: Progress | None) -> dict[str, Any]:
    return {"status": "ok", "integration": await m.integrations.directory.get(who.org_id, a["integration_id"])}


async def _list_installed(m: MetaTools, who: Principal, a: dict[str, Any], _: Progress | None) -> dict[str, Any]:
    items = await m.integrations.installs.list_installed(who.org_id)
    return {"status": "ok", "installed": items, "count": len(items)}


async def _install(m: MetaTools, who: Principal, a: dict[str, Any], _: Progress | None) -> dict[str, Any]:
    installed = await m.integrations.installs.install(who, a["integration_id"], a["auth_method"], a.get("token"))
    if a["auth_method"] == "oauth":
        return installed  # pending: a human must open its authorization_url
    return {"status": "ok", "installed": installed}


async def _uninstall(m: MetaTools, who: Principal, a: dict[str, Any], _: Progress | None) -> dict[str, Any]:
    await m.integrations.installs.uninstall(who, a["integration_id"])
    return {"status": "ok", "integration_id": a["integration_id"], "message": "uninstalled"}


async def _auth_status(m: MetaTools, who: Principal, a: dict[str, Any], _: Progress | None) -> dict[str, Any]:
    return {"status": "ok", **await m.integrations.installs.auth_status(who.org_id, a["integration_id"])}


async def _start_oauth(m: MetaTools, who: Principal, a: dict[str, Any], _: Progress | None) -> dict[str, Any]:
    return await m.integrations.installs.start_oauth(who, a["integration_id"])


async def _list_tools(m: MetaTools, who: Principal, a: dict[str, Any], _: Progress | None) -> dict[str, Any]:
    if a.get("refresh"):
        if not a.get("integration_id"):
            raise BadRequest("refresh needs an integration_id: name the integration to re-read")
        await m.integrations.tools.refresh(who, a["integration_id"])
    tools = await m.integrations.tools.list(who.org_id, a.get("integration_id"), a.get("query"))
    return {"status": "ok", "tools": tools, "count": len(tools)}


async def _describe(m: MetaTools, who: Principal, a: dict[str, Any], _: Progress | None) -> dict[str, Any]:
    return {
        "status": "ok",
        "tool": await m.integrations.tools.describe(who.org_id, a["integration_id"], a["tool_name"]),
    }


async def _call(m: MetaTools, who: Principal, a: dict[str, Any], progress: Progress | None) -> dict[str, Any]:
    return await m.calls.call_tool(
        who,
        a["integration_id"],
        a["tool_name"],
        a.get("arguments") or {},
        a.get("additional_info"),
        "mcp",
        m.call_wait,
        progress,
        a.get("idempotency_key"),
    )


async def _await(m: MetaTools, who: Principal, a: dict[str, Any], progress: Progress | None) -> dict[str, Any]:
    return await m.calls.await_any(who, a["request_id"], m.await_budget, progress)


TOOLS: tuple[MetaTool, ...] = (
    MetaTool(
        f"{PREFIX}list_available_integrations",
        "Search the integrations this AgentPort can connect to (catalog and custom). Every word of `query` must "
        "match the id, name, description or category.",
        _schema({"type": {"type": "string", "enum": ["mcp", "api"]}, "query": _OPT}),
        _list_available,
    ),
    MetaTool(
        f"{PREFIX}get_integration",
        "Show one integration: what it is, its URL and auth methods.",
        _schema({"integration_id": _STR}, ("integration_id",)),
        _get_integration,
    ),
    MetaTool(
        f"{PREFIX}list_installed_integrations",
        "List the integrations installed for your organization.",
        _schema({}),
        _list_installed,
    ),
    MetaTool(
        f"{PREFIX}install_integration",
        "Install an integration for your organization. With auth_method 'token', pass the token: it is encrypted "
        "for the executor and never shown again. With auth_method 'oauth', you get an authorization_url: share it "
        "with a human, who signs in upstream; then check agentport__get_auth_status.",
        _schema(
            {
                "integration_id": _STR,
                "auth_method": {"type": "string", "enum": ["none", "token", "oauth"]},
                "token": _OPT,
            },
            ("integration_id", "auth_method"),
        ),
        _install,
    ),
    MetaTool(
        f"{PREFIX}uninstall_integration",
        "Remove an installed integration and its stored credential.",
        _schema({"integration_id": _STR}, ("integration_id",)),
        _uninstall,
    ),
    MetaTool(
        f"{PREFIX}get_auth_status",
        "Whether an installed integration is connected, pending or needs re-auth.",
        _schema({"integration_id": _STR}, ("integration_id",)),
        _auth_status,
    ),
    MetaTool(
        f"{PREFIX}start_oauth_flow",
        "Start (or restart) OAuth sign-in for an integration that supports it: returns an authorization_url "
        "for a human to open.",
        _schema({"integration_id": _STR}, ("integration_id",)),
        _start_oauth,
    ),
    MetaTool(
        f"{PREFIX}list_integration_tools",
        "List the tools of installed integrations with their approval mode (allow, require_approval, deny). "
        "With refresh=true (and an integration_id), read the integration's tools from the upstream first.",
        _schema({"integration_id": _OPT, "query": _OPT, "refresh": {"type": "boolean"}}),
        _list_tools,
    ),
    MetaTool(
        f"{PREFIX}describe_tool",
        "Show one tool's description, input schema and approval mode.",
        _schema({"integration_id": _STR, "tool_name": _STR}, ("integration_id", "tool_name")),
        _describe,
    ),
    MetaTool(
        f"{PREFIX}call_tool",
        "Call a tool of an installed integration. Give `additional_info`: one sentence a human can check "
        "(what this does and why, naming what opaque ids refer to). Give an `idempotency_key` (any string of "
        "yours, new for each new call): asking again with the same key returns that call's outcome and never "
        "runs it twice, so after a lost connection or timeout re-ask with the same key. Every answer carries the "
        "call_id. If the result is approval_required, share the approval_url with a human and immediately call "
        "agentport__await_approval with its approval_request_id; if it is pending, call "
        "agentport__await_approval with the call_id. Never start a new call for one that may still run.",
        _schema(
            {
                "integration_id": _STR,
                "tool_name": _STR,
                "arguments": {"type": "object"},
                "additional_info": _OPT,
                "idempotency_key": {"type": "string", "minLength": 1, "maxLength": MAX_IDEMPOTENCY_KEY},
            },
            ("integration_id", "tool_name", "arguments"),
        ),
        _call,
    ),
    MetaTool(
        f"{PREFIX}await_approval",
        "Wait for a call's outcome and return its real result: pass an approval_request_id to wait for a "
        "human's decision, or a call_id (from a pending call_tool answer, allowed calls too) to wait for the call "
        "to finish. If it returns pending, call it again.",
        _schema({"request_id": _STR}, ("request_id",)),
        _await,
    ),
)

TOOLS_BY_NAME = {t.name: t for t in TOOLS}


def summary_text(result: dict[str, Any]) -> str:
    """The human-readable text beside the structured result."""
    message = result.get("message")
    body = json.dumps({k: v for k, v in result.items() if k != "message"}, indent=2, default=str)
    return f"{message}\n\n{body}" if message else body
