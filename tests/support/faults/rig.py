"""The stack under test and the faults inflicted on it: a nats-server and a PostgreSQL of its own to stop and
start again at the same address, and services to kill -9."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import httpx

from shared.embedded import EmbeddedInfra, start_embedded
from tests.support.agentport import Tenant, add_custom_upstream, new_tenant, set_mode
from tests.support.faults.agents import INTEGRATION, TOOL
from tests.support.stack import Stack, isolated_stack
from tests.support.upstream import Upstream, free_port, running_upstream

# Short waits, so calls caught by a fault come back `pending` and are awaited by call id.
STACK_ENV = {
    "AGENTPORT_LOG_LEVEL": "info",
    "AGENTPORT_CALL_WAIT_SECONDS": "10",
    "AGENTPORT_AWAIT_BUDGET_SECONDS": "10",
}

Fault = Callable[[], Awaitable[float]]
"""Inflicts a fault and returns the monotonic time at which it ended."""


@dataclass
class OwnServer:
    """An embedded nats-server or PostgreSQL in a data directory of its own, stopped and started at will at the
    same address (nats-server on a fixed loopback port, PostgreSQL on its socket directory)."""

    kind: Literal["nats", "postgres"]
    data_dir: Path
    port: int | None = None
    url: str = ""
    _infra: EmbeddedInfra | None = None

    async def start(self) -> None:
        nats = self.kind == "nats"
        self._infra = await asyncio.to_thread(
            start_embedded, self.data_dir, nats=nats, postgres=not nats, nats_port=self.port
        )
        url = self._infra.nats_url if nats else self._infra.database_url
        assert url and (not self.url or url == self.url), f"{self.kind} came back at {url}, not {self.url}"
        self.url = url

    async def stop(self) -> None:
        if self._infra is not None:
            await asyncio.to_thread(self._infra.stop)
            self._infra = None

    def lose_store(self) -> None:
        """Delete everything the server keeps (only while it is stopped)."""
        assert self._infra is None
        shutil.rmtree(self.data_dir / self.kind, ignore_errors=True)


async def outage(server: OwnServer, seconds: float, *, lose_store: bool = False) -> float:
    """Stop the server for `seconds` (then delete its store, if asked) and start it again."""
    await server.stop()
    try:
        await asyncio.sleep(seconds)
        if lose_store:
            server.lose_store()
    finally:
        await server.start()
    return time.monotonic()


async def kill_and_restart(stack: Stack, name: str, down_seconds: float = 2.0) -> float:
    """kill -9 one service, leave it dead for a moment, start it again."""
    await asyncio.to_thread(stack.stop, name, signal.SIGKILL)
    await asyncio.sleep(down_seconds)
    stack.start(name)
    return time.monotonic()


@dataclass
class Rig:
    """Every service as its own process on servers of its own, an org whose agent may call echo, the upstream."""

    stack: Stack
    nats: OwnServer
    postgres: OwnServer | None
    upstream: Upstream
    tenant: Tenant
    http: httpx.AsyncClient

    def revive(self) -> list[str]:
        """Start again, as a supervisor would, every service that exited by itself; says which and how."""
        exited = [(name, proc.returncode) for name, proc in self.stack.procs.items() if proc.poll() is not None]
        for name, _ in exited:
            self.stack.start(name)
        return [f"{name} (exit code {code})" for name, code in exited]

    async def healthy(self) -> None:
        """Until every service answers /ready (after a restart, say)."""
        await asyncio.gather(*(self.stack.wait_ready(url) for url in self.stack.urls.values()))


@contextlib.asynccontextmanager
async def fault_rig(
    workdir: Path, database_url: str | None = None, *, artifacts: Path | None = None
) -> AsyncIterator[Rig]:
    """Own nats-server (JetStream, store on disk) and, without `database_url`, own PostgreSQL; every service as
    its own process on them; a counting upstream on loopback installed with echo set to `allow`."""
    nats = OwnServer("nats", workdir / "nats-server", port=free_port())
    postgres = None if database_url else OwnServer("postgres", workdir / "postgres-server")
    (workdir / "stack").mkdir(parents=True, exist_ok=True)
    try:
        await nats.start()
        if postgres is not None:
            await postgres.start()
            database_url = postgres.url
        assert database_url
        async with (
            running_upstream(None) as upstream,
            isolated_stack(
                nats.url, database_url, workdir / "stack", prefix="f", extra_env=STACK_ENV, artifacts=artifacts
            ) as stack,
            httpx.AsyncClient(base_url=stack.base_url, timeout=60) as http,
        ):
            tenant = await new_tenant(stack, http, "chaos")
            await add_custom_upstream(http, tenant, upstream.url, INTEGRATION, bearer=False)
            r = await http.post(
                "/api/installed", json={"integration_id": INTEGRATION, "auth_method": "none"}, headers=tenant.agent
            )
            assert r.status_code == 201, r.text
            await set_mode(http, tenant, INTEGRATION, TOOL, "allow")
            yield Rig(stack, nats, postgres, upstream, tenant, http)
    finally:
        if postgres is not None:
            await postgres.stop()
        await nats.stop()
