"""A human's decision that approvals records after the gateway stopped waiting is not hidden behind a bare
"did not answer": the gateway reads the request back and shows the decision, or says it may have been recorded.

approvals is slowed for real: the test holds a lock on the request's row in approvals' own table, so the
service takes the command but cannot record it until the test lets go."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import nats
import pytest

from services.gateway.humans.decisions import DECIDE_TIMEOUT_SECONDS
from tests.support.agentport import Tenant, add_custom_upstream, decide, new_tenant
from tests.support.stack import Stack
from tests.support.upstream import Upstream

INTEGRATION = "slow-decide"


@dataclass
class Org:
    tenant: Tenant
    http: httpx.AsyncClient
    user_id: str

    async def held(self) -> str:
        """A new approval request's id."""
        r = await self.http.post(
            f"/api/tools/{INTEGRATION}/delete_repo/call",
            json={"arguments": {"name": f"r-{secrets.token_hex(4)}"}},
            headers=self.tenant.agent,
        )
        assert r.status_code == 200 and r.json()["status"] == "approval_required", r.text
        return str(r.json()["approval_request_id"])


@pytest.fixture(scope="module")
async def org(stack: Stack, open_upstream: Upstream) -> AsyncIterator[Org]:
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=90) as http:
        tenant = await new_tenant(stack, http, "slow-" + secrets.token_hex(3))
        await add_custom_upstream(http, tenant, open_upstream.url, INTEGRATION, bearer=False)
        r = await http.post("/api/installed", json={"integration_id": INTEGRATION}, headers=tenant.agent)
        assert r.status_code == 201, r.text
        me = await http.get("/api/users/me", headers=tenant.human)
        yield Org(tenant, http, me.json()["actor"]["id"])


class SlowApprovals:
    """Holds the row lock approvals needs to record a decision, and watches the gateway read the request back."""

    def __init__(self, stack: Stack, request_id: str) -> None:
        self.stack = stack
        self.request_id = request_id
        self.read_back = asyncio.Event()
        self.conn: asyncpg.Connection | None = None
        self.tx: Any = None
        self.nc: Any = None

    async def __aenter__(self) -> SlowApprovals:
        ns = self.stack.env["AGENTPORT_NAMESPACE"]
        self.conn = await asyncpg.connect(self.stack.env["DATABASE_URL"])
        self.tx = self.conn.transaction()
        await self.tx.start()
        locked = await self.conn.fetchval(
            f'SELECT request_id FROM "{ns}_approvals".requests WHERE request_id=$1 FOR UPDATE', self.request_id
        )
        assert locked == self.request_id

        async def on_get(msg: Any) -> None:
            if json.loads(msg.data).get("request_id") == self.request_id:
                self.read_back.set()

        self.nc = await nats.connect(self.stack.env["NATS_URL"])
        await self.nc.subscribe(f"_{ns}_cmd.approvals.get", cb=on_get)  # a listener; approvals still answers
        return self

    async def approvals_is_waiting(self) -> None:
        """Until approvals' UPDATE of the request waits on our lock: it took the command."""
        assert self.conn is not None
        holder = self.conn.get_server_pid()
        watcher = await asyncpg.connect(self.stack.env["DATABASE_URL"])  # its own snapshot of pg_stat_activity
        try:
            blocked = "SELECT count(*) FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))"
            while not await watcher.fetchval(blocked, holder):
                await asyncio.sleep(0.05)
        finally:
            await watcher.close()

    async def gateway_reads_back(self, deciding: asyncio.Task[httpx.Response]) -> None:
        """Until the gateway, done waiting for approvals' answer, reads the request back (and has not answered)."""
        looking = asyncio.ensure_future(self.read_back.wait())
        await asyncio.wait({looking, deciding}, timeout=DECIDE_TIMEOUT_SECONDS + 30, return_when="FIRST_COMPLETED")
        looking.cancel()
        if deciding.done():
            raise AssertionError(f"answered without reading the request back: {deciding.result().text}")
        assert self.read_back.is_set(), "the gateway neither answered nor read the request back"

    async def release(self, *, commit: bool = False) -> None:
        if self.tx is not None:
            await (self.tx.commit() if commit else self.tx.rollback())
            self.tx = None

    async def __aexit__(self, *_: object) -> None:
        await self.release()
        if self.conn is not None:
            await self.conn.close()
        if self.nc is not None:
            await self.nc.close()


async def test_a_decision_recorded_after_the_gateway_stopped_waiting_is_shown_as_made(stack: Stack, org: Org) -> None:
    request_id = await org.held()
    async with SlowApprovals(stack, request_id) as slow:
        deciding = asyncio.create_task(decide(org.http, org.tenant, request_id, "approve-once"))
        await asyncio.wait_for(slow.approvals_is_waiting(), 30)
        await slow.gateway_reads_back(deciding)
        await slow.release()  # approvals now records the decision, answering a gateway no longer listening
        r = await asyncio.wait_for(deciding, 60)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["id"], body["decision"], body["decided_by"]["id"]) == (request_id, "approve_once", org.user_id)


async def test_a_decision_still_unconfirmed_says_it_may_have_been_recorded(stack: Stack, org: Org) -> None:
    request_id = await org.held()
    async with SlowApprovals(stack, request_id) as slow:
        r = await decide(org.http, org.tenant, request_id, "deny", reason="too slow")
        assert r.status_code == 503, r.text
        error = r.json()["error"]
        assert error["code"] == "unavailable"
        assert "may still have been recorded" in error["message"] and "Reload" in error["message"], error
        assert "did not answer" not in error["message"]
        assert slow.read_back.is_set(), "the gateway looked before answering"
    # As the message says: approvals did record it once it could.
    deadline = asyncio.get_running_loop().time() + 20
    while (item := (await org.http.get(f"/api/tool-approvals/requests/{request_id}", headers=org.tenant.human)).json())[
        "status"
    ] == "pending":
        assert asyncio.get_running_loop().time() < deadline, item
        await asyncio.sleep(0.1)
    assert (item["decision"], item["decided_by"]["id"]) == ("deny", org.user_id)


async def test_a_request_that_expired_meanwhile_is_a_409(stack: Stack, org: Org) -> None:
    request_id = await org.held()
    async with SlowApprovals(stack, request_id) as slow:
        deciding = asyncio.create_task(decide(org.http, org.tenant, request_id, "approve-once"))
        await asyncio.wait_for(slow.approvals_is_waiting(), 30)
        await slow.gateway_reads_back(deciding)
        # The request's time runs out before approvals can record the decision: the expiry sweep ends it instead.
        assert slow.conn is not None
        await slow.conn.execute(
            f'UPDATE "{stack.env["AGENTPORT_NAMESPACE"]}_approvals".requests'
            " SET expires_at = now() - interval '1 second' WHERE request_id=$1",
            request_id,
        )
        await slow.release(commit=True)
        r = await asyncio.wait_for(deciding, 60)
    assert r.status_code == 409, r.text
    error = r.json()["error"]
    assert error["code"] == "conflict" and "expired" in error["message"], error
