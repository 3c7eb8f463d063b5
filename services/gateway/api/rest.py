"""The REST API under /api, following AgentPort's public shape."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from services.gateway.agents.calls import MAX_IDEMPOTENCY_KEY, Calls, Channel
from services.gateway.api import query
from services.gateway.api.rest_views import created_key_view, listed, paged, setting_view, tool_view
from services.gateway.http import agreed, json_body, str_field
from services.gateway.humans.decisions import send_decision
from services.gateway.identity.accounts import Accounts
from services.gateway.identity.principals import DECIDE, MANAGE, READ, principal
from services.gateway.identity.roles import require_manager_if_human
from services.gateway.identity.totp import TwoFactor
from services.gateway.integrations.wiring import Integrations
from shared.bus import Bus
from shared.errors import BadRequest
from shared.events import AuthSpec, OrgSettingsUpdated
from shared.settings import GatewaySettings

DECISION_PATHS = {"approve-once": "approve_once", "allow-tool": "allow_tool", "deny": "deny"}
LOG_FILTERS = ("integration_id", "tool_name", "status", "actor_id")
LOG_TIMES = ("since", "until")
LOGS_PAGE, REQUESTS_PAGE = 50, 100


class RestApi:
    def __init__(
        self,
        settings: GatewaySettings,
        bus: Bus,
        accounts: Accounts,
        integrations: Integrations,
        calls: Calls,
        projection: Any,
        *,
        two_factor: TwoFactor | None = None,
    ) -> None:
        self.settings = settings
        self.two_factor = two_factor
        self.bus = bus
        self.accounts = accounts
        self.integrations = integrations
        self.calls = calls
        self.projection = projection

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/api/auth/token", self.token),
            web.post("/api/auth/logout", self.logout),
            web.get("/api/users/me", self.me),
            web.get("/api/api-keys", self.list_keys),
            web.post("/api/api-keys", self.create_key),
            web.delete("/api/api-keys/{key_id}", self.revoke_key),
            web.get("/api/integrations", self.catalog),
            web.post("/api/integrations/custom-mcp", self.custom_mcp),
            web.post("/api/integrations/custom-api", self.custom_api),
            web.get("/api/integrations/{integration_id}", self.integration),
            web.get("/api/installed", self.list_installed),
            web.post("/api/installed", self.install),
            web.get("/api/installed/{integration_id}", self.installed_one),
            web.delete("/api/installed/{integration_id}", self.uninstall),
            web.post("/api/installed/{integration_id}/refresh", self.refresh_tools),
            web.get("/api/tools", self.tools),
            web.get("/api/tools/{integration_id}/{tool_name}", self.describe_tool),
            web.post("/api/tools/{integration_id}/{tool_name}/call", self.call_tool),
            web.post("/api/calls/{call_id}/await", self.await_call),
            web.get("/api/tool-settings/{integration_id}", self.tool_settings),
            web.put("/api/tool-settings/{integration_id}/{tool_name}", self.set_tool_mode),
            web.get("/api/tool-approvals/requests", self.list_requests),
            web.get("/api/tool-approvals/requests/{request_id}", self.get_request),
            web.post("/api/tool-approvals/requests/{request_id}/await", self.await_request),
            web.post("/api/tool-approvals/requests/{request_id}/{decision}", self.decide),
            web.get("/api/logs", self.logs),
            web.get("/api/logs/verify", self.verify_logs),
            web.get("/api/logs/{call_id}", self.call_story),
            web.get("/api/org-settings", self.org_settings),
            web.put("/api/org-settings", self.update_org_settings),
        ]

    # --- humans ------------------------------------------------------------------------------

    async def token(self, request: web.Request) -> web.Response:
        form = await request.post() if request.content_type != "application/json" else await json_body(request)
        username, password = form.get("username"), form.get("password")
        if not isinstance(username, str) or not isinstance(password, str) or not username or not password:
            raise BadRequest("send form fields username and password")
        code = form.get("totp_code")

        async def second_factor(user_id: str) -> None:
            if self.two_factor is not None:
                await self.two_factor.require(user_id, code if isinstance(code, str) else None)

        token = await self.accounts.login(
            username, password, self.settings.session_ttl_seconds, self.settings.login_max_failures, second_factor
        )
        return web.json_response(
            {"access_token": token, "token_type": "bearer", "expires_in": self.settings.session_ttl_seconds}
        )

    async def logout(self, request: web.Request) -> web.Response:
        header = request.headers.get("Authorization", "")
        if header.lower().startswith("bearer "):
            await self.accounts.logout(header[7:].strip())
        return web.json_response({"status": "logged_out"})

    async def me(self, request: web.Request) -> web.Response:
        who = principal(request)
        return web.json_response({"org_id": who.org_id, "actor": who.actor.model_dump(), "role": who.role})

    async def list_keys(self, request: web.Request) -> web.Response:
        who = principal(request)
        who.require_human(MANAGE, "manage API keys")
        return listed(await self.accounts.list_keys(who.org_id))

    async def create_key(self, request: web.Request) -> web.Response:
        who = principal(request)
        who.require_human(MANAGE, "manage API keys")
        body = await json_body(request)
        assert who.actor.user_id is not None
        key = await self.accounts.create_key(who.actor.user_id, str_field(body, "name") or "", who.actor)
        return web.json_response(created_key_view(key), status=201)

    async def revoke_key(self, request: web.Request) -> web.Response:
        who = principal(request)
        who.require_human(MANAGE, "manage API keys")
        await self.accounts.revoke_key(who.org_id, request.match_info["key_id"], who.actor)
        return web.Response(status=204)

    # --- integrations ------------------------------------------------------------------------

    async def catalog(self, request: web.Request) -> web.Response:
        who = principal(request)
        return listed(
            await self.integrations.directory.available(
                who.org_id, query.text(request, "type"), query.text(request, "query")
            )
        )

    async def integration(self, request: web.Request) -> web.Response:
        who = principal(request)
        return web.json_response(
            await self.integrations.directory.get(who.org_id, request.match_info["integration_id"])
        )

    async def custom_mcp(self, request: web.Request) -> web.Response:
        who = principal(request)
        require_manager_if_human(who, "define integrations")
        body = await json_body(request)
        auth_raw = body.get("auth") or {"type": "none"}
        if not isinstance(auth_raw, dict):
            raise BadRequest('auth must be an object like {"type": "bearer"}')
        try:
            auth = AuthSpec.model_validate(auth_raw)
        except ValueError as exc:
            raise BadRequest("auth.type must be none, bearer or header (with header_name)") from exc
        view = await self.integrations.custom.define_mcp(
            who,
            str_field(body, "name") or "",
            str_field(body, "url") or "",
            str_field(body, "id", required=False),
            str_field(body, "description", required=False) or "",
            auth,
        )
        return web.json_response(view, status=201)

    async def custom_api(self, request: web.Request) -> web.Response:
        """Define an HTTP API from its OpenAPI document (inline JSON/YAML or `document_url`)."""
        who = principal(request)
        require_manager_if_human(who, "define integrations")
        view = await self.integrations.custom.define_api(who, await json_body(request))
        return web.json_response(view, status=201)

    async def refresh_tools(self, request: web.Request) -> web.Response:
        """Read an installed integration's tools from the upstream now."""
        who = principal(request)
        require_manager_if_human(who, "refresh integrations")
        refreshed = await self.integrations.tools.refresh(who, request.match_info["integration_id"])
        return web.json_response({**refreshed, "tools": [tool_view(t) for t in refreshed["tools"]]})

    async def list_installed(self, request: web.Request) -> web.Response:
        who = principal(request)
        return listed(await self.integrations.installs.list_installed(who.org_id))

    async def installed_one(self, request: web.Request) -> web.Response:
        who = principal(request)
        integration_id = request.match_info["integration_id"]
        installed = await self.integrations.installs.installed_one(who.org_id, integration_id)
        status = await self.integrations.installs.auth_status(who.org_id, integration_id)
        return web.json_response({**installed, **status})

    async def install(self, request: web.Request) -> web.Response:
        who = principal(request)
        require_manager_if_human(who, "install integrations")
        body = await json_body(request)
        installed = await self.integrations.installs.install(
            who,
            str_field(body, "integration_id") or "",
            str_field(body, "auth_method", required=False) or "none",
            str_field(body, "token", required=False),
        )
        return web.json_response(installed, status=201)

    async def uninstall(self, request: web.Request) -> web.Response:
        who = principal(request)
        require_manager_if_human(who, "remove integrations")
        await self.integrations.installs.uninstall(who, request.match_info["integration_id"])
        return web.json_response({"status": "removed"})

    # --- tools and calls ---------------------------------------------------------------------

    async def tools(self, request: web.Request) -> web.Response:
        who = principal(request)
        tools = await self.integrations.tools.list(
            who.org_id, query.text(request, "integration_id"), query.text(request, "query")
        )
        return listed([tool_view(t) for t in tools])

    async def describe_tool(self, request: web.Request) -> web.Response:
        who = principal(request)
        m = request.match_info
        return web.json_response(
            tool_view(await self.integrations.tools.describe(who.org_id, m["integration_id"], m["tool_name"]))
        )

    async def call_tool(self, request: web.Request) -> web.Response:
        who = principal(request)
        body = await json_body(request)
        arguments = agreed({"arguments": body.get("arguments"), "args": body.get("args")}) or {}
        if not isinstance(arguments, dict):
            raise BadRequest("arguments (or args) must be a JSON object")
        channel: Channel = "cli" if request.headers.get("X-AgentPort-Client") == "cli" else "rest"
        result = await self.calls.call_tool(
            who,
            request.match_info["integration_id"],
            request.match_info["tool_name"],
            arguments,
            str_field(body, "additional_info", required=False),
            channel,
            query.seconds(request, body, self.settings.call_wait_seconds),
            idempotency_key=idempotency_key(request),
        )
        return web.json_response(result)

    async def await_call(self, request: web.Request) -> web.Response:
        who = principal(request)
        budget = query.seconds(request, await json_body(request), self.settings.await_budget_seconds)
        result = await self.calls.await_call(who, request.match_info["call_id"], budget, None)
        return web.json_response(result)

    async def tool_settings(self, request: web.Request) -> web.Response:
        who = principal(request)
        integration_id = request.match_info["integration_id"]
        tools = await self.integrations.tools.list(who.org_id, integration_id, None)
        changes = await self.integrations.tools.changes(who.org_id, integration_id)
        return listed([setting_view(t, changes.get((integration_id, t["name"]))) for t in tools])

    async def set_tool_mode(self, request: web.Request) -> web.Response:
        who = principal(request)
        body = await json_body(request)
        m = request.match_info

        async def second_factor() -> None:
            """Lifting a tool's approval gate is confirmed like "Always allow this tool": a human with two-factor
            on gives a fresh code, so a stolen session alone cannot open the gates."""
            if self.two_factor is not None and who.actor.user_id is not None:
                await self.two_factor.require(who.actor.user_id, str_field(body, "totp_code", required=False))

        mode = str_field(body, "mode") or ""
        tool = await self.integrations.tools.set_mode(who, m["integration_id"], m["tool_name"], mode, second_factor)
        return web.json_response({**tool_view(tool), "tool_name": tool["name"]})

    # --- approvals ---------------------------------------------------------------------------

    async def list_requests(self, request: web.Request) -> web.Response:
        who = principal(request)
        limit, offset = query.page(request, REQUESTS_PAGE)
        page = await self.bus.request(
            "approvals.list",
            {"org_id": who.org_id, "status": query.text(request, "status"), "limit": limit, "offset": offset},
        )
        for item in page["items"]:
            item["approval_url"] = self.calls.approval_url(item["id"])
        return paged(request, self.settings.base_url, page, limit, offset)

    async def get_request(self, request: web.Request) -> web.Response:
        who = principal(request)
        item = await self.bus.request(
            "approvals.get", {"org_id": who.org_id, "request_id": request.match_info["request_id"]}
        )
        item["approval_url"] = self.calls.approval_url(item["id"])
        changes = await self.integrations.tools.changes(who.org_id, item["integration_id"], item["tool_name"])
        item["tool_change"] = changes.get((item["integration_id"], item["tool_name"]))
        return web.json_response(item)

    async def await_request(self, request: web.Request) -> web.Response:
        who = principal(request)
        budget = query.seconds(request, await json_body(request), self.settings.await_budget_seconds)
        result = await self.calls.await_request(who, request.match_info["request_id"], budget, None)
        return web.json_response(result)

    async def decide(self, request: web.Request) -> web.Response:
        who = principal(request)
        decision = DECISION_PATHS.get(request.match_info["decision"])
        if decision is None:
            raise web.HTTPNotFound(reason="unknown decision; use approve-once, allow-tool or deny")
        who.require_human(DECIDE, "decide approval requests")
        body = await json_body(request)
        if self.two_factor is not None and who.actor.user_id is not None:
            await self.two_factor.require(who.actor.user_id, str_field(body, "totp_code", required=False))
        reason = str_field(body, "reason", required=False)
        result = await send_decision(self.bus, who, request.match_info["request_id"], decision, reason)
        return web.json_response(result)

    # --- logs and settings -------------------------------------------------------------------

    async def logs(self, request: web.Request) -> web.Response:
        who = principal(request)
        who.require_human(READ, "read the logs")
        limit, offset = query.page(request, LOGS_PAGE)
        filters: dict[str, Any] = {**query.texts(request, LOG_FILTERS), **query.moments(request, LOG_TIMES)}
        filters.update(limit=limit, offset=offset)
        page = await self.bus.request("audit.logs", {"org_id": who.org_id, "filters": filters})
        return paged(request, self.settings.base_url, page, limit, offset)

    async def call_story(self, request: web.Request) -> web.Response:
        who = principal(request)
        who.require_human(READ, "read the logs")
        story = await self.bus.request("audit.call", {"org_id": who.org_id, "call_id": request.match_info["call_id"]})
        return web.json_response(story)

    async def verify_logs(self, request: web.Request) -> web.Response:
        who = principal(request)
        who.require_human(MANAGE, "verify the audit log")
        return web.json_response(await self.bus.request("audit.verify", {"org_id": who.org_id}, timeout=60))

    async def org_settings(self, request: web.Request) -> web.Response:
        who = principal(request)
        who.require_human(READ, "read organization settings")
        value = await self.projection.pool.fetchval(
            "SELECT approval_expiry_seconds FROM org_settings WHERE org_id=$1", who.org_id
        )
        return web.json_response({"approval_expiry_seconds": value or self.settings.default_expiry_seconds})

    async def update_org_settings(self, request: web.Request) -> web.Response:
        who = principal(request)
        who.require_human(MANAGE, "change organization settings")
        body = await json_body(request)
        seconds = body.get("approval_expiry_seconds")
        if not isinstance(seconds, int) or isinstance(seconds, bool) or not 5 <= seconds <= 7 * 24 * 3600:
            raise BadRequest("approval_expiry_seconds must be a whole number from 5 to 604800")
        event = OrgSettingsUpdated(org_id=who.org_id, approval_expiry_seconds=seconds, actor=who.actor)
        await self.bus.publish(event)
        await self.projection.apply(event)
        return web.json_response({"approval_expiry_seconds": seconds})


def idempotency_key(request: web.Request) -> str | None:
    """The `Idempotency-Key` header of a call: 1 to 200 characters, scoped to the caller's org."""
    key = request.headers.get("Idempotency-Key")
    if key is not None and not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY:
        raise BadRequest(f"the Idempotency-Key header must be 1 to {MAX_IDEMPOTENCY_KEY} characters")
    return key
