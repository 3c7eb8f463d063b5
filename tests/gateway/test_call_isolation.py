"""A call belongs to its org: another org's keys and humans cannot await it or read its outcome, and an id the
gateway never accepted is a 404 at once, not a wait."""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.support.agentport import Tenant, add_custom_upstream, call, mcp_client, new_tenant, set_mode
from tests.support.stack import Stack
from tests.support.upstream import Upstream

INTEGRATION = "iso-up"


@dataclass
class Orgs:
    stack: Stack
    http: httpx.AsyncClient
    a: Tenant
    b: Tenant

    async def executed_call_of_a(self) -> dict[str, Any]:
        text = f"a-private-{secrets.token_hex(6)}"
        r = await self.http.post(
            f"/api/tools/{INTEGRATION}/echo/call", json={"arguments": {"text": text}}, headers=self.a.agent
        )
        assert r.status_code == 200 and r.json()["status"] == "executed", r.text
        return dict(r.json())


@pytest.fixture(scope="module")
async def orgs(stack: Stack, open_upstream: Upstream) -> AsyncIterator[Orgs]:
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=60) as http:
        a = await new_tenant(stack, http, "iso-a-" + secrets.token_hex(3))
        b = await new_tenant(stack, http, "iso-b-" + secrets.token_hex(3))
        for tenant in (a, b):
            await add_custom_upstream(http, tenant, open_upstream.url, INTEGRATION, bearer=False)
            r = await http.post("/api/installed", json={"integration_id": INTEGRATION}, headers=tenant.agent)
            assert r.status_code == 201, r.text
            await set_mode(http, tenant, INTEGRATION, "echo", "allow")
        yield Orgs(stack, http, a, b)


async def test_another_orgs_key_cannot_await_a_finished_call(orgs: Orgs) -> None:
    done = await orgs.executed_call_of_a()
    r = await orgs.http.post(f"/api/calls/{done['call_id']}/await?timeout=1", headers=orgs.b.agent)
    assert r.status_code == 404, r.text
    assert r.json()["error"]["code"] == "not_found"
    assert "a-private" not in r.text


async def test_another_orgs_human_cannot_await_a_finished_call(orgs: Orgs) -> None:
    done = await orgs.executed_call_of_a()
    r = await orgs.http.post(f"/api/calls/{done['call_id']}/await?timeout=1", headers=orgs.b.human)
    assert r.status_code == 404, r.text
    assert "a-private" not in r.text


async def test_another_orgs_agent_cannot_await_a_call_over_mcp(orgs: Orgs) -> None:
    done = await orgs.executed_call_of_a()
    async with mcp_client(orgs.stack.base_url, orgs.b.agent) as client:
        foreign = await call(client, "await_approval", request_id=done["call_id"])
    assert foreign["status"] == "error" and foreign["error"]["code"] == "not_found", foreign
    assert "a-private" not in str(foreign)


async def test_the_owning_org_still_awaits_its_finished_call(orgs: Orgs) -> None:
    done = await orgs.executed_call_of_a()
    r = await orgs.http.post(f"/api/calls/{done['call_id']}/await?timeout=1", headers=orgs.a.agent)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "executed"
    assert r.json()["result"] == done["result"]


async def test_awaiting_an_unknown_call_is_a_404_at_once(orgs: Orgs) -> None:
    started = time.monotonic()
    r = await orgs.http.post(f"/api/calls/{secrets.token_hex(16)}/await?timeout=5", headers=orgs.a.agent)
    assert r.status_code == 404, r.text
    assert r.json()["error"]["code"] == "not_found"
    assert time.monotonic() - started < 3


async def test_awaiting_an_unknown_id_over_mcp_is_not_found_at_once(orgs: Orgs) -> None:
    started = time.monotonic()
    async with mcp_client(orgs.stack.base_url, orgs.a.agent) as client:
        unknown = await call(client, "await_approval", request_id=secrets.token_hex(16))
    assert unknown["status"] == "error" and unknown["error"]["code"] == "not_found", unknown
    assert time.monotonic() - started < 5
