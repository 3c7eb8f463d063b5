"""A human with two-factor on logs in and decides from the CLI with --totp; without it, one clear line."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pyotp

from tests.cli.conftest import World, make_shell
from tests.gateway.humans import invite_and_join


async def test_two_factor_human_logs_in_and_approves_with_totp(
    world: World, cli_http: httpx.AsyncClient, tmp_path: Path
) -> None:
    approver = await invite_and_join(cli_http, world.tenant.human, world.tenant.org, "approver")
    setup = (await cli_http.post("/api/users/me/totp/setup", headers=approver.headers)).json()
    secret = setup["secret"]
    enabled = await cli_http.post(
        "/api/users/me/totp/enable",
        json={"code": pyotp.TOTP(secret).now()},
        headers=approver.headers,
    )
    assert enabled.status_code == 200, enabled.text
    recovery = enabled.json()["recovery_codes"]

    shell = make_shell(tmp_path / "approver", world.stack.base_url)
    refused = await shell.run("login", "--email", approver.email, "--password-stdin", stdin=approver.password)
    assert refused.code == 1, refused
    assert refused.stderr.count("\n") == 1 and "two-factor" in refused.stderr.lower()
    assert not shell.config_path.exists()
    logged_in = await shell.run(
        "login", "--email", approver.email, "--password-stdin", "--totp", recovery[0], stdin=approver.password
    )
    assert logged_in.code == 0, logged_in

    nonce = world.nonce()
    held = await world.agent.run("--json", "tools", "call", "up", "delete_repo", "--arg", f"name=tfa-{nonce}")
    assert held.code == 3, held
    request_id = held.json()["approval_request_id"]
    no_code = await shell.run("approvals", "approve", request_id)
    assert no_code.code == 1 and "two-factor" in no_code.stderr.lower(), no_code
    approved = await shell.run("approvals", "approve", request_id, "--totp", pyotp.TOTP(secret).at(time.time() + 30))
    assert approved.code == 0, approved
    done = await world.agent.run("--json", "approvals", "await", request_id)
    assert done.code == 0 and done.json()["status"] == "executed", done
    assert world.upstream.count("delete_repo", name=f"tfa-{nonce}") == 1


async def test_two_factor_admin_allows_a_tool_only_with_totp(
    world: World, cli_http: httpx.AsyncClient, tmp_path: Path
) -> None:
    admin = await invite_and_join(cli_http, world.tenant.human, world.tenant.org, "admin")
    secret = (await cli_http.post("/api/users/me/totp/setup", headers=admin.headers)).json()["secret"]
    enabled = await cli_http.post(
        "/api/users/me/totp/enable", json={"code": pyotp.TOTP(secret).now()}, headers=admin.headers
    )
    recovery = enabled.json()["recovery_codes"]
    ask = await cli_http.put(
        "/api/tool-settings/up/slow", json={"mode": "require_approval"}, headers=world.tenant.human
    )
    assert ask.status_code == 200, ask.text

    shell = make_shell(tmp_path / "admin", world.stack.base_url)
    logged_in = await shell.run(
        "login", "--email", admin.email, "--password-stdin", "--totp", recovery[0], stdin=admin.password
    )
    assert logged_in.code == 0, logged_in
    no_code = await shell.run("tools", "set-mode", "up", "slow", "allow")
    assert no_code.code == 1 and "two-factor" in no_code.stderr.lower(), no_code
    allowed = await shell.run(
        "--json", "tools", "set-mode", "up", "slow", "allow", "--totp", pyotp.TOTP(secret).at(time.time() + 30)
    )
    assert allowed.code == 0, allowed
    assert allowed.json()["mode"] == "allow"
