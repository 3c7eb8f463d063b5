"""Acting as users of AgentPort in tests: bootstrap through the CLI, agents through the MCP client."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import mcp.client.session as mcp_session
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from tests.support.stack import Stack


@dataclass
class Tenant:
    """An org with one human (owner) and one agent API key."""

    org: str
    email: str
    password: str
    api_key: str
    human_token: str

    @property
    def agent(self) -> dict[str, str]:
        return {"X-API-Key": self.api_key}

    @property
    def human(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.human_token}"}


def run_cli(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agentport", *args],
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def new_tenant(stack: Stack, http: httpx.AsyncClient, org: str | None = None) -> Tenant:
    """Bootstrap an org the scriptable way: `agentport admin create-user` and `create-api-key`."""
    org = org or "org-" + secrets.token_hex(4)
    email = f"owner-{secrets.token_hex(4)}@{org}.example"
    password = "pw-" + secrets.token_hex(8)
    created = await asyncio.to_thread(
        run_cli, stack, "admin", "create-user", "--email", email, "--password", password, "--org", org
    )
    assert created.returncode == 0, created.stderr
    keyed = await asyncio.to_thread(run_cli, stack, "admin", "create-api-key", "--email", email, "--name", "agent")
    assert keyed.returncode == 0, keyed.stderr
    api_key = keyed.stdout.strip().splitlines()[-1]
    assert api_key.startswith("ap_")
    token = await login(http, email, password)
    return Tenant(org=org, email=email, password=password, api_key=api_key, human_token=token)


async def login(http: httpx.AsyncClient, email: str, password: str) -> str:
    r = await http.post("/api/auth/token", data={"username": email, "password": password})
    assert r.status_code == 200, r.text
    return str(r.json()["access_token"])


@contextlib.asynccontextmanager
async def mcp_client(
    base_url: str, headers: dict[str, str], version: str | None = None, **kwargs: Any
) -> AsyncIterator[Client]:
    """The official MCP client, speaking `version` (a handshake version, or the modern one)."""
    http = create_mcp_http_client(headers=headers)
    mode = "auto"
    patch = contextlib.nullcontext()
    if version is not None and version.startswith("2026"):
        mode = version
    elif version is not None:
        mode = "legacy"
        patch = _offer_version(version)
    with patch:
        async with (
            http,
            Client(streamable_http_client(f"{base_url}/mcp", http_client=http), mode=mode, **kwargs) as client,
        ):
            yield client


@contextlib.contextmanager
def _offer_version(version: str) -> Any:
    """Make the SDK client offer an older handshake version (it always offers its newest)."""
    original = mcp_session.LATEST_HANDSHAKE_VERSION
    mcp_session.LATEST_HANDSHAKE_VERSION = version  # type: ignore[misc]
    try:
        yield
    finally:
        mcp_session.LATEST_HANDSHAKE_VERSION = original  # type: ignore[misc]


async def call(client: Client, tool: str, **arguments: Any) -> dict[str, Any]:
    """Call a meta-tool and return its structured result."""
    result = await client.call_tool(f"agentport__{tool}", arguments)
    assert result.structured_content is not None, result
    data: dict[str, Any] = result.structured_content
    return data


class OpenWait:
    """An `agentport__await_approval` in flight, with the keep-alive progress ticks the gateway has sent for it.

    A tick is sent only while the gateway holds the wait, registered for the request's events: seeing one is
    seeing the wait open there."""

    def __init__(self, client: Client, request_id: str) -> None:
        self.ticks: list[float] = []
        self._ticked = asyncio.Event()
        self.task = asyncio.create_task(self._run(client, request_id))
        self.task.add_done_callback(lambda _: self._ticked.set())

    async def _progress(self, progress: float, total: float | None, message: str | None) -> None:
        self.ticks.append(progress)
        self._ticked.set()

    async def _run(self, client: Client, request_id: str) -> dict[str, Any]:
        result = await client.call_tool(
            "agentport__await_approval", {"request_id": request_id}, progress_callback=self._progress
        )
        assert result.structured_content is not None, result
        return dict(result.structured_content)

    async def ticked(self, count: int = 1, timeout: float = 20.0) -> None:
        """Until the gateway has sent `count` keep-alive ticks for this wait; fails if the wait ends first."""
        async with asyncio.timeout(timeout):
            while len(self.ticks) < count:
                if self.task.done():
                    raise AssertionError(f"the wait ended after {len(self.ticks)} ticks: {self.task.result()}")
                self._ticked.clear()
                await self._ticked.wait()

    async def outcome(self, timeout: float = 30.0) -> dict[str, Any]:
        return await asyncio.wait_for(self.task, timeout)


async def add_custom_upstream(
    http: httpx.AsyncClient, tenant: Tenant, url: str, integration_id: str, *, bearer: bool
) -> dict[str, Any]:
    body = {
        "id": integration_id,
        "name": f"Upstream {integration_id}",
        "url": url,
        "auth": {"type": "bearer" if bearer else "none"},
    }
    r = await http.post("/api/integrations/custom-mcp", json=body, headers=tenant.agent)
    assert r.status_code == 201, r.text
    return dict(r.json())


async def set_mode(http: httpx.AsyncClient, tenant: Tenant, integration: str, tool: str, mode: str) -> None:
    r = await http.put(f"/api/tool-settings/{integration}/{tool}", json={"mode": mode}, headers=tenant.human)
    assert r.status_code == 200, r.text


async def decide(
    http: httpx.AsyncClient, tenant: Tenant, request_id: str, decision: str, **body: Any
) -> httpx.Response:
    return await http.post(f"/api/tool-approvals/requests/{request_id}/{decision}", json=body, headers=tenant.human)


async def audited(
    http: httpx.AsyncClient, tenant: Tenant, call_id: str, *, finished: bool = False, timeout: float = 20.0
) -> dict[str, Any]:
    """The call's audit story once the audit service has appended it (and, with `finished`, its ending)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        r = await http.get(f"/api/logs/{call_id}", headers=tenant.human)
        if r.status_code == 200 and (not finished or r.json()["summary"].get("finished_at")):
            story: dict[str, Any] = r.json()
            return story
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"call {call_id} not in the audit log after {timeout:g}s: {r.status_code} {r.text}")
        await asyncio.sleep(0.1)


def dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True)
