"""Unanswered requests expire; every call ends once and the audit log tells its whole story."""

from __future__ import annotations

import secrets

import asyncpg
import httpx

from tests.e2e.conftest import World
from tests.support.agentport import add_custom_upstream, audited, call, decide, mcp_client, new_tenant, set_mode
from tests.support.upstream import Upstream


async def test_an_unanswered_request_expires_and_says_so(
    world: World, http: httpx.AsyncClient, open_upstream: Upstream
) -> None:
    tenant = await new_tenant(world.stack, http, "org-expiry")
    r = await http.put("/api/org-settings", json={"approval_expiry_seconds": 5}, headers=tenant.human)
    assert r.status_code == 200, r.text
    await add_custom_upstream(http, tenant, open_upstream.url, "open", bearer=False)
    async with mcp_client(world.stack.base_url, tenant.agent) as client:
        await call(client, "install_integration", integration_id="open", auth_method="none")
        name = "expire-" + secrets.token_hex(4)
        held = await call(client, "call_tool", integration_id="open", tool_name="delete_repo", arguments={"name": name})
        assert held["status"] == "approval_required"
        outcome = await call(client, "await_approval", request_id=held["approval_request_id"])
    assert outcome["status"] == "expired", outcome
    assert "expired" in outcome["message"]
    late = await decide(http, tenant, held["approval_request_id"], "approve-once")
    assert late.status_code == 409
    request = (
        await http.get(f"/api/tool-approvals/requests/{held['approval_request_id']}", headers=tenant.human)
    ).json()
    assert request["status"] == "expired"
    assert open_upstream.count("delete_repo", name=name) == 0


async def test_every_call_has_one_terminal_audit_entry_with_its_story(world: World, http: httpx.AsyncClient) -> None:
    await set_mode(http, world.tenant, "up", "echo", "allow")
    text = "audited " + secrets.token_hex(4)
    async with mcp_client(world.stack.base_url, world.tenant.agent) as client:
        allowed = await call(
            client,
            "call_tool",
            integration_id="up",
            tool_name="echo",
            arguments={"text": text},
            additional_info="Echo for the audit test",
        )
        held = await call(
            client,
            "call_tool",
            integration_id="up",
            tool_name="add",
            arguments={"a": 7, "b": 8},
            additional_info="Add for the audit test",
        )
        await decide(http, world.tenant, held["approval_request_id"], "approve-once")
        approved = await call(client, "await_approval", request_id=held["approval_request_id"])
    assert allowed["status"] == approved["status"] == "executed"

    story = await audited(http, world.tenant, held["call_id"], finished=True)
    summary = story["summary"]
    assert summary["status"] == "completed"
    assert summary["actor"]["kind"] == "api_key" and summary["actor"]["name"] == "agent"
    assert summary["integration_id"] == "up" and summary["tool_name"] == "add"
    assert summary["arguments"] == {"a": 7, "b": 8}
    assert summary["additional_info"] == "Add for the audit test"
    assert summary["client_ip"] == "127.0.0.1"
    assert summary["verdict"] == "hold" and summary["rule"] == "default:require_approval"
    assert summary["decision"] == "approve_once"
    assert summary["approver"]["name"] == world.tenant.email and summary["approver_ip"] == "127.0.0.1"
    assert summary["outcome"]["result"]["structuredContent"] == {"sum": 15}
    for field in (
        "requested_at",
        "ruled_at",
        "decided_at",
        "started_at",
        "finished_at",
        "total_ms",
        "upstream_ms",
    ):
        assert summary.get(field) is not None, field
    types = [e["type"] for e in story["events"]]
    assert types[0] == "call.requested" and types[-1] == "call.completed"
    assert {"call.ruled", "approval.requested", "approval.decided", "call.released", "call.started"} <= set(types)
    terminal = [
        e
        for e in story["events"]
        if e["type"] in ("call.completed", "call.failed", "call.denied", "call.expired", "call.coalesced")
    ]
    assert len(terminal) == 1 and terminal[0]["entry"]["summary"]["status"] == "completed"

    allowed_story = await audited(http, world.tenant, allowed["call_id"], finished=True)
    assert allowed_story["summary"]["verdict"] == "allow" and allowed_story["summary"]["rule"] == "tool_mode:allow"

    listed = (
        await http.get("/api/logs", params={"tool_name": "add", "status": "completed"}, headers=world.tenant.human)
    ).json()
    assert any(item["call_id"] == held["call_id"] for item in listed)
    assert all(item["tool_name"] == "add" and item["status"] == "completed" for item in listed)


async def test_the_audit_log_refuses_edits_and_verify_detects_tampering(
    world: World, http: httpx.AsyncClient, open_upstream: Upstream
) -> None:
    tenant = await new_tenant(world.stack, http, "org-tamper")
    await add_custom_upstream(http, tenant, open_upstream.url, "open", bearer=False)
    async with mcp_client(world.stack.base_url, tenant.agent) as client:
        await call(client, "install_integration", integration_id="open", auth_method="none")
        await set_mode(http, tenant, "open", "echo", "allow")
        for i in range(2):
            assert (
                await call(
                    client,
                    "call_tool",
                    integration_id="open",
                    tool_name="echo",
                    arguments={"text": f"tamper {i}"},
                )
            )["status"] == "executed"
    org_id = (await http.get("/api/users/me", headers=tenant.human)).json()["org_id"]
    verified = (await http.get("/api/logs/verify", headers=tenant.human)).json()
    assert verified["ok"] and verified["orgs"][org_id]["entries"] > 10, verified
    env = world.stack.env
    schema = f"{env['AGENTPORT_NAMESPACE']}_audit"
    conn = await asyncpg.connect(env["DATABASE_URL"])
    try:
        seq = await conn.fetchval(
            f'SELECT max(seq) FROM "{schema}".log WHERE org_id=$1 AND type=$2', org_id, "call.requested"
        )
        refused = None
        try:
            await conn.execute(f'UPDATE "{schema}".log SET entry = entry WHERE seq=$1', seq)
        except asyncpg.PostgresError as exc:
            refused = str(exc)
        assert refused is not None and "append-only" in refused
        # Someone with the power to bypass the trigger edits one entry and deletes another.
        async with conn.transaction():
            await conn.execute("SET LOCAL session_replication_role = replica")
            await conn.execute(
                f"""UPDATE "{schema}".log SET entry = jsonb_set(entry, '{{spec,arguments}}', '{{"text": "x"}}')
                    WHERE seq=$1""",
                seq,
            )
            victim = await conn.fetchval(f'SELECT min(seq) FROM "{schema}".log WHERE org_id=$1', org_id)
            await conn.execute(f'DELETE FROM "{schema}".log WHERE seq=$1', victim)
        report = (await http.get("/api/logs/verify", headers=tenant.human)).json()
        problems = report["orgs"][org_id]["problems"]
        assert not report["ok"]
        assert any("altered" in p for p in problems), problems
        assert any("missing" in p for p in problems), problems
    finally:
        await conn.close()
