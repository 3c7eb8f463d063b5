"""An org's own integrations: an MCP server by URL or an HTTP API by its OpenAPI document, each checked
against the upstream guard before it is defined."""

from __future__ import annotations

import re
from typing import Any

from services.gateway.identity.principals import Principal
from services.gateway.integrations import local_servers
from services.gateway.integrations.catalog import get_entry
from services.gateway.integrations.directory import Directory
from services.gateway.integrations.openapi_docs import parse_auth, source_from
from services.gateway.projection import Projection
from shared.bus import Bus
from shared.errors import BadRequest, Conflict
from shared.events import AuthSpec, IntegrationDefined
from shared.netguard import AllowList, check_url

_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:63] or "custom"


class CustomDefinitions:
    """Defining an org's own integrations; each definition is published, then projected (read-your-writes)."""

    def __init__(self, bus: Bus, projection: Projection, allow: AllowList, directory: Directory) -> None:
        self.bus = bus
        self.projection = projection
        self.allow = allow
        self.directory = directory

    async def define_mcp(
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
        return await self.directory.get(who.org_id, integration_id)

    async def _new_custom(self, name: str, integration_id: str | None) -> tuple[str, str]:
        """A custom integration's name and id, refusing ids that belong to the catalog or the operator."""
        name = name.strip()
        if not name:
            raise BadRequest("a custom integration needs a name")
        integration_id = (integration_id or _slug(name)).strip().lower()
        if not _ID.match(integration_id):
            raise BadRequest("integration id must be lowercase letters, digits, '-' or '_' (at most 63)")
        if get_entry(self.directory.catalog, integration_id) is not None:
            raise Conflict(f"{integration_id!r} is a catalog integration; choose another id")
        if any(e.get("id") == integration_id for e in await local_servers.announced(self.bus)):
            raise Conflict(f"{integration_id!r} is a local server the operator configured; choose another id")
        return name, integration_id

    async def define_api(self, who: Principal, body: dict[str, Any]) -> dict[str, Any]:
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
        view = await self.directory.get(who.org_id, integration_id)
        if count is not None:
            view["operation_count"] = count
        return view
