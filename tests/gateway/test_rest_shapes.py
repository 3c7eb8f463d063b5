"""The REST API answers in AgentPort's public shapes: lists are bare JSON arrays (paging in headers), keys carry
`plain_key`/`key_prefix`, tool settings are `{integration_id, tool_name, mode}` items, tools carry
`execution_mode`, calls take `args`, and awaits take `{"timeout_seconds": N}`."""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.support.agentport import Tenant, add_custom_upstream, audited, new_tenant, set_mode
from tests.support.stack import Stack
from tests.support.upstream import Upstream

INTEGRATION = "shapes-up"


@dataclass
class Org:
    tenant: Tenant
    http: httpx.AsyncClient

    async def call(self, tool: str, body: dict[str, Any]) -> httpx.Response:
        return await self.http.post(f"/api/tools/{INTEGRATION}/{tool}/call", json=body, headers=self.tenant.agent)

    async def held(self) -> dict[str, Any]:
        """A new approval request, from a call the tool's default mode holds."""
        r = await self.call("delete_repo", {"arguments": {"name": f"r-{secrets.token_hex(4)}"}})
        assert r.status_code == 200 and r.json()["status"] == "approval_required", r.text
        return dict(r.json())


@pytest.fixture(scope="module")
async def org(stack: Stack, open_upstream: Upstream) -> AsyncIterator[Org]:
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=60) as http:
        tenant = await new_tenant(stack, http, "shapes-" + secrets.token_hex(3))
        await add_custom_upstream(http, tenant, open_upstream.url, INTEGRATION, bearer=False)
        r = await http.post("/api/installed", json={"integration_id": INTEGRATION}, headers=tenant.agent)
        assert r.status_code == 201, r.text
        await set_mode(http, tenant, INTEGRATION, "echo", "allow")
        org = Org(tenant, http)
        await audited(http, tenant, (await org.held())["call_id"])  # so every list has something in it
        yield org


# --- lists ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    ["/api/api-keys", "/api/integrations", "/api/installed", "/api/tools", "/api/tool-approvals/requests", "/api/logs"],
)
async def test_every_list_endpoint_answers_a_bare_array(org: Org, path: str) -> None:
    r = await org.http.get(path, headers=org.tenant.human)
    assert r.status_code == 200, r.text
    assert isinstance(r.json(), list) and r.json(), (path, r.text[:300])


async def test_a_page_of_requests_carries_its_total_and_links_in_headers(org: Org) -> None:
    for _ in range(3):
        await org.held()
    first = await org.http.get("/api/tool-approvals/requests", params={"limit": 2}, headers=org.tenant.human)
    total = int(first.headers["X-Total-Count"])
    assert total >= 3 and len(first.json()) == 2
    base = str(org.http.base_url).rstrip("/")
    assert first.headers["Link"] == f'<{base}/api/tool-approvals/requests?limit=2&offset=2>; rel="next"'
    second = await org.http.get(
        "/api/tool-approvals/requests", params={"limit": 2, "offset": 2}, headers=org.tenant.human
    )
    assert int(second.headers["X-Total-Count"]) == total
    assert 'offset=0>; rel="prev"' in second.headers["Link"]
    assert not {r["id"] for r in first.json()} & {r["id"] for r in second.json()}
    assert all(r["approval_url"].endswith(f"/approve/{r['id']}") for r in first.json() + second.json())


async def test_a_page_of_logs_follows_its_next_link_to_the_end(org: Org) -> None:
    for i in range(3):
        done = await org.call("echo", {"arguments": {"text": f"page {i} {secrets.token_hex(3)}"}})
        await audited(org.http, org.tenant, done.json()["call_id"], finished=True)
    url: str | None = f"/api/logs?limit=2&integration_id={INTEGRATION}&tool_name=echo"
    seen: list[str] = []
    while url:
        r = await org.http.get(url, headers=org.tenant.human)
        assert r.status_code == 200, r.text
        seen += [s["call_id"] for s in r.json()]
        url = r.links.get("next", {}).get("url")
    assert len(seen) == len(set(seen)) == int(r.headers["X-Total-Count"]) >= 3


# --- API keys ----------------------------------------------------------------------------------------


async def test_a_new_key_carries_plain_key_and_key_prefix_and_revoking_is_204(org: Org) -> None:
    human = org.tenant.human
    created = await org.http.post("/api/api-keys", json={"name": "shapes"}, headers=human)
    assert created.status_code == 201, created.text
    key = created.json()
    assert key["plain_key"] == key["key"] and key["key"].startswith("ap_")
    assert key["key_prefix"] == key["prefix"] and key["key"].startswith(key["prefix"])
    [listed] = [k for k in (await org.http.get("/api/api-keys", headers=human)).json() if k["id"] == key["id"]]
    assert listed["key_prefix"] == listed["prefix"] == key["prefix"] and "key" not in listed
    assert (await org.http.get("/api/tools", headers={"X-API-Key": key["plain_key"]})).status_code == 200
    revoked = await org.http.delete(f"/api/api-keys/{key['id']}", headers=human)
    assert (revoked.status_code, revoked.content) == (204, b"")
    assert (await org.http.get("/api/tools", headers={"X-API-Key": key["plain_key"]})).status_code == 401
    missing = await org.http.delete(f"/api/api-keys/k-{secrets.token_hex(4)}", headers=human)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


# --- tools and their settings ------------------------------------------------------------------------


async def test_tool_settings_are_items_and_a_put_answers_the_setting(org: Org) -> None:
    human = org.tenant.human
    put = await org.http.put(f"/api/tool-settings/{INTEGRATION}/add", json={"mode": "deny"}, headers=human)
    assert put.status_code == 200, put.text
    setting = put.json()
    assert (setting["integration_id"], setting["tool_name"], setting["mode"]) == (INTEGRATION, "add", "deny")
    assert setting["name"] == "add" and setting["execution_mode"] == "deny" and "input_schema" in setting
    listed = (await org.http.get(f"/api/tool-settings/{INTEGRATION}", headers=human)).json()
    by_tool = {s["tool_name"]: s for s in listed}
    assert {"echo", "add", "delete_repo"} <= set(by_tool)
    assert by_tool["add"] == {"integration_id": INTEGRATION, "tool_name": "add", "mode": "deny"}
    assert by_tool["echo"]["mode"] == "allow" and by_tool["delete_repo"]["mode"] == "require_approval"


async def test_tools_carry_execution_mode_beside_mode(org: Org) -> None:
    tools = (await org.http.get("/api/tools", params={"integration_id": INTEGRATION}, headers=org.tenant.agent)).json()
    assert tools and all(t["execution_mode"] == t["mode"] for t in tools)
    one = (await org.http.get(f"/api/tools/{INTEGRATION}/echo", headers=org.tenant.agent)).json()
    assert one["mode"] == one["execution_mode"] == "allow"


# --- calls and awaits --------------------------------------------------------------------------------


async def test_a_call_takes_args_as_well_as_arguments(org: Org) -> None:
    text = f"args {secrets.token_hex(4)}"
    by_args = await org.call("echo", {"args": {"text": text}})
    both = await org.call("echo", {"args": {"text": text}, "arguments": {"text": text}})
    for r in (by_args, both):
        assert r.status_code == 200 and r.json()["status"] == "executed", r.text
        assert r.json()["result"]["content"][0]["text"] == f"echo: {text}"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"args": {"text": "a"}, "arguments": {"text": "b"}}, "'arguments' and 'args' differ; send one of them"),
        ({"args": ["a"]}, "arguments (or args) must be a JSON object"),
    ],
)
async def test_a_call_with_conflicting_or_bad_args_is_a_400(org: Org, body: dict[str, Any], message: str) -> None:
    r = await org.call("echo", body)
    assert r.status_code == 400, r.text
    assert r.json()["error"] == {"code": "bad_request", "message": message}


async def test_awaits_take_timeout_seconds_in_the_body(org: Org) -> None:
    held = await org.held()
    paths = (f"/api/tool-approvals/requests/{held['approval_request_id']}/await", f"/api/calls/{held['call_id']}/await")
    for path in paths:
        started = time.monotonic()
        r = await org.http.post(path, json={"timeout_seconds": 1}, headers=org.tenant.agent)
        assert r.status_code == 200 and r.json()["status"] == "pending", (path, r.text)
        assert time.monotonic() - started < 10, path
    same = await org.http.post(paths[0], params={"timeout": "1"}, json={"timeout_seconds": 1}, headers=org.tenant.agent)
    assert same.status_code == 200 and same.json()["status"] == "pending", same.text


@pytest.mark.parametrize(
    ("params", "body", "message"),
    [
        ({}, {"timeout_seconds": "soon"}, "timeout_seconds must be a positive number of seconds"),
        ({}, {"timeout_seconds": 0}, "timeout_seconds must be a positive number of seconds"),
        ({}, {"timeout_seconds": True}, "timeout_seconds must be a positive number of seconds"),
        ({"timeout": "1"}, {"timeout_seconds": 2}, "'timeout' and 'timeout_seconds' differ; send one of them"),
    ],
)
async def test_a_bad_await_budget_in_the_body_is_a_400(
    org: Org, params: dict[str, str], body: dict[str, Any], message: str
) -> None:
    held = await org.held()
    for path in (
        f"/api/tool-approvals/requests/{held['approval_request_id']}/await",
        f"/api/calls/{held['call_id']}/await",
    ):
        r = await org.http.post(path, params=params, json=body, headers=org.tenant.agent)
        assert r.status_code == 400, (path, r.text)
        assert r.json()["error"] == {"code": "bad_request", "message": message}
