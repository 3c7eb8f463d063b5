"""Installing an integration for an org: the credential sealed to the executor (a token, or an upstream
OAuth sign-in), the wait for its tool list, removal, and how each installed integration is doing."""

from __future__ import annotations

from typing import Any, Literal, Protocol

import asyncpg

from services.gateway.identity.principals import Principal
from services.gateway.integrations.directory import Directory
from services.gateway.projection import Projection
from services.gateway.waiters import Waiters
from shared.bus import Bus
from shared.errors import BadRequest, NotFound, Unavailable
from shared.events import (
    AuthSpec,
    IntegrationInstalled,
    IntegrationRefreshFailed,
    IntegrationRemoved,
    IntegrationToolsRefreshed,
    OpenApiSource,
)
from shared.netguard import AllowList, check_url
from shared.sealing import seal, seal_context

KEY_BUCKET, KEY_NAME = "keys", "executor"


class UpstreamSignIn(Protocol):
    """Signing in to an integration's upstream with OAuth (`upstream_oauth.UpstreamSignIn`)."""

    async def start(self, who: Principal, view: dict[str, Any]) -> dict[str, Any]: ...

    async def pending(self, org_id: str, integration_id: str) -> bool: ...


class Installs:
    """Commands on an org's installed integrations and their status."""

    def __init__(
        self,
        bus: Bus,
        pool: asyncpg.Pool,
        waiters: Waiters,
        projection: Projection,
        allow: AllowList,
        install_wait: float,
        directory: Directory,
    ) -> None:
        self.bus = bus
        self.pool = pool
        self.waiters = waiters
        self.projection = projection
        self.allow = allow
        self.install_wait = install_wait
        self.directory = directory
        # Upstream OAuth sign-in (services/gateway/integrations/upstream_oauth.py), set once the gateway has built it.
        self.sign_in: UpstreamSignIn | None = None

    async def install(self, who: Principal, integration_id: str, auth_method: str, token: str | None) -> dict[str, Any]:
        """Install for the org: seal the credential to the executor, then wait for the tool list."""
        view = await self.directory.get(who.org_id, integration_id)
        methods = view["auth_methods"]
        if auth_method not in methods:
            raise BadRequest(f"{integration_id} supports auth_method {', '.join(methods)}, not {auth_method!r}")
        if auth_method == "oauth":
            return await self.start_oauth(who, integration_id)
        if auth_method == "token" and not token:
            where = view.get("token_help_url") or "the vendor"
            raise BadRequest(f"auth_method 'token' needs a token; get one at {where}")
        sealed = None
        if token:
            sealed = seal(await self.executor_key(), token, seal_context(who.org_id, integration_id))
        return await self._publish_install(who, view, "token" if token else "none", sealed)

    async def start_oauth(self, who: Principal, integration_id: str) -> dict[str, Any]:
        """Start (or restart) signing in to the integration's upstream: returns the URL a human must open."""
        if self.sign_in is None:
            raise Unavailable("OAuth sign-in to upstream servers is not configured on this gateway")
        result: dict[str, Any] = await self.sign_in.start(who, await self.directory.get(who.org_id, integration_id))
        return result

    async def complete_oauth(self, who: Principal, integration_id: str) -> dict[str, Any]:
        """The human signed in upstream and the executor holds the tokens: install (or reinstall) it."""
        return await self._publish_install(who, await self.directory.get(who.org_id, integration_id), "oauth", None)

    async def _publish_install(
        self, who: Principal, view: dict[str, Any], auth_method: Literal["none", "token", "oauth"], sealed: str | None
    ) -> dict[str, Any]:
        integration_id = view["id"]
        kind = view.get("kind", "mcp")
        auth, openapi = await self._how_to_reach(who.org_id, view)
        event = IntegrationInstalled(
            org_id=who.org_id,
            integration_id=integration_id,
            name=view["name"],
            mcp_url=view.get("mcp_url") or "",
            auth=auth,
            auth_method=auth_method,
            sealed_credential=sealed,
            actor=who.actor,
            kind=kind,
            openapi=openapi,
            timeout_seconds=view.get("timeout_seconds"),
        )
        with self.waiters.watch(who.org_id, "install", event.event_id) as watch:
            await self.bus.publish(event)
            await self.projection.apply(event)
            outcome = await watch.next(self.install_wait)
        if isinstance(outcome, IntegrationToolsRefreshed | IntegrationRefreshFailed):
            await self.projection.apply(outcome)
        return await self.installed_one(who.org_id, integration_id)

    async def _how_to_reach(self, org_id: str, view: dict[str, Any]) -> tuple[AuthSpec, OpenApiSource | None]:
        """How the executor presents the credential, and an HTTP API's document source; URLs are vetted again."""
        kind = view.get("kind", "mcp")
        if kind == "stdio":
            return AuthSpec(type="none"), None
        auth = AuthSpec.model_validate(view["auth"]) if view["source"] == "custom" else _catalog_auth(view)
        if kind == "openapi":
            raw = await self.pool.fetchval(
                "SELECT openapi FROM custom_integrations WHERE org_id=$1 AND integration_id=$2", org_id, view["id"]
            )
            source = OpenApiSource.model_validate(raw)
            for url in (source.base_url, source.document_url):
                if url:
                    await check_url(url, self.allow)
            return auth, source
        if not view.get("mcp_url"):
            raise BadRequest(
                f"{view['id']} has no MCP server; define its HTTP API with its OpenAPI document "
                "(POST /api/integrations/custom-api)"
            )
        await check_url(view["mcp_url"], self.allow)
        return auth, None

    async def executor_key(self) -> str:
        kv = await self.bus.kv(KEY_BUCKET)
        try:
            entry = await kv.get(KEY_NAME)
        except Exception as exc:
            raise Unavailable("the executor has not published its key yet; is the executor running?") from exc
        assert entry.value is not None
        return entry.value.decode()

    async def uninstall(self, who: Principal, integration_id: str) -> None:
        if integration_id not in await self.directory.installed_ids(who.org_id):
            raise NotFound(f"integration {integration_id!r} is not installed")
        event = IntegrationRemoved(org_id=who.org_id, integration_id=integration_id, actor=who.actor)
        await self.bus.publish(event)
        await self.projection.apply(event)

    async def installed_one(self, org_id: str, integration_id: str) -> dict[str, Any]:
        rows = await self.list_installed(org_id, integration_id)
        if not rows:
            raise NotFound(f"integration {integration_id!r} is not installed")
        return rows[0]

    async def list_installed(self, org_id: str, integration_id: str | None = None) -> list[dict[str, Any]]:
        rows = await self.pool.fetch(
            """SELECT i.*, (SELECT count(*) FROM tools t WHERE t.org_id=i.org_id
                            AND t.integration_id=i.integration_id) AS tool_count
               FROM installed i WHERE org_id=$1 AND ($2::text IS NULL OR integration_id=$2) ORDER BY name""",
            org_id,
            integration_id,
        )
        return [
            {
                "integration_id": r["integration_id"],
                "name": r["name"],
                "kind": r["kind"],
                "mcp_url": r["mcp_url"],
                "auth_method": r["auth_method"],
                "status": r["status"],
                "error": r["error"],
                "tool_count": r["tool_count"],
                "installed_at": r["installed_at"].isoformat(),
            }
            for r in rows
        ]

    async def auth_status(self, org_id: str, integration_id: str) -> dict[str, Any]:
        """`connected`, `pending` or `needs_reauth`; `pending` too while a human is asked to sign in upstream."""
        signing_in = self.sign_in is not None and await self.sign_in.pending(org_id, integration_id)
        try:
            row = await self.installed_one(org_id, integration_id)
        except NotFound:
            if not signing_in:
                raise
            return {
                "integration_id": integration_id,
                "auth_status": "pending",
                "auth_method": "oauth",
                "detail": "waiting for a human to finish signing in upstream",
            }
        status = {"ready": "connected", "installing": "pending"}.get(row["status"], "needs_reauth")
        if signing_in and status == "needs_reauth":
            status = "pending"
        return {
            "integration_id": integration_id,
            "auth_status": status,
            "auth_method": row["auth_method"],
            "detail": row["error"],
        }


def _catalog_auth(view: dict[str, Any]) -> AuthSpec:
    """How a catalog service takes its token: `Authorization: Bearer` unless the entry says otherwise."""
    name, _, scheme = str(view.get("token_header") or "Authorization: Bearer").partition(":")
    name, scheme = name.strip(), scheme.strip()
    if name.lower() == "authorization" and scheme.lower() == "bearer":
        return AuthSpec(type="bearer")
    return AuthSpec(type="header", header_name=name, scheme=scheme or None)
