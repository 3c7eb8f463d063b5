"""Integrations an org can install (the bundled catalog plus its own custom ones), installing them,
and the tools they offer."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any, Literal

import asyncpg

from services.gateway import local_servers
from services.gateway.catalog import CatalogEntry, get_entry, load_catalog, search_catalog
from services.gateway.openapi_docs import parse_auth, source_from
from services.gateway.principals import MANAGE, Principal
from services.gateway.tool_pinning import pending_changes, pinned_definition
from services.gateway.waiters import Waiters
from shared.bus import Bus
from shared.errors import BadRequest, Conflict, NotFound, Unavailable
from shared.events import (
    AuthSpec,
    IntegrationDefined,
    IntegrationInstalled,
    IntegrationRefreshFailed,
    IntegrationRemoved,
    IntegrationToolsRefreshed,
    OpenApiSource,
    PolicyModeSet,
    ToolDef,
    ToolMode,
)
from shared.netguard import AllowList, check_url
from shared.sealing import seal, seal_context

_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
DEFAULT_MODE: ToolMode = "require_approval"
KEY_BUCKET, KEY_NAME = "keys", "executor"


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:63] or "custom"


def _catalog_view(entry: CatalogEntry) -> dict[str, Any]:
    data = entry.model_dump(mode="json")
    data["source"] = "catalog"
    return data


def _custom_view(row: asyncpg.Record) -> dict[str, Any]:
    auth = row["auth"]
    view = {
        "id": row["integration_id"],
        "name": row["name"],
        "description": row["description"],
        "type": "mcp",
        "kind": row["kind"],
        "category": "custom",
        "mcp_url": row["mcp_url"],
        "source": "custom",
        "auth_methods": _custom_auth_methods(row["kind"], auth["type"]),
        "auth": auth,
        "timeout_seconds": row["timeout_seconds"],
    }
    if row["kind"] == "openapi" and row["openapi"]:
        source = row["openapi"]
        view.update(
            type="api",
            base_url=source.get("base_url"),
            document_url=source.get("document_url"),
            operations=source.get("operations"),
        )
    return view


def _custom_auth_methods(kind: str, auth_type: str) -> list[str]:
    """A custom MCP server that takes a bearer token may also hand one out through OAuth (discovered on install)."""
    if auth_type == "none":
        return ["none"]
    return ["token", "oauth"] if kind == "mcp" and auth_type == "bearer" else ["token"]


def _matches(view: dict[str, Any], tokens: list[str]) -> bool:
    return all(
        any(t in str(view.get(f) or "").lower() for f in ("id", "name", "description", "category")) for t in tokens
    )


class Integrations:
    def __init__(
        self,
        bus: Bus,
        pool: asyncpg.Pool,
        waiters: Waiters,
        projection: Any,
        allow: AllowList,
        install_wait: float,
    ) -> None:
        self.bus = bus
        self.pool = pool
        self.waiters = waiters
        self.projection = projection
        self.allow = allow
        self.install_wait = install_wait
        self.catalog = load_catalog()
        # Upstream OAuth sign-in (services/gateway/upstream_oauth.py), set once the gateway has built it.
        self.sign_in: Any = None
        # The last mode change this replica published per org, so its own reads include it.
        self._mode_seq: dict[str, int] = {}

    # --- discovery ----------------------------------------------------------------------------

    async def available(self, org_id: str, type_: str | None, query: str | None) -> list[dict[str, Any]]:
        """Catalog and custom integrations matching a query (tokens ANDed, case-insensitive)."""
        custom = [
            _custom_view(r)
            for r in await self.pool.fetch("SELECT * FROM custom_integrations WHERE org_id=$1 ORDER BY name", org_id)
        ]
        custom += await self._local_views(org_id)
        tokens = (query or "").lower().split()
        custom = [c for c in custom if _matches(c, tokens) and (not type_ or c["type"] == type_)]
        installed = await self._installed_ids(org_id)
        views = custom + [_catalog_view(e) for e in search_catalog(self.catalog, query, type_)]
        for view in views:
            view["installed"] = view["id"] in installed
        return views

    async def get(self, org_id: str, integration_id: str) -> dict[str, Any]:
        row = await self.pool.fetchrow(
            "SELECT * FROM custom_integrations WHERE org_id=$1 AND integration_id=$2", org_id, integration_id
        )
        local = [v for v in await self._local_views(org_id) if v["id"] == integration_id]
        if row is not None:
            view = _custom_view(row)
        elif local:
            view = local[0]
        else:
            entry = get_entry(self.catalog, integration_id)
            if entry is None:
                raise NotFound(f"no integration {integration_id!r}; list the available integrations to find its id")
            view = _catalog_view(entry)
        view["installed"] = integration_id in await self._installed_ids(org_id)
        return view

    async def _local_views(self, org_id: str) -> list[dict[str, Any]]:
        """The operator's local servers this org may see."""
        entries = await local_servers.announced(self.bus)
        if not entries:
            return []
        org_name = await self.pool.fetchval("SELECT name FROM orgs WHERE org_id=$1", org_id)
        return [local_servers.view(e) for e in entries if local_servers.visible_to(e, org_id, org_name)]

    async def _installed_ids(self, org_id: str) -> set[str]:
        return {
            r["integration_id"]
            for r in await self.pool.fetch("SELECT integration_id FROM installed WHERE org_id=$1", org_id)
        }

    async def define_custom(
        self, who: Principal, name: str, url: str, integration_id: str | None, description: str, auth: AuthSpec
    ) -> dict[str, Any]:
        """Define an org's own MCP integration by URL (checked against the upstream guard)."""
        name, integration_id = await self._new_custom(name, integration_id)
        if auth.type == "header" and not (auth.header_name and re.match(r"^[A-Za-z0-9-]{1,64}$", auth.header_name)):
            raise BadRequest("auth type 'header' needs a valid header_name")
        if auth.type == "query":
            raise BadRequest("an MCP integration takes its credential in a header: use bearer, header or basic")
        await check_url(url, self.allow)
        event = IntegrationDefined(
            org_id=who.org_id,
            integration_id=integration_id,
            name=name,
            mcp_url=url,
            description=description,
            auth=auth,
            actor=who.actor,
        )
        await self.bus.publish(event)
        await self.projection.apply(event)
        return await self.get(who.org_id, integration_id)

    async def _new_custom(self, name: str, integration_id: str | None) -> tuple[str, str]:
        """A custom integration's name and id, refusing ids that belong to the catalog or the operator."""
        name = name.strip()
        if not name:
            raise BadRequest("a custom integration needs a name")
        integration_id = (integration_id or _slug(name)).strip().lower()
        if not _ID.match(integration_id):
            raise BadRequest("integration id must be lowercase letters, digits, '-' or '_' (at most 63)")
        if get_entry(self.catalog, integration_id) is not None:
            raise Conflict(f"{integration_id!r} is a catalog integration; choose another id")
        if any(e.get("id") == integration_id for e in await local_servers.announced(self.bus)):
            raise Conflict(f"{integration_id!r} is a local server the operator configured; choose another id")
        return name, integration_id

    async def define_custom_api(self, who: Principal, body: dict[str, Any]) -> dict[str, Any]:
        """Define an org's own HTTP API from its OpenAPI document; every URL in it passes the upstream guard."""
        name, integration_id = await self._new_custom(str(body.get("name") or ""), body.get("id"))
        auth = parse_auth(body.get("auth"))
        source, count = source_from(body)
        timeout = body.get("timeout_seconds")
        if timeout is not None and (
            not isinstance(timeout, int | float) or isinstance(timeout, bool) or not 0 < timeout <= 600
        ):
            raise BadRequest("timeout_seconds must be a number of seconds from 0 to 600")
        for url in (source.base_url, source.document_url):
            if url:
                await check_url(url, self.allow)
        description = body.get("description")
        event = IntegrationDefined(
            org_id=who.org_id,
            integration_id=integration_id,
            name=name,
            kind="openapi",
            auth=auth,
            description=description if isinstance(description, str) else "",
            actor=who.actor,
            openapi=source,
            timeout_seconds=float(timeout) if timeout is not None else None,
        )
        await self.bus.publish(event)
        await self.projection.apply(event)
        view = await self.get(who.org_id, integration_id)
        if count is not None:
            view["operation_count"] = count
        return view

    # --- installing ---------------------------------------------------------------------------

    async def install(self, who: Principal, integration_id: str, auth_method: str, token: str | None) -> dict[str, Any]:
        """Install for the org: seal the credential to the executor, then wait for the tool list."""
        view = await self.get(who.org_id, integration_id)
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
            sealed = seal(await self._executor_key(), token, seal_context(who.org_id, integration_id))
        return await self._publish_install(who, view, "token" if token else "none", sealed)

    async def start_oauth(self, who: Principal, integration_id: str) -> dict[str, Any]:
        """Start (or restart) signing in to the integration's upstream: returns the URL a human must open."""
        if self.sign_in is None:
            raise Unavailable("OAuth sign-in to upstream servers is not configured on this gateway")
        result: dict[str, Any] = await self.sign_in.start(who, await self.get(who.org_id, integration_id))
        return result

    async def complete_oauth(self, who: Principal, integration_id: str) -> dict[str, Any]:
        """The human signed in upstream and the executor holds the tokens: install (or reinstall) it."""
        return await self._publish_install(who, await self.get(who.org_id, integration_id), "oauth", None)

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

    async def _executor_key(self) -> str:
        kv = await self.bus.kv(KEY_BUCKET)
        try:
            entry = await kv.get(KEY_NAME)
        except Exception as exc:
            raise Unavailable("the executor has not published its key yet; is the executor running?") from exc
        assert entry.value is not None
        return entry.value.decode()

    async def uninstall(self, who: Principal, integration_id: str) -> None:
        if integration_id not in await self._installed_ids(who.org_id):
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

    # --- tools and their modes ------------------------------------------------------------------

    async def tools(self, org_id: str, integration_id: str | None, query: str | None) -> list[dict[str, Any]]:
        """Installed tools with their current approval mode."""
        rows = await self.pool.fetch(
            """SELECT * FROM tools WHERE org_id=$1 AND ($2::text IS NULL OR integration_id=$2)
               ORDER BY integration_id, name""",
            org_id,
            integration_id,
        )
        if integration_id is not None and not rows:
            await self.installed_one(org_id, integration_id)
        tokens = (query or "").lower().split()
        rows = [
            r
            for r in rows
            if all(
                t in f"{r['integration_id']} {r['name']} {r['title'] or ''} {r['description']}".lower() for t in tokens
            )
        ]
        modes = await self.modes(org_id, integration_id)
        return [
            {
                "integration_id": r["integration_id"],
                "name": r["name"],
                "title": r["title"],
                "description": r["description"],
                "input_schema": r["input_schema"],
                "mode": modes.get(r["integration_id"], {}).get(r["name"], DEFAULT_MODE),
            }
            for r in rows
        ]

    async def describe(self, org_id: str, integration_id: str, tool_name: str) -> dict[str, Any]:
        """One tool with its mode and, when the upstream changed it since its mode was set, that change."""
        for tool in await self.tools(org_id, integration_id, None):
            if tool["name"] == tool_name:
                change = (await self.changes(org_id, integration_id, tool_name)).get((integration_id, tool_name))
                return {**tool, "changed": change} if change else tool
        raise NotFound(f"integration {integration_id!r} has no tool {tool_name!r}")

    async def changes(
        self, org_id: str, integration_id: str | None, tool_name: str | None = None
    ) -> dict[tuple[str, str], dict[str, Any]]:
        """Upstream changes to tools whose mode a human set, not yet reviewed (with a diff each)."""
        return await pending_changes(self.bus, org_id, integration_id, tool_name, self._mode_seq.get(org_id, 0))

    async def refresh(self, who: Principal, integration_id: str) -> dict[str, Any]:
        """Read an installed integration's tools from the upstream now."""
        await self.installed_one(who.org_id, integration_id)
        answer = await self.bus.request(
            "executor.refresh_tools",
            {"org_id": who.org_id, "integration_id": integration_id},
            timeout=self.install_wait,
        )
        tools = tuple(ToolDef.model_validate(t) for t in answer["tools"])
        # The executor published the change; applying it here too lets this reply show it at once.
        await self.projection.apply(
            IntegrationToolsRefreshed(
                org_id=who.org_id, integration_id=integration_id, tools=tools, trigger="on_demand"
            )
        )
        return {
            "integration_id": integration_id,
            "changed": answer["changed"],
            "tool_count": len(tools),
            "tools": await self.tools(who.org_id, integration_id, None),
        }

    async def modes(self, org_id: str, integration_id: str | None) -> dict[str, dict[str, str]]:
        result: dict[str, dict[str, str]] = await self.bus.request(
            "policy.modes",
            {"org_id": org_id, "integration_id": integration_id, "after_seq": self._mode_seq.get(org_id, 0)},
        )
        return result

    async def set_mode(
        self,
        who: Principal,
        integration_id: str,
        tool_name: str,
        mode: str,
        confirm_allow: Callable[[], Awaitable[None]] | None = None,
    ) -> dict[str, Any]:
        """Record a human's choice of mode for one tool; `confirm_allow` is awaited when it lifts the tool's
        approval gate (a mode other than allow becomes allow) and may refuse."""
        who.require_human(MANAGE, "change a tool's approval mode")
        if mode not in ("allow", "require_approval", "deny"):
            raise BadRequest("mode must be one of allow, require_approval, deny")
        tool = await self.describe(who.org_id, integration_id, tool_name)
        if confirm_allow is not None and mode == "allow" and tool["mode"] != "allow":
            await confirm_allow()
        # The mode is pinned to the definition the human is looking at; a later upstream change is caught.
        seq = await self.bus.publish(
            PolicyModeSet(
                org_id=who.org_id,
                integration_id=integration_id,
                tool_name=tool_name,
                mode=mode,  # type: ignore[arg-type]
                actor=who.actor,
                pinned=pinned_definition(tool),
            )
        )
        self._mode_seq[who.org_id] = max(seq, self._mode_seq.get(who.org_id, 0))
        return await self.describe(who.org_id, integration_id, tool_name)


def _catalog_auth(view: dict[str, Any]) -> AuthSpec:
    """How a catalog service takes its token: `Authorization: Bearer` unless the entry says otherwise."""
    name, _, scheme = str(view.get("token_header") or "Authorization: Bearer").partition(":")
    name, scheme = name.strip(), scheme.strip()
    if name.lower() == "authorization" and scheme.lower() == "bearer":
        return AuthSpec(type="bearer")
    return AuthSpec(type="header", header_name=name, scheme=scheme or None)
