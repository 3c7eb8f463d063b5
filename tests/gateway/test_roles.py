"""Each role (and an agent's API key) against each state-changing endpoint: owners and admins manage,
approvers decide, viewers read; agents install and call but never manage or decide."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import httpx
import pytest

from tests.gateway.humans import Person, invite_and_join, owner_of
from tests.support.agentport import Tenant, add_custom_upstream, new_tenant
from tests.support.stack import Stack
from tests.support.upstream import Upstream

ACTORS = ("owner", "admin", "approver", "viewer", "api_key")
MANAGERS = {"owner", "admin"}
DECIDERS = {"owner", "admin", "approver"}
AGENT_MAY = {"install", "uninstall", "define_integration"}


@dataclass
class Org:
    tenant: Tenant
    people: dict[str, Person]
    target: Person
    http: httpx.AsyncClient
    integration: str
    made: dict[str, str] = field(default_factory=dict)

    def headers(self, actor: str) -> dict[str, str]:
        return self.tenant.agent if actor == "api_key" else self.people[actor].headers


@pytest.fixture(scope="module")
async def org(stack: Stack, open_upstream: Upstream) -> AsyncIterator[Org]:
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=60) as http:
        tenant = await new_tenant(stack, http, "roles-" + secrets.token_hex(3))
        me = await http.get("/api/users/me", headers=tenant.human)
        people = {"owner": owner_of(tenant, me.json()["actor"]["id"])}
        for role in ("admin", "approver", "viewer"):
            people[role] = await invite_and_join(http, tenant.human, tenant.org, role)
        target = await invite_and_join(http, tenant.human, tenant.org, "viewer")
        await add_custom_upstream(http, tenant, open_upstream.url, "roles-up", bearer=False)
        r = await http.post("/api/installed", json={"integration_id": "roles-up"}, headers=tenant.agent)
        assert r.status_code == 201, r.text
        yield Org(tenant, people, target, http, "roles-up")


Action = Callable[[Org, str], Awaitable[httpx.Response]]


async def set_mode(o: Org, actor: str) -> httpx.Response:
    return await o.http.put(
        f"/api/tool-settings/{o.integration}/add", json={"mode": "require_approval"}, headers=o.headers(actor)
    )


async def define_integration(o: Org, actor: str) -> httpx.Response:
    body = {"id": f"def-{actor}-{secrets.token_hex(3)}", "name": "Defined", "url": "http://127.0.0.1:9/mcp"}
    return await o.http.post("/api/integrations/custom-mcp", json=body, headers=o.headers(actor))


async def install(o: Org, actor: str) -> httpx.Response:
    return await o.http.post("/api/installed", json={"integration_id": o.integration}, headers=o.headers(actor))


async def uninstall(o: Org, actor: str) -> httpx.Response:
    integration = f"rm-{actor}-{secrets.token_hex(3)}"
    up = await o.http.get(f"/api/integrations/{o.integration}", headers=o.tenant.agent)
    body = {"id": integration, "name": "Removable", "url": up.json()["mcp_url"]}
    assert (await o.http.post("/api/integrations/custom-mcp", json=body, headers=o.tenant.agent)).status_code == 201
    made = await o.http.post("/api/installed", json={"integration_id": integration}, headers=o.tenant.agent)
    assert made.status_code == 201, made.text
    return await o.http.delete(f"/api/installed/{integration}", headers=o.headers(actor))


async def create_key(o: Org, actor: str) -> httpx.Response:
    return await o.http.post("/api/api-keys", json={"name": f"k-{actor}"}, headers=o.headers(actor))


async def revoke_key(o: Org, actor: str) -> httpx.Response:
    made = await o.http.post("/api/api-keys", json={"name": "to-revoke"}, headers=o.tenant.human)
    return await o.http.delete(f"/api/api-keys/{made.json()['id']}", headers=o.headers(actor))


async def org_settings(o: Org, actor: str) -> httpx.Response:
    return await o.http.put("/api/org-settings", json={"approval_expiry_seconds": 600}, headers=o.headers(actor))


async def invite(o: Org, actor: str) -> httpx.Response:
    body = {"email": f"new-{secrets.token_hex(4)}@{o.tenant.org}.example", "role": "viewer"}
    return await o.http.post("/api/invitations", json=body, headers=o.headers(actor))


async def change_role(o: Org, actor: str) -> httpx.Response:
    return await o.http.put(f"/api/users/{o.target.user_id}/role", json={"role": "viewer"}, headers=o.headers(actor))


def deciding(decision: str) -> Action:
    async def decide(o: Org, actor: str) -> httpx.Response:
        await set_mode(o, "owner")  # An earlier "always allow" may have flipped the tool.
        held = await o.http.post(
            f"/api/tools/{o.integration}/add/call",
            json={"arguments": {"a": secrets.randbelow(10**9), "b": 7}},
            headers=o.tenant.agent,
        )
        assert held.json()["status"] == "approval_required", held.text
        request_id = held.json()["approval_request_id"]
        body = {"reason": "role test"} if decision == "deny" else {}
        return await o.http.post(
            f"/api/tool-approvals/requests/{request_id}/{decision}", json=body, headers=o.headers(actor)
        )

    return decide


MANAGE_ACTIONS: dict[str, Action] = {
    "set_mode": set_mode,
    "define_integration": define_integration,
    "install": install,
    "uninstall": uninstall,
    "create_key": create_key,
    "revoke_key": revoke_key,
    "org_settings": org_settings,
    "invite": invite,
    "change_role": change_role,
}
DECIDE_ACTIONS: dict[str, Action] = {
    "approve_once": deciding("approve-once"),
    "allow_tool": deciding("allow-tool"),
    "deny": deciding("deny"),
}


def allowed(actor: str, action: str) -> bool:
    if action in DECIDE_ACTIONS:
        return actor in DECIDERS
    if actor == "api_key":
        return action in AGENT_MAY
    return actor in MANAGERS


@pytest.mark.parametrize("actor", ACTORS)
@pytest.mark.parametrize("action", [*MANAGE_ACTIONS, *DECIDE_ACTIONS])
async def test_each_role_may_do_exactly_what_it_is_granted(org: Org, actor: str, action: str) -> None:
    act = MANAGE_ACTIONS.get(action) or DECIDE_ACTIONS[action]
    response = await act(org, actor)
    if allowed(actor, action):
        assert response.status_code in (200, 201, 204), (actor, action, response.text)
    else:
        assert response.status_code == 403, (actor, action, response.text)
        assert response.json()["error"]["code"] == "forbidden"


@pytest.mark.parametrize("actor", ["owner", "admin", "approver", "viewer"])
async def test_every_human_role_reads_logs_approvals_and_people(org: Org, actor: str) -> None:
    for path in ("/api/logs", "/api/tool-approvals/requests", "/api/users", "/api/org-settings", "/api/tools"):
        r = await org.http.get(path, headers=org.headers(actor))
        assert r.status_code == 200, (actor, path, r.text)


async def test_an_admin_cannot_make_or_unmake_an_owner(org: Org) -> None:
    admin = org.people["admin"].headers
    promote = await org.http.put(f"/api/users/{org.target.user_id}/role", json={"role": "owner"}, headers=admin)
    demote = await org.http.put(
        f"/api/users/{org.people['owner'].user_id}/role", json={"role": "viewer"}, headers=admin
    )
    invite_owner = await org.http.post(
        "/api/invitations", json={"email": f"o-{secrets.token_hex(3)}@x.example", "role": "owner"}, headers=admin
    )
    assert promote.status_code == demote.status_code == invite_owner.status_code == 403


async def test_nobody_changes_their_own_role(org: Org) -> None:
    owner = org.people["owner"]
    r = await org.http.put(f"/api/users/{owner.user_id}/role", json={"role": "viewer"}, headers=owner.headers)
    assert r.status_code == 403


async def test_a_demoted_user_loses_the_power_at_once(org: Org, stack: Stack) -> None:
    person = await invite_and_join(org.http, org.tenant.human, org.tenant.org, "admin")
    assert (await create_key_as(org, person)).status_code == 201
    r = await org.http.put(f"/api/users/{person.user_id}/role", json={"role": "viewer"}, headers=org.tenant.human)
    assert r.status_code == 200, r.text
    assert (await create_key_as(org, person)).status_code == 403


async def create_key_as(o: Org, person: Person) -> httpx.Response:
    return await o.http.post("/api/api-keys", json={"name": "mine"}, headers=person.headers)
