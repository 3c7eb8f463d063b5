"""Reaching an installed integration whatever its kind: a remote MCP server, a local stdio server, or an HTTP
API described by OpenAPI. Listing its tools and running one call, within its limits."""

from __future__ import annotations

import hashlib
from typing import Any

import httpx
import mcp_types as types

from services.executor import installed as store
from services.executor.http_api import credential_headers, fetch_document, perform
from services.executor.installed import Installed
from services.executor.limits import Limits
from services.executor.openapi import OpenApiError, Operation, default_base_url, operations
from services.executor.stdio import StdioServer
from services.executor.upstream import Target, UpstreamPool, auth_headers
from shared.events import ToolDef, canonical_json

_COMPILED_CACHE_MAX = 256


class NotConfigured(Exception):
    """The integration needs something this executor does not have (a stdio server, a base URL)."""


class Integrations:
    def __init__(
        self,
        pool: Any,
        mcp: UpstreamPool,
        http: httpx.AsyncClient,
        stdio: dict[str, StdioServer],
        default_timeout: float,
        max_bytes: int,
    ) -> None:
        self.pool = pool
        self.mcp = mcp
        self.http = http
        self.stdio = stdio
        self.default_timeout = default_timeout
        self.max_bytes = max_bytes
        self._compiled: dict[str, tuple[dict[str, Operation], str]] = {}

    def limits(self, integration: Installed) -> Limits:
        """The integration's limits: its own timeout (or the local server's), else the executor's default."""
        timeout = integration.timeout
        if integration.kind == "stdio" and timeout is None and integration.integration_id in self.stdio:
            timeout = self.stdio[integration.integration_id].timeout_seconds
        return Limits.of(timeout, self.default_timeout, self.max_bytes)

    async def list_tools(self, integration: Installed) -> tuple[ToolDef, ...]:
        """The tools it offers now (an OpenAPI document at a URL is fetched again)."""
        if integration.kind == "openapi":
            ops, _ = await self._operations(integration, refetch=True)
            return tuple(op.tool for op in ops.values())
        return await self.mcp.list_tools(integration.key, self._mcp_target(integration))

    async def call(
        self, integration: Installed, tool_name: str, arguments: dict[str, Any], call_id: str
    ) -> types.CallToolResult:
        """Run one call upstream, once."""
        limits = self.limits(integration)
        if integration.kind != "openapi":
            target = self._mcp_target(integration)
            return await self.mcp.call_tool(integration.key, target, tool_name, arguments, limits, call_id)
        ops, base_url = await self._operations(integration, refetch=False)
        op = ops.get(tool_name)
        if op is None:
            raise NotConfigured(f"the API no longer offers an operation for {tool_name!r}; refresh its tools")
        return await perform(self.http, op, base_url, integration.auth, integration.credential, arguments, limits)

    def _mcp_target(self, integration: Installed) -> Target:
        if integration.kind == "stdio":
            server = self.stdio.get(integration.integration_id)
            if server is None:
                raise NotConfigured(f"no local server {integration.integration_id!r} is configured on this executor")
            fingerprint = f"{integration.version}|{canonical_json(server.model_dump(mode='json'))}"
            return Target(
                url="",
                headers={},
                fingerprint=fingerprint,
                stdio=server.parameters(integration.credential),
                max_bytes=self.max_bytes,
            )
        return Target(
            url=integration.url,
            headers=auth_headers(integration.auth, integration.credential),
            fingerprint=integration.version,
            max_bytes=self.max_bytes,
        )

    async def _operations(self, integration: Installed, *, refetch: bool) -> tuple[dict[str, Operation], str]:
        """The compiled operations and base URL, from the inline document or the one fetched from its URL."""
        source = integration.openapi
        if source is None:
            raise NotConfigured("this HTTP API integration has no OpenAPI document")
        document = source.document or (None if refetch else integration.document)
        if document is None:
            if not source.document_url:
                raise NotConfigured("this HTTP API integration has no OpenAPI document")
            document = await fetch_document(
                self.http, source.document_url, self._document_headers(integration), self.limits(integration)
            )
            await store.save_document(self.pool, integration, document)
        digest = hashlib.sha256(
            canonical_json([document, source.operations, source.base_url, source.document_url]).encode()
        ).hexdigest()
        cached = self._compiled.get(digest)
        if cached is not None:
            return cached
        base_url = source.base_url or default_base_url(document, source.document_url)
        if not base_url:
            raise OpenApiError("the document names no absolute server URL; set base_url on the integration")
        compiled = ({op.tool.name: op for op in operations(document, source.operations)}, base_url)
        if len(self._compiled) >= _COMPILED_CACHE_MAX:
            self._compiled.pop(next(iter(self._compiled)))
        self._compiled[digest] = compiled
        return compiled

    def _document_headers(self, integration: Installed) -> dict[str, str]:
        """The credential goes to the document URL only when it is on the API's own origin."""
        source = integration.openapi
        assert source is not None and source.document_url is not None
        if source.base_url and _origin(source.base_url) == _origin(source.document_url):
            return credential_headers(integration.auth, integration.credential)
        return {}


def _origin(url: str) -> tuple[str, str, int | None]:
    parsed = httpx.URL(url)
    return parsed.scheme, parsed.host, parsed.port
