"""A shell-based agent's whole journey through the CLI: discover, call allowed, gated and denied tools."""

from __future__ import annotations

import asyncio
import json
import re
import secrets
from pathlib import Path

import httpx

from tests.cli.conftest import World, eventually, make_shell
from tests.support.agentport import add_custom_upstream, decide, new_tenant, set_mode
from tests.support.relay import Relay
from tests.support.stack import Stack
from tests.support.upstream import Upstream

URL_LINE = re.compile(r"Approval needed: share (\S+/approve/(\w+)) with a human")


async def test_installed_custom_integration_is_ready_with_its_tools(world: World) -> None:
    installed = await world.agent.run("integrations", "list", "--json")
    listed = await world.agent.run("tools", "list", "--integration", "up", "--json")
    table = await world.agent.run("tools", "list", "--integration", "up")
    assert installed.code == listed.code == table.code == 0, (installed, listed, table)
    [up] = installed.json()
    assert (up["integration_id"], up["status"]) == ("up", "ready")
    assert {t["name"] for t in listed.json()} >= {"echo", "add", "delete_repo", "send_email", "slow"}
    assert table.stdout.splitlines()[0].split() == ["INTEGRATION", "TOOL", "MODE", "DESCRIPTION"]
    assert re.search(r"^up\s+delete_repo\s+require_approval\s+Delete a repository", table.stdout, re.M)


async def test_a_second_integration_installs_reports_connected_and_is_removed(world: World) -> None:
    agent = world.agent
    defined = await agent.run("integrations", "add-mcp", "up2", world.upstream.url, "--json")
    found = await agent.run("integrations", "available", "--query", "up2", "--json")
    installed = await agent.run("integrations", "install", "up2")
    status = await agent.run("integrations", "status", "up2", "--json")
    removed = await agent.run("integrations", "remove", "up2")
    after = await agent.run("integrations", "list", "--json")
    gone = await agent.run("integrations", "status", "up2")
    assert [r.code for r in (defined, found, installed, status, removed, after)] == [0] * 6
    assert [i["id"] for i in found.json()] == ["up2"]
    assert status.json()["auth_status"] == "connected"
    assert "up2" not in {i["integration_id"] for i in after.json()}
    assert gone.code == 1 and gone.stderr.startswith("agentport: integration 'up2' is not installed")


async def test_describe_shows_the_parameters_and_the_approval_mode(world: World) -> None:
    as_json = await world.agent.run("tools", "describe", "up", "add", "--json")
    as_text = await world.agent.run("tools", "describe", "up", "add")
    assert as_json.code == as_text.code == 0, (as_json, as_text)
    tool = as_json.json()
    assert tool["mode"] == "require_approval"
    assert sorted(tool["input_schema"]["required"]) == ["a", "b"]
    assert "agentport tools call up add --arg a:=… --arg b:=…" in as_text.stdout


async def test_allowed_call_prints_the_upstreams_real_result(world: World) -> None:
    await set_mode(world.http, world.tenant, "up", "echo", "allow")
    text = f"hello {world.nonce()}"
    ran = await world.agent.run("tools", "call", "up", "echo", "--arg", f"text={text}", "--info", "Say hello")
    assert ran.code == 0, ran
    assert ran.stdout == f"echo: {text}\n"
    assert world.upstream.count("echo", text=text) == 1


async def test_plain_arg_values_take_the_type_the_schema_asks_for(world: World) -> None:
    await set_mode(world.http, world.tenant, "up", "slow", "allow")
    tag = str(secrets.randbelow(10**9))
    ran = await world.agent.run("tools", "call", "up", "slow", "--arg", "seconds=0", "--arg", f"tag={tag}")
    assert ran.code == 0, ran
    assert world.upstream.count("slow", seconds=0, tag=tag) == 1


async def test_call_json_is_one_document_and_the_audit_log_records_the_cli_channel(world: World) -> None:
    await set_mode(world.http, world.tenant, "up", "echo", "allow")
    text = f"json {world.nonce()}"
    info = f"Echo {text} to check the JSON output"
    ran = await world.agent.run(
        "tools", "call", "up", "echo", "--args", json.dumps({"text": text}), "--info", info, "--json"
    )
    assert ran.code == 0, ran
    result = ran.json()
    assert result["status"] == "executed"
    assert result["result"]["content"][0]["text"] == f"echo: {text}"

    async def story() -> httpx.Response:
        return await world.http.get(f"/api/logs/{result['call_id']}", headers=world.tenant.human)

    logged = await eventually(story, lambda r: r.status_code == 200 and r.json()["summary"]["status"] == "completed")
    summary = logged.json()["summary"]
    assert (summary["channel"], summary["additional_info"]) == ("cli", info)


async def test_gated_call_with_wait_shares_the_url_and_prints_the_result_once_approved(world: World) -> None:
    a = secrets.randbelow(10**6)
    async with Relay.in_front_of(world.stack.base_url, notes_http=True) as relay:
        proc = await world.agent.start(
            "tools",
            "call",
            "up",
            "add",
            "--arg",
            f"a:={a}",
            "--arg",
            "b:=1",
            "--info",
            "Add one to the counter",
            "--wait",
            "--json",
            env={"AGENTPORT_URL": relay.url_for(world.stack.base_url)},
        )
        assert proc.stderr is not None
        line = (await asyncio.wait_for(proc.stderr.readline(), 30)).decode()
        found = URL_LINE.search(line)
        assert found, line
        # The CLI waits: its long-poll for the decision has been passed on to the gateway.
        await relay.forwarded(f"/api/tool-approvals/requests/{found.group(2)}/await")
        assert proc.returncode is None
        assert world.upstream.count("add", a=a, b=1) == 0

        decided = await decide(world.http, world.tenant, found.group(2), "approve-once")
        assert decided.status_code == 200, decided.text
        out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err
    result = json.loads(out)
    assert result["status"] == "executed"
    assert result["result"]["structuredContent"] == {"sum": a + 1}
    assert world.upstream.count("add", a=a, b=1) == 1


async def test_gated_call_without_wait_exits_3_with_the_approval_url(world: World) -> None:
    name = f"repo-{world.nonce()}"
    as_json = await world.agent.run("tools", "call", "up", "delete_repo", "--arg", f"name={name}", "--json")
    as_text = await world.agent.run("tools", "call", "up", "delete_repo", "--arg", f"name={name}")
    assert as_json.code == as_text.code == 3, (as_json, as_text)
    held = as_json.json()
    assert held["status"] == "approval_required"
    assert held["approval_url"].endswith(f"/approve/{held['approval_request_id']}")
    assert f"agentport approvals await {held['approval_request_id']}" in as_text.stdout
    assert world.upstream.count("delete_repo", name=name) == 0


async def test_await_that_runs_out_of_time_exits_3_and_says_pending(world: World) -> None:
    held = await world.agent.run("tools", "call", "up", "delete_repo", "--arg", f"name=t-{world.nonce()}", "--json")
    request_id = held.json()["approval_request_id"]
    ran = await world.agent.run("approvals", "await", request_id, "--timeout", "1", "--json")
    assert ran.code == 3, ran
    assert ran.json()["status"] == "pending"


async def test_denied_tool_exits_4_and_never_reaches_the_upstream(world: World) -> None:
    await set_mode(world.http, world.tenant, "up", "send_email", "deny")
    to = f"{world.nonce()}@example.com"
    as_json = await world.agent.run(
        "tools", "call", "up", "send_email", "--arg", f"to={to}", "--arg", "subject=hi", "--json"
    )
    as_text = await world.agent.run("tools", "call", "up", "send_email", "--arg", f"to={to}", "--arg", "subject=hi")
    assert as_json.code == as_text.code == 4, (as_json, as_text)
    assert as_json.json()["status"] == "denied"
    assert as_text.stdout.startswith("Denied: ")
    assert "Do not retry" in as_text.stdout
    assert world.upstream.count("send_email", to=to) == 0


async def test_human_denial_from_the_cli_ends_the_agents_await_with_exit_4(world: World) -> None:
    name = f"repo-{world.nonce()}"
    info = f"Delete the scratch repository {name} created by yesterday's test run"
    held = await world.agent.run(
        "tools", "call", "up", "delete_repo", "--arg", f"name={name}", "--info", info, "--json"
    )
    request_id = held.json()["approval_request_id"]
    human = await world.human(world.agent.home.parent / f"human-{world.nonce()}")

    pending = await human.run("approvals", "list", "--json")
    shown = await human.run("approvals", "show", request_id)
    assert request_id in {r["id"] for r in pending.json()}
    assert info in shown.stdout and f'"name": "{name}"' in shown.stdout

    waiting = await world.agent.start("approvals", "await", request_id, "--json")
    denied = await human.run("approvals", "deny", request_id, "--reason", "keep it for now")
    assert denied.code == 0, denied
    out, err = await asyncio.wait_for(waiting.communicate(), 30)
    assert waiting.returncode == 4, err
    assert json.loads(out)["reason"] == "keep it for now"
    assert world.upstream.count("delete_repo", name=name) == 0


async def test_an_api_key_cannot_approve(world: World) -> None:
    held = await world.agent.run("tools", "call", "up", "delete_repo", "--arg", f"name=k-{world.nonce()}", "--json")
    ran = await world.agent.run("approvals", "approve", held.json()["approval_request_id"])
    assert ran.code == 1
    assert ran.stderr.count("\n") == 1
    assert ran.stderr.startswith("agentport: only a human can decide approval requests")


async def test_approval_nobody_decides_expires_with_exit_5(
    world: World, stack: Stack, open_upstream: Upstream, tmp_path: Path
) -> None:
    tenant = await new_tenant(stack, world.http, "cli-exp-" + secrets.token_hex(3))
    r = await world.http.put("/api/org-settings", json={"approval_expiry_seconds": 5}, headers=tenant.human)
    assert r.status_code == 200, r.text
    await add_custom_upstream(world.http, tenant, open_upstream.url, "up", bearer=False)
    agent = make_shell(tmp_path / "agent", stack.base_url, AGENTPORT_API_KEY=tenant.api_key)
    installed = await agent.run("integrations", "install", "up")
    assert installed.code == 0, installed

    text = f"late {world.nonce()}"
    ran = await agent.run("tools", "call", "up", "echo", "--arg", f"text={text}", "--wait", "--json")
    assert ran.code == 5, ran
    assert ran.json()["status"] == "expired"
    assert "Approval needed" in ran.stderr
    assert open_upstream.count("echo", text=text) == 0
