"""Bad input and failures give one clear line and the documented exit code, never a traceback."""

from __future__ import annotations

import json

import pytest

from tests.cli.conftest import Ran, Shell, World


def one_line(ran: Ran, *, json_out: bool = False) -> str:
    assert "Traceback" not in ran.stderr, ran
    assert ran.stderr.count("\n") == 1, ran
    if not json_out:
        assert ran.stdout == "", ran
    return ran.stderr.strip()


def json_error(ran: Ran) -> dict[str, str]:
    """With `--json`, a failure is also a JSON object on stdout, for scripts."""
    body = json.loads(ran.stdout)
    assert body["status"] == "error", body
    assert f"agentport: {body['error']['message']}" == ran.stderr.strip()
    return dict(body["error"])


async def test_not_logged_in_exits_1(offline: Shell) -> None:
    ran = await offline.run("tools", "list")
    assert ran.code == 1
    assert one_line(ran).startswith("agentport: not logged in: run `agentport login")


async def test_gateway_down_exits_1(offline: Shell) -> None:
    url = offline.env["AGENTPORT_URL"]
    ran = await offline.run("tools", "list", "--json", env={"AGENTPORT_API_KEY": "ap_whatever"})
    assert ran.code == 1
    line = one_line(ran, json_out=True)
    assert line == f"agentport: cannot reach the AgentPort gateway at {url} (is it running? `make run`)"
    assert json_error(ran)["code"] == "unavailable"


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (["--args", "{text: hi}"], "--args is not valid JSON"),
        (["--args", "[1, 2]"], "--args must be a JSON object"),
        (["--arg", "text"], "--arg takes KEY=TEXT or KEY:=JSON"),
        (["--arg", "n:=nope"], "--arg n:= is not valid JSON"),
    ],
)
async def test_malformed_arguments_are_usage_errors(offline: Shell, flags: list[str], says: str) -> None:
    ran = await offline.run("tools", "call", "up", "echo", *flags, env={"AGENTPORT_API_KEY": "ap_whatever"})
    assert ran.code == 2
    assert one_line(ran).startswith(f"agentport: {says}")


async def test_unknown_command_and_missing_arguments_exit_2(offline: Shell) -> None:
    unknown = await offline.run("tool", "list")
    missing = await offline.run("tools", "call", "up")
    assert unknown.code == missing.code == 2
    assert "invalid choice: 'tool'" in one_line(unknown)
    assert one_line(missing) == (
        "agentport tools call: the following arguments are required: TOOL (see `agentport tools call --help`)"
    )


async def test_unknown_integration_gives_the_gateways_message(world: World) -> None:
    call = await world.agent.run("tools", "call", "nope", "echo", "--arg", "text=x")
    install = await world.agent.run("integrations", "install", "nope")
    assert call.code == install.code == 1
    assert one_line(call).startswith("agentport: integration 'nope' is not installed")
    assert one_line(install).startswith("agentport: no integration 'nope'")


async def test_json_failures_are_json_on_stdout_with_the_gateways_code(world: World, offline: Shell) -> None:
    unknown = await world.agent.run("tools", "call", "nope", "echo", "--arg", "text=x", "--json")
    no_login = await offline.run("integrations", "list", "--json")
    assert unknown.code == no_login.code == 1
    one_line(unknown, json_out=True)
    assert json_error(unknown)["code"] == "not_found"
    assert json_error(no_login)["code"] == "not_logged_in"


async def test_arguments_that_break_the_schema_name_the_field(world: World) -> None:
    ran = await world.agent.run("tools", "call", "up", "add", "--arg", "a=one", "--arg", "b:=1")
    assert ran.code == 1
    assert "do not match its input schema at a" in one_line(ran)
