"""The running AgentPort services for a test session: real processes on real NATS and PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import nats

from tests.integrations.stdio_config import stdio_servers_env
from tests.support.upstream import free_port

SERVICES = ("gateway", "policy", "approvals", "executor", "audit")


@dataclass
class Stack:
    env: dict[str, str]
    workdir: Path
    gateway_port: int
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    urls: dict[str, str] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    def log_path(self, name: str) -> Path:
        return self.workdir / f"{name}.log"

    def start(
        self, name: str, *, port: int | None = None, extra_env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        env = {**self.env, **(extra_env or {})}
        if name.startswith("gateway"):
            port = port or self.gateway_port
            env["AGENTPORT_PORT"] = str(port)
            # Replicas share one public URL, as behind a load balancer: OAuth issuer and links use it.
            env.setdefault("AGENTPORT_BASE_URL", self.base_url)
        else:
            port = self._unused_port()
            env["AGENTPORT_HEALTH_PORT"] = str(port)
        self.urls[name] = f"http://127.0.0.1:{port}"
        log = open(self.log_path(name), "ab")  # noqa: SIM115
        proc = subprocess.Popen(
            [sys.executable, "-m", "agentport", "serve", name.split("#")[0]],
            env=env,
            stdout=log,
            stderr=log,
            cwd=self.workdir,
        )
        self.procs[name] = proc
        return proc

    def _unused_port(self) -> int:
        """A free port none of this stack's services was given (two picks in a row can return the same one)."""
        taken = {self.gateway_port, *(int(url.rsplit(":", 1)[1]) for url in self.urls.values())}
        while (port := free_port()) in taken:
            pass
        return port

    def stop(self, name: str, sig: int = signal.SIGTERM) -> None:
        proc = self.procs.pop(name)
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)

    def stop_all(self) -> None:
        for name in list(self.procs):
            self.stop(name)

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in self.workdir.glob("*.log"))

    async def wait_ready(self, url: str, timeout: float = 60.0) -> None:
        """Until the service behind `url` is ready; it must be the one this stack started there, not another
        process that took the port."""
        name = next((n for n, u in self.urls.items() if u == url), None)
        service = name.split("#")[0] if name else None
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient() as client:
            while time.monotonic() < deadline:
                try:
                    r = await client.get(f"{url}/ready")
                    if r.status_code == 200:
                        answered = r.json().get("service")
                        if service is not None and answered != service:
                            raise RuntimeError(f"{url} is answered by the {answered} service, not {service}")
                        return
                except (httpx.HTTPError, ValueError):
                    pass
                for name, proc in self.procs.items():
                    if proc.poll() is not None:
                        raise RuntimeError(f"{name} exited early:\n{self.log_path(name).read_text()[-4000:]}")
                await asyncio.sleep(0.1)
        raise TimeoutError(f"{url} not ready:\n{self.logs()[-4000:]}")

    async def wait_consumers(self, timeout: float = 30.0) -> None:
        """Services are ready once the executor has published its key (its consumers are declared by then)."""
        import nats

        nc = await nats.connect(self.env["NATS_URL"])
        try:
            js = nc.jetstream()
            bucket = f"{self.env['AGENTPORT_NAMESPACE']}_keys"
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                try:
                    kv = await js.key_value(bucket)
                    await kv.get("executor")
                    return
                except Exception:
                    await asyncio.sleep(0.1)
            raise TimeoutError("the executor never published its key")
        finally:
            await nc.close()

    async def settled(self, timeout: float = 30.0) -> None:
        """Until every durable consumer of the event stream has handled, and acknowledged, every event stored.

        Handlers publish what they cause before they acknowledge, so once the stream has stopped growing while
        every consumer is drained, no reaction to anything that happened so far is still to come (an
        unacknowledged message waiting for its redelivery counts as not handled)."""
        stream = f"{self.env['AGENTPORT_NAMESPACE'].upper()}_EVENTS"
        nc = await nats.connect(self.env["NATS_URL"])
        busy: list[str] = []
        try:
            js = nc.jetstream()
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                before = (await js.stream_info(stream)).state.last_seq
                busy = [
                    f"{c.name} (pending {c.num_pending}, unacknowledged {c.num_ack_pending})"
                    for c in await js.consumers_info(stream)
                    if c.num_pending or c.num_ack_pending
                ]
                if not busy and (await js.stream_info(stream)).state.last_seq == before:
                    return
                await asyncio.sleep(0.1)
        finally:
            await nc.close()
        raise TimeoutError(f"the services did not settle within {timeout:g}s: {busy}")


def stack_env(namespace: str, nats_url: str, database_url: str, workdir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTPORT_")}
    env.update(
        NATS_URL=nats_url,
        DATABASE_URL=database_url,
        AGENTPORT_NAMESPACE=namespace,
        AGENTPORT_DATA_DIR=str(workdir / "data"),
        AGENTPORT_UPSTREAM_ALLOW="127.0.0.1,localhost",
        AGENTPORT_LOG_LEVEL="debug",
        AGENTPORT_LOG_FORMAT="json",
        AGENTPORT_KEEPALIVE_SECONDS="1",
        AGENTPORT_EXPIRY_CHECK_SECONDS="0.5",
        AGENTPORT_ACK_WAIT_SECONDS="3",
        AGENTPORT_AWAIT_BUDGET_SECONDS="30",
        AGENTPORT_CALL_WAIT_SECONDS="30",
        AGENTPORT_STDIO_SERVERS=stdio_servers_env(),
    )
    return env


def pick_port() -> int:
    return free_port()


async def start_stack(env: dict[str, str], workdir: Path, attempts: int = 2) -> Stack:
    """Every service as its own process, returned once all are ready and the executor has its key.

    A port picked free can be taken by another process before a service binds it; such a start is retried
    once on new ports rather than failing every test of the session.
    """
    for attempt in range(1, attempts + 1):
        stack = Stack(env=env, workdir=workdir, gateway_port=pick_port())
        for name in SERVICES:
            stack.start(name)
        try:
            await asyncio.gather(*(stack.wait_ready(url) for url in stack.urls.values()))
            await stack.wait_consumers()
        except Exception as exc:
            stack.stop_all()
            if attempt == attempts:
                raise
            print(f"stack start failed (attempt {attempt}), retrying on new ports: {exc}", file=sys.stderr)
        except BaseException:
            stack.stop_all()
            raise
        else:
            return stack
    raise AssertionError("unreachable")


@contextlib.asynccontextmanager
async def fresh_namespace(nats_url: str, database_url: str, prefix: str = "t") -> AsyncIterator[tuple[str, str]]:
    """A new namespace with a database of its own, as (namespace, database URL); both are removed afterwards."""
    ns = prefix + secrets.token_hex(5)
    admin = await asyncpg.connect(database_url)
    await admin.execute(f'CREATE DATABASE "{ns}"')
    await admin.close()
    parts = urlsplit(database_url)
    own_db = urlunsplit((parts.scheme, parts.netloc, f"/{ns}", parts.query, parts.fragment))
    try:
        yield ns, own_db
    finally:
        await _remove_namespace(nats_url, database_url, ns)


@contextlib.asynccontextmanager
async def isolated_stack(
    nats_url: str,
    database_url: str,
    workdir: Path,
    *,
    prefix: str = "t",
    extra_env: dict[str, str] | None = None,
    artifacts: Path | None = None,
) -> AsyncIterator[Stack]:
    """Every service on a namespace and database of its own; its streams and database are removed afterwards.

    Service logs are copied to `artifacts/<namespace>/` when given.
    """
    async with fresh_namespace(nats_url, database_url, prefix) as (ns, own_db):
        stack: Stack | None = None
        try:
            stack = await start_stack({**stack_env(ns, nats_url, own_db, workdir), **(extra_env or {})}, workdir)
            yield stack
        finally:
            if stack is not None:
                stack.stop_all()
            if artifacts is not None:
                target = artifacts / ns
                target.mkdir(parents=True, exist_ok=True)
                for log in workdir.glob("*.log"):
                    shutil.copy(log, target / log.name)


async def _remove_namespace(nats_url: str, database_url: str, ns: str) -> None:
    """Delete every stream of the namespace (events and key-value buckets) and drop its database."""
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        for info in await js.streams_info():
            name = info.config.name or ""
            if ns in name or ns.upper() in name:
                with contextlib.suppress(Exception):
                    await js.delete_stream(name)
    finally:
        await nc.close()
    admin = await asyncpg.connect(database_url)
    await admin.execute(f'DROP DATABASE IF EXISTS "{ns}" WITH (FORCE)')
    await admin.close()
