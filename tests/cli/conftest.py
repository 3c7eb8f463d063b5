"""Running the `agentport` CLI as a subprocess, with its own home directory, against the running stack."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from tests.support.agentport import Tenant, new_tenant
from tests.support.stack import Stack
from tests.support.upstream import Upstream, free_port

T = TypeVar("T")


@dataclass
class Ran:
    """One finished CLI run."""

    args: tuple[str, ...]
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)

    def __str__(self) -> str:
        return f"agentport {' '.join(self.args)} -> {self.code}\nstdout: {self.stdout}\nstderr: {self.stderr}"


@dataclass
class Shell:
    """A user's shell: a home directory of its own, AGENTPORT_URL set, and whatever else the test adds."""

    home: Path
    env: dict[str, str]

    @property
    def config_path(self) -> Path:
        return self.home / ".config" / "agentport" / "config.json"

    async def start(self, *args: str, env: dict[str, str] | None = None) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "agentport",
            *args,
            env={**self.env, **(env or {})},
            cwd=self.home,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )

    async def run(self, *args: str, stdin: str = "", env: dict[str, str] | None = None, timeout: float = 60) -> Ran:
        proc = await self.start(*args, env=env)
        out, err = await asyncio.wait_for(proc.communicate(stdin.encode()), timeout)
        assert proc.returncode is not None
        return Ran(args, proc.returncode, out.decode(), err.decode())


def make_shell(home: Path, url: str, **extra: str) -> Shell:
    home.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AGENTPORT_", "XDG_"))}
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"), AGENTPORT_URL=url, **extra)
    return Shell(home=home, env=env)


@pytest.fixture
def offline(tmp_path: Path) -> Shell:
    """A shell whose gateway URL points at a port where nothing listens."""
    return make_shell(tmp_path / "home", f"http://127.0.0.1:{free_port()}")


@pytest.fixture
def shell(tmp_path: Path, stack: Stack) -> Shell:
    """A shell pointed at the running gateway, not logged in."""
    return make_shell(tmp_path / "home", stack.base_url)


@dataclass
class World:
    """An org whose agent installed the counting upstream through the CLI; `agent` is logged in with its key."""

    stack: Stack
    tenant: Tenant
    upstream: Upstream
    integration: str
    agent: Shell
    http: httpx.AsyncClient

    async def human(self, home: Path) -> Shell:
        """A shell where the org's owner logged in with email and password."""
        shell = make_shell(home, self.stack.base_url)
        ran = await shell.run("login", "--email", self.tenant.email, "--password-stdin", stdin=self.tenant.password)
        assert ran.code == 0, ran
        return shell

    def nonce(self) -> str:
        return secrets.token_hex(6)


async def eventually(probe: Callable[[], Awaitable[T]], ok: Callable[[T], bool], timeout: float = 20.0) -> T:
    """Probe until `ok` holds; fail with the last value after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if ok(value):
            return value
        assert time.monotonic() < deadline, f"condition not met in {timeout}s; last value: {value!r}"
        await asyncio.sleep(0.1)


@pytest.fixture(scope="session")
async def cli_http(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=60) as client:
        yield client


@pytest.fixture(scope="session")
async def world(
    stack: Stack, open_upstream: Upstream, cli_http: httpx.AsyncClient, tmp_path_factory: pytest.TempPathFactory
) -> World:
    """The agent logs in with its key, defines the upstream as a custom MCP server and installs it."""
    tenant = await new_tenant(stack, cli_http, "cli-" + secrets.token_hex(3))
    agent = make_shell(tmp_path_factory.mktemp("agent"), stack.base_url)
    steps = [
        ("login", "--api-key-stdin"),
        ("integrations", "add-mcp", "up", open_upstream.url, "--name", "Counting upstream"),
        ("integrations", "install", "up"),
    ]
    for step in steps:
        ran = await agent.run(*step, stdin=tenant.api_key + "\n")
        assert ran.code == 0, ran
    return World(stack, tenant, open_upstream, "up", agent, cli_http)
