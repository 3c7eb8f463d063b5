"""Signing in to an upstream MCP server with OAuth, the gateway's half: it starts a flow for an org's integration
(the executor discovers, registers and builds the authorization URL) and serves `/api/auth/callback`, where the
human's browser comes back.

The state is single-use, expires, and is stored only as a hash bound to the org, the integration and who asked.
The code is sealed to the executor's key at once and never logged; the executor exchanges it (with the PKCE
verifier only it holds) and keeps the tokens.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

import asyncpg
import structlog
from aiohttp import web

from services.gateway.identity.oauth import pages
from services.gateway.identity.principals import Principal, client_ip
from services.gateway.identity.secrets_at_rest import token_hash
from services.gateway.integrations.installs import Installs
from shared.bus import Bus
from shared.errors import AgentPortError, BadRequest
from shared.events import Actor, new_id, utcnow
from shared.netguard import check_url
from shared.sealing import seal, seal_context
from shared.settings import GatewaySettings

log = structlog.get_logger("gateway.upstream_oauth")
CALLBACK_PATH = "/api/auth/callback"


def code_context(org_id: str, integration_id: str, flow_id: str) -> str:
    """What a sealed authorization code is bound to; the executor opens it with the same context."""
    return f"{seal_context(org_id, integration_id)}/oauth-code/{flow_id}"


class UpstreamSignIn:
    """Starts upstream sign-ins and completes them when the human comes back."""

    def __init__(self, settings: GatewaySettings, bus: Bus, pool: asyncpg.Pool, installs: Installs) -> None:
        self.bus = bus
        self.pool = pool
        self.installs = installs
        self.redirect_uri = settings.base_url.rstrip("/") + CALLBACK_PATH
        self.flow_seconds = settings.upstream_oauth_flow_seconds
        self.timeout = settings.install_wait_seconds

    def routes(self) -> list[web.RouteDef]:
        return [web.get(CALLBACK_PATH, self.callback)]

    async def start(self, who: Principal, view: dict[str, Any]) -> dict[str, Any]:
        """Ask the executor for an authorization URL and remember the flow; the agent hands the URL to a human."""
        integration_id = view["id"]
        if "oauth" not in view["auth_methods"]:
            raise BadRequest(f"{integration_id} does not support OAuth; install it with auth_method 'token'")
        if view.get("kind", "mcp") != "mcp" or not view.get("mcp_url"):
            raise BadRequest(f"{integration_id} has no remote MCP server to sign in to")
        await check_url(view["mcp_url"], self.installs.allow)
        flow_id, state = new_id(), secrets.token_urlsafe(32)
        answer = await self.bus.request(
            "executor.oauth_begin",
            {
                "org_id": who.org_id,
                "integration_id": integration_id,
                "mcp_url": view["mcp_url"],
                "flow_id": flow_id,
                "state": state,
                "redirect_uri": self.redirect_uri,
                "expires_in": self.flow_seconds,
            },
            timeout=self.timeout,
        )
        expires_at = utcnow() + timedelta(seconds=self.flow_seconds)
        await self.pool.execute(
            """INSERT INTO upstream_oauth_flows (state_hash, flow_id, org_id, integration_id, user_id, actor,
                                                 expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)""",
            token_hash(state),
            flow_id,
            who.org_id,
            integration_id,
            who.actor.user_id,
            who.actor.model_dump(),
            expires_at,
        )
        log.info("upstream_oauth.started", integration_id=integration_id, flow_id=flow_id, actor_id=who.actor.id)
        return {
            "status": "pending",
            "auth_status": "pending",
            "integration_id": integration_id,
            "authorization_url": answer["authorization_url"],
            "expires_at": expires_at.isoformat(),
            "message": (
                f"Ask a human to open authorization_url and sign in to {view['name']}. Then call "
                f'agentport__get_auth_status(integration_id="{integration_id}") until it says connected.'
            ),
        }

    async def pending(self, org_id: str, integration_id: str) -> bool:
        """Whether a human has been asked to sign in and the link is still open."""
        return bool(
            await self.pool.fetchval(
                """SELECT true FROM upstream_oauth_flows WHERE org_id=$1 AND integration_id=$2 AND finished_at IS NULL
               AND expires_at > now() LIMIT 1""",
                org_id,
                integration_id,
            )
        )

    async def callback(self, request: web.Request) -> web.Response:
        """GET /api/auth/callback: the upstream sends the human back here with a code (or an error)."""
        flow = await self.pool.fetchrow(
            """UPDATE upstream_oauth_flows SET finished_at=now(), outcome='completing'
               WHERE state_hash=$1 AND finished_at IS NULL AND expires_at > now() RETURNING *""",
            token_hash(request.query.get("state", "")),
        )
        if flow is None:
            return pages.problem(
                "This sign-in link was already used or has expired. Ask your agent to start again "
                "(agentport__start_oauth_flow).",
                status=400,
            )
        integration_id = flow["integration_id"]
        code, error = request.query.get("code"), request.query.get("error")
        if error or not code:
            await self._finish(flow["flow_id"], "refused")
            log.info("upstream_oauth.refused", integration_id=integration_id, error=(error or "no_code")[:60])
            return pages.problem(
                f"Signing in to {integration_id} did not complete ({error or 'no code'}). Nothing was connected.",
                status=400,
            )
        who = Principal(
            org_id=flow["org_id"], actor=Actor.model_validate(flow["actor"]), role=None, client_ip=client_ip(request)
        )
        try:
            installed = await self._complete(who, flow, code, request.query.get("iss"))
        except AgentPortError as exc:
            await self._finish(flow["flow_id"], "failed")
            log.warning("upstream_oauth.failed", integration_id=integration_id, error=exc.message)
            return pages.problem(f"Signing in to {integration_id} failed: {exc.message}", status=502)
        await self._finish(flow["flow_id"], "connected")
        tools = installed.get("tool_count", 0)
        return pages.done(
            f"Connected {installed.get('name') or integration_id}",
            f"AgentPort can now use {tools} tool{'s' if tools != 1 else ''} of it. You can close this window "
            "and return to your agent.",
        )

    async def _complete(self, who: Principal, flow: asyncpg.Record, code: str, iss: str | None) -> dict[str, Any]:
        org_id, integration_id, flow_id = flow["org_id"], flow["integration_id"], flow["flow_id"]
        sealed = seal(await self.installs.executor_key(), code, code_context(org_id, integration_id, flow_id))
        await self.bus.request(
            "executor.oauth_complete",
            {"org_id": org_id, "integration_id": integration_id, "flow_id": flow_id, "sealed_code": sealed, "iss": iss},
            timeout=self.timeout,
        )
        log.info("upstream_oauth.connected", integration_id=integration_id, flow_id=flow_id)
        return await self.installs.complete_oauth(who, integration_id)

    async def _finish(self, flow_id: str, outcome: str) -> None:
        await self.pool.execute("UPDATE upstream_oauth_flows SET outcome=$2 WHERE flow_id=$1", flow_id, outcome)
