"""A call too large to travel on the bus is refused with 413 `payload_too_large`, and nothing of it is recorded:
its idempotency key stays free for a call that fits."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

from tests.support.agentport import Tenant, add_custom_upstream, call, mcp_client, new_tenant, set_mode
from tests.support.stack import Stack
from tests.support.upstream import Upstream

INTEGRATION = "size-up"
TOO_LARGE = "x" * 1_100_000


@dataclass
class Org:
    stack: Stack
    http: httpx.AsyncClient
    tenant: Tenant


@pytest.fixture(scope="module")
async def org(stack: Stack, open_upstream: Upstream) -> AsyncIterator[Org]:
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=60) as http:
        tenant = await new_tenant(stack, http, "size-" + secrets.token_hex(3))
        await add_custom_upstream(http, tenant, open_upstream.url, INTEGRATION, bearer=False)
        r = await http.post("/api/installed", json={"integration_id": INTEGRATION}, headers=tenant.agent)
        assert r.status_code == 201, r.text
        await set_mode(http, tenant, INTEGRATION, "echo", "allow")
        yield Org(stack, http, tenant)


async def test_rest_refuses_a_call_too_large_for_the_bus_with_413(org: Org, open_upstream: Upstream) -> None:
    key = secrets.token_hex(8)
    headers = {**org.tenant.agent, "Idempotency-Key": key}
    r = await org.http.post(
        f"/api/tools/{INTEGRATION}/echo/call", json={"arguments": {"text": TOO_LARGE}}, headers=headers
    )
    assert r.status_code == 413, r.text[:500]
    assert r.json()["error"]["code"] == "payload_too_large"
    assert "try again" not in r.json()["error"]["message"].lower()
    assert open_upstream.count("echo", text=TOO_LARGE) == 0
    small = await org.http.post(
        f"/api/tools/{INTEGRATION}/echo/call", json={"arguments": {"text": "s"}}, headers=headers
    )
    assert small.status_code == 200 and small.json()["status"] == "executed", small.text


async def test_mcp_refuses_a_call_too_large_for_the_bus(org: Org) -> None:
    async with mcp_client(org.stack.base_url, org.tenant.agent) as client:
        refused = await call(
            client, "call_tool", integration_id=INTEGRATION, tool_name="echo", arguments={"text": TOO_LARGE}
        )
    assert refused["status"] == "error" and refused["error"]["code"] == "payload_too_large", str(refused)[:500]
    assert "try again" not in refused["message"].lower()
