"""Humans read the audit log and manage API keys from the CLI; agents cannot."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from tests.cli.conftest import World, eventually
from tests.support.agentport import set_mode


async def test_follow_prints_a_cli_call_as_it_happens(world: World) -> None:
    await set_mode(world.http, world.tenant, "up", "echo", "allow")
    human = await world.human(world.agent.home.parent / f"human-{world.nonce()}")
    tail = await human.start("logs", "--follow", "--json", "--integration", "up", "--tool", "echo")
    try:
        text = f"followed {world.nonce()}"
        called = await world.agent.run("tools", "call", "up", "echo", "--arg", f"text={text}")
        assert called.code == 0, called

        async def completed() -> dict[str, Any]:
            assert tail.stdout is not None
            while True:
                entry = json.loads(await tail.stdout.readline())
                if entry.get("arguments") == {"text": text} and entry["status"] == "completed":
                    return dict(entry)

        entry = await asyncio.wait_for(completed(), 30)
    finally:
        tail.terminate()
        await tail.wait()
    assert entry["channel"] == "cli"


async def test_one_calls_story_lists_its_events(world: World) -> None:
    await set_mode(world.http, world.tenant, "up", "echo", "allow")
    human = await world.human(world.agent.home.parent / f"human-{world.nonce()}")
    called = await world.agent.run("tools", "call", "up", "echo", "--arg", f"text=story {world.nonce()}", "--json")
    assert called.code == 0, called
    call_id = called.json()["call_id"]
    story = await eventually(lambda: human.run("logs", call_id), lambda ran: "call.completed" in ran.stdout)
    assert story.code == 0, story
    assert "call.requested" in story.stdout and "call.completed" in story.stdout


async def test_human_creates_and_revokes_a_key_that_works_in_between(world: World) -> None:
    human = await world.human(world.agent.home.parent / f"human-{world.nonce()}")
    name = f"ci-{world.nonce()}"
    created = await human.run("keys", "create", name)
    assert created.code == 0, created
    key = created.stdout.strip()
    assert key.startswith("ap_") and len(created.stdout.splitlines()) == 1
    as_key = {"AGENTPORT_API_KEY": key}
    before = await human.run("whoami", "--json", env=as_key)
    listed = await human.run("keys", "list", "--json")
    [key_id] = [k["id"] for k in listed.json() if key.startswith(k["key_prefix"]) and k["name"] == name]
    revoked = await human.run("keys", "revoke", key_id, "--json")
    after = await human.run("whoami", env=as_key)
    assert (before.code, revoked.code, after.code) == (0, 0, 1), (before, revoked, after)
    assert revoked.json() == {"id": key_id, "status": "revoked"}
    assert before.json()["actor"]["name"] == name
    assert "not valid" in after.stderr


async def test_an_api_key_cannot_read_the_logs(world: World) -> None:
    ran = await world.agent.run("logs")
    assert ran.code == 1
    assert ran.stderr.startswith("agentport: only a human can read the logs")
    assert "agentport login --email" in ran.stderr


async def test_human_sets_a_tools_mode_and_lists_show_it(world: World) -> None:
    human = await world.human(world.agent.home.parent / f"human-{world.nonce()}")

    async def send_email() -> dict[str, Any]:
        listed = await human.run("tools", "list", "--integration", "up", "--json")
        assert listed.code == 0, listed
        [tool] = [t for t in listed.json() if t["name"] == "send_email"]
        return dict(tool)

    # Whatever other tests did to the tool, it starts here from a mode other than the one the CLI sets.
    await set_mode(world.http, world.tenant, "up", "send_email", "allow")
    assert (await send_email())["mode"] == "allow"
    ran = await human.run("tools", "set-mode", "up", "send_email", "deny")
    assert ran.code == 0, ran
    assert ran.stdout == "up / send_email is now deny\n"
    tool = await send_email()
    assert tool["mode"] == tool["execution_mode"] == "deny"
