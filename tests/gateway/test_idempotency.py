"""`idempotency_key` (MCP) and `Idempotency-Key` (REST): asking again with the same key returns the first call's
outcome and never runs the call again; the same key for a different call is a 409 naming the key."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.support.agentport import (
    Tenant,
    add_custom_upstream,
    audited,
    call,
    decide,
    mcp_client,
    new_tenant,
    set_mode,
)
from tests.support.stack import Stack
from tests.support.upstream import Upstream

INTEGRATION = "idem-up"


@dataclass
class Org:
    stack: Stack
    http: httpx.AsyncClient
    tenant: Tenant
    upstream: Upstream

    async def call(self, tool: str, arguments: dict[str, Any], key: str | None, **params: Any) -> httpx.Response:
        headers = {**self.tenant.agent, **({"Idempotency-Key": key} if key is not None else {})}
        return await self.http.post(
            f"/api/tools/{INTEGRATION}/{tool}/call", json={"arguments": arguments}, headers=headers, params=params
        )


def new_key() -> str:
    return "key-" + secrets.token_hex(8)


@pytest.fixture(scope="module")
async def org(stack: Stack, open_upstream: Upstream) -> AsyncIterator[Org]:
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=60) as http:
        tenant = await new_tenant(stack, http, "idem-" + secrets.token_hex(3))
        await add_custom_upstream(http, tenant, open_upstream.url, INTEGRATION, bearer=False)
        r = await http.post("/api/installed", json={"integration_id": INTEGRATION}, headers=tenant.agent)
        assert r.status_code == 201, r.text
        for tool in ("echo", "slow"):
            await set_mode(http, tenant, INTEGRATION, tool, "allow")
        yield Org(stack, http, tenant, open_upstream)


async def test_the_same_key_returns_the_first_outcome_without_running_again(org: Org) -> None:
    text, key = f"once-{secrets.token_hex(6)}", new_key()
    first = await org.call("echo", {"text": text}, key)
    again = await org.call("echo", {"text": text}, key)
    assert first.status_code == 200 and again.status_code == 200, (first.text, again.text)
    assert first.json()["status"] == again.json()["status"] == "executed", (first.text, again.text)
    assert again.json()["call_id"] == first.json()["call_id"]
    assert again.json()["result"] == first.json()["result"]
    assert org.upstream.count("echo", text=text) == 1


async def test_calls_without_a_key_still_run_each_time(org: Org) -> None:
    text = f"twice-{secrets.token_hex(6)}"
    first = await org.call("echo", {"text": text}, None)
    second = await org.call("echo", {"text": text}, None)
    assert first.json()["call_id"] != second.json()["call_id"]
    assert org.upstream.count("echo", text=text) == 2


async def test_the_same_key_for_other_arguments_is_a_conflict_naming_the_key(org: Org) -> None:
    key = new_key()
    first = await org.call("echo", {"text": f"one-{secrets.token_hex(4)}"}, key)
    assert first.json()["status"] == "executed", first.text
    other = f"two-{secrets.token_hex(4)}"
    clash = await org.call("echo", {"text": other}, key)
    assert clash.status_code == 409, clash.text
    assert clash.json()["error"]["code"] == "conflict"
    assert key in clash.json()["error"]["message"]
    other_tool = await org.call("slow", {"seconds": 0, "tag": "x"}, key)
    assert other_tool.status_code == 409, other_tool.text
    assert org.upstream.count("echo", text=other) == 0


async def test_keys_are_scoped_to_the_org(org: Org, open_upstream: Upstream) -> None:
    other = await new_tenant(org.stack, org.http, "idem-other-" + secrets.token_hex(3))
    await add_custom_upstream(org.http, other, open_upstream.url, INTEGRATION, bearer=False)
    r = await org.http.post("/api/installed", json={"integration_id": INTEGRATION}, headers=other.agent)
    assert r.status_code == 201, r.text
    await set_mode(org.http, other, INTEGRATION, "echo", "allow")
    key, text = new_key(), f"scoped-{secrets.token_hex(6)}"
    mine = await org.call("echo", {"text": text}, key)
    theirs = await org.http.post(
        f"/api/tools/{INTEGRATION}/echo/call",
        json={"arguments": {"text": text + "-b"}},
        headers={**other.agent, "Idempotency-Key": key},
    )
    assert mine.json()["status"] == theirs.json()["status"] == "executed", (mine.text, theirs.text)
    assert mine.json()["call_id"] != theirs.json()["call_id"]
    assert org.upstream.count("echo", text=text + "-b") == 1


async def test_asking_again_while_the_first_still_runs_waits_for_that_call(org: Org) -> None:
    key, tag = new_key(), secrets.token_hex(6)
    first = asyncio.create_task(org.call("slow", {"seconds": 1.5, "tag": tag}, key))
    await asyncio.sleep(0.5)
    again = await org.call("slow", {"seconds": 1.5, "tag": tag}, key)
    first_answer = (await first).json()
    assert again.json()["status"] == first_answer["status"] == "executed", (again.text, first_answer)
    assert again.json()["call_id"] == first_answer["call_id"]
    assert org.upstream.count("slow", tag=tag) == 1


async def test_a_pending_first_call_is_pending_again_with_its_call_id(org: Org) -> None:
    key, tag = new_key(), secrets.token_hex(6)
    first = await org.call("slow", {"seconds": 3, "tag": tag}, key, timeout=0.5)
    again = await org.call("slow", {"seconds": 3, "tag": tag}, key, timeout=0.5)
    assert first.json()["status"] == again.json()["status"] == "pending", (first.text, again.text)
    assert again.json()["call_id"] == first.json()["call_id"]
    done = await org.call("slow", {"seconds": 3, "tag": tag}, key, timeout=10)
    assert done.json()["status"] == "executed", done.text
    assert org.upstream.count("slow", tag=tag) == 1


async def test_a_gated_call_asked_again_is_the_same_approval_request(org: Org) -> None:
    key, name = new_key(), f"repo-{secrets.token_hex(4)}"
    first = await org.call("delete_repo", {"name": name}, key)
    again = await org.call("delete_repo", {"name": name}, key)
    assert first.json()["status"] == "approval_required", first.text
    assert again.json()["status"] == "approval_required", again.text
    assert again.json()["approval_request_id"] == first.json()["approval_request_id"]
    assert again.json()["call_id"] == first.json()["call_id"]
    assert again.json()["approval_url"] == first.json()["approval_url"]
    pending = await org.http.get("/api/tool-approvals/requests", params={"status": "pending"}, headers=org.tenant.human)
    assert sum(1 for item in pending.json() if item["arguments"] == {"name": name}) == 1


async def test_a_gated_call_asked_again_after_approval_answers_its_one_execution(org: Org) -> None:
    key, name = new_key(), f"repo-{secrets.token_hex(4)}"
    held = (await org.call("delete_repo", {"name": name}, key)).json()
    assert held["status"] == "approval_required", held
    r = await decide(org.http, org.tenant, held["approval_request_id"], "approve-once")
    assert r.status_code == 200, r.text
    again = await org.call("delete_repo", {"name": name}, key)
    assert again.json()["status"] == "executed", again.text
    assert again.json()["call_id"] == held["call_id"] and again.json()["replayed"] is True
    once_more = await org.call("delete_repo", {"name": name}, key)
    assert once_more.json()["result"] == again.json()["result"]
    assert org.upstream.count("delete_repo", name=name) == 1


async def test_mcp_call_tool_takes_an_idempotency_key(org: Org) -> None:
    key, text = new_key(), f"mcp-once-{secrets.token_hex(6)}"
    args = {"integration_id": INTEGRATION, "tool_name": "echo", "arguments": {"text": text}, "idempotency_key": key}
    async with mcp_client(org.stack.base_url, org.tenant.agent) as client:
        first = await call(client, "call_tool", **args)
        again = await call(client, "call_tool", **args)
        clash = await call(client, "call_tool", **{**args, "arguments": {"text": text + "-other"}})
    assert first["status"] == again["status"] == "executed", (first, again)
    assert again["call_id"] == first["call_id"]
    assert org.upstream.count("echo", text=text) == 1
    assert clash["status"] == "error" and clash["error"]["code"] == "conflict", clash
    assert key in clash["message"]


async def test_the_key_is_shown_in_the_audit_log(org: Org) -> None:
    key = new_key()
    done = await org.call("echo", {"text": f"audited-{secrets.token_hex(4)}"}, key)
    story = await audited(org.http, org.tenant, done.json()["call_id"])
    requested = next(e for e in story["events"] if e["type"] == "call.requested")
    assert requested["entry"]["spec"]["idempotency_key"] == key, requested


@pytest.mark.parametrize("bad", ["", "k" * 201])
async def test_a_key_must_be_1_to_200_characters(org: Org, bad: str) -> None:
    r = await org.call("echo", {"text": "x"}, bad)
    assert r.status_code == 400, r.text
    assert "Idempotency-Key" in r.json()["error"]["message"]
