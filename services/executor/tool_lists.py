"""Live tool lists: an integration's tools are read on install, when the upstream says they changed, and on
demand, and announced as `integration.tools_refreshed` (change-driven refreshes only when the list differs)."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

import asyncpg
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from services.executor import installed as store
from services.executor.integrations import Integrations
from shared.bus import Bus
from shared.errors import NotFound, UpstreamError
from shared.events import (
    IntegrationRefreshFailed,
    IntegrationToolsRefreshed,
    RefreshTrigger,
    ToolDef,
    canonical_json,
    derived_id,
    new_id,
    without_nul,
)

# Upstreams often send several list_changed in a burst (one per tool added): read the list once after it settles.
SETTLE_SECONDS = 0.2


def tools_hash(tools: tuple[ToolDef, ...]) -> str:
    """Equal tool lists (in any order) hash alike."""
    body = sorted((t.model_dump(mode="json") for t in tools), key=lambda t: str(t["name"]))
    return hashlib.sha256(canonical_json(body).encode()).hexdigest()


class ToolLists:
    def __init__(
        self,
        bus: Bus,
        pool: asyncpg.Pool,
        key: X25519PrivateKey,
        integrations: Integrations,
        describe: Any,
        log: Any,
    ) -> None:
        self.bus = bus
        self.pool = pool
        self.key = key
        self.integrations = integrations
        self.describe = describe
        self.log = log
        self._pending: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._again: set[tuple[str, str]] = set()

    async def on_install(self, org_id: str, integration_id: str, install_id: str) -> None:
        """Read the tools of a fresh installation; the gateway waits for this answer, success or failure."""
        try:
            tools, _ = await self.refresh(org_id, integration_id, "install", install_id)
        except Exception as exc:
            message = self.describe(exc)
            self.log.warning("integration.refresh_failed", integration_id=integration_id, error=message)
            await self.bus.publish(
                IntegrationRefreshFailed(
                    event_id=derived_id(install_id, "tools"),
                    org_id=org_id,
                    integration_id=integration_id,
                    message=message,
                    request_id=install_id,
                )
            )
            return
        self.log.info("integration.tools_refreshed", integration_id=integration_id, tools=len(tools or ()))

    async def refresh(
        self, org_id: str, integration_id: str, trigger: RefreshTrigger, request_id: str | None = None
    ) -> tuple[tuple[ToolDef, ...] | None, bool]:
        """Read the tools now; publish them on install, else only if they changed. None if not installed."""
        integration = await store.load(self.pool, self.key, org_id, integration_id)
        if integration is None:
            return None, False
        limits = self.integrations.limits(integration)
        try:
            async with asyncio.timeout(limits.timeout):
                tools = await self.integrations.list_tools(integration)
        except TimeoutError as exc:
            raise limits.timed_out() from exc
        tools = tuple(ToolDef.model_validate(without_nul(t.model_dump())) for t in tools)
        changed = await store.note_tools(self.pool, integration, tools_hash(tools))
        if trigger == "install" or changed:
            event_id = derived_id(request_id, "tools") if request_id else new_id()
            await self.bus.publish(
                IntegrationToolsRefreshed(
                    event_id=event_id,
                    org_id=org_id,
                    integration_id=integration_id,
                    tools=tools,
                    request_id=request_id if trigger == "install" else None,
                    trigger=trigger,
                )
            )
        return tools, changed

    def changed(self, key: tuple[str, str]) -> None:
        """The upstream said its tools changed: refresh soon, once per burst of notifications."""
        if key in self._pending:
            self._again.add(key)
            return
        task = asyncio.create_task(self._refresh_after_change(key), name=f"tools-changed:{key[1]}")
        self._pending[key] = task

    async def _refresh_after_change(self, key: tuple[str, str]) -> None:
        try:
            while True:
                self._again.discard(key)
                await asyncio.sleep(SETTLE_SECONDS)
                try:
                    _, changed = await self.refresh(key[0], key[1], "list_changed")
                    self.log.info("integration.tools_changed", integration_id=key[1], changed=changed)
                except Exception as exc:
                    self.log.warning("integration.refresh_failed", integration_id=key[1], error=self.describe(exc))
                if key not in self._again:
                    return
        finally:
            self._pending.pop(key, None)

    async def refresh_command(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Answer `executor.refresh_tools`: read an integration's tools now, for a human or agent who asked."""
        org_id, integration_id = str(payload["org_id"]), str(payload["integration_id"])
        try:
            tools, changed = await self.refresh(org_id, integration_id, "on_demand")
        except Exception as exc:
            raise UpstreamError(self.describe(exc)) from exc
        if tools is None:
            raise NotFound(f"integration {integration_id!r} is not installed")
        return {"tools": [t.model_dump(mode="json") for t in tools], "changed": changed}

    async def close(self) -> None:
        for task in list(self._pending.values()):
            task.cancel()
        await asyncio.gather(*self._pending.values(), return_exceptions=True)
