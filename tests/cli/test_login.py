"""`agentport login|logout|whoami`: credentials verified, stored owner-only, overridable from the environment."""

from __future__ import annotations

import stat
from pathlib import Path

from tests.cli.conftest import Shell, World


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_api_key_login_is_stored_readable_by_the_owner_only(world: World, shell: Shell) -> None:
    ran = await shell.run("login", "--api-key-stdin", stdin=world.tenant.api_key + "\n")
    me = await shell.run("whoami", "--json")
    assert ran.code == me.code == 0, (ran, me)
    assert mode(shell.config_path) == 0o600
    assert mode(shell.config_path.parent) == 0o700
    assert world.tenant.api_key in shell.config_path.read_text()
    assert me.json()["actor"]["kind"] == "api_key"
    assert me.json()["credential"] == str(shell.config_path)


async def test_human_login_stores_a_session_token_not_the_password(world: World, shell: Shell) -> None:
    ran = await shell.run("login", "--email", world.tenant.email, "--password-stdin", stdin=world.tenant.password)
    me = await shell.run("whoami", "--json")
    assert ran.code == me.code == 0, (ran, me)
    stored = shell.config_path.read_text()
    assert world.tenant.password not in stored and '"token"' in stored
    assert mode(shell.config_path) == 0o600
    assert (me.json()["actor"]["kind"], me.json()["role"]) == ("user", "owner")


async def test_wrong_password_is_one_line_and_stores_nothing(world: World, shell: Shell) -> None:
    ran = await shell.run("login", "--email", world.tenant.email, "--password-stdin", stdin="not-the-password")
    assert ran.code == 1
    assert ran.stderr.startswith("agentport: ") and ran.stderr.count("\n") == 1
    assert not shell.config_path.exists()


async def test_unknown_api_key_is_refused_and_nothing_is_stored(shell: Shell) -> None:
    ran = await shell.run("login", "--api-key", "ap_not_a_real_key")
    assert ran.code == 1
    assert ran.stderr == "agentport: this API key is not valid (unknown or revoked)\n"
    assert not shell.config_path.exists()


async def test_environment_api_key_overrides_the_stored_login(world: World, shell: Shell) -> None:
    await shell.run("login", "--email", world.tenant.email, "--password-stdin", stdin=world.tenant.password)
    me = await shell.run("whoami", "--json", env={"AGENTPORT_API_KEY": world.tenant.api_key})
    assert me.code == 0, me
    assert (me.json()["actor"]["kind"], me.json()["credential"]) == ("api_key", "environment")


async def test_logout_forgets_the_credentials(world: World, shell: Shell) -> None:
    await shell.run("login", "--api-key-stdin", stdin=world.tenant.api_key)
    out = await shell.run("logout")
    after = await shell.run("tools", "list")
    assert out.code == 0, out
    assert world.tenant.api_key not in shell.config_path.read_text()
    assert after.code == 1
    assert after.stderr.startswith("agentport: not logged in")
