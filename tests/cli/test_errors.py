"""Bad input and failures give one clear line and the documented exit code, never a traceback."""

from __future__ import annotations

import pytest

from tests.cli.conftest import Ran, Shell, World


def one_line(ran: Ran) -> str:
    assert "Traceback" not in ran.stderr, ran
    assert ran.stderr.count("\n") == 1, ran
    assert ran.stdout == "", ran
    return ran.stderr.strip()


async def test_not_logged_in_exits_1(offline: Shell) -> None:
    ran = await offline.run("tools", "list")
    assert ran.code == 1
    assert one_line(ran).startswith("agentport: not logged in: run `agentport login")


async def test_gateway_down_exits_1(offline: Shell) -> None:
    url = offline.env["AGENTPORT_URL"]
    ran = await offline.run("tools", "list", "--json", env={"AGENTPORT_API_KEY": "ap_whatever"})
    assert ran.code == 1
    assert one_line(ran) == f"agentport: cannot reach the AgentPort gateway at {url} (is it running? `make run`)"


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


async def test_arguments_that_break_the_schema_name_the_field(world: World) -> None:
    ran = await world.agent.run("tools", "call", "up", "add", "--arg", "a=one", "--arg", "b:=1")
    assert ran.code == 1
    assert "do not match its input schema at a" in one_line(ran)
