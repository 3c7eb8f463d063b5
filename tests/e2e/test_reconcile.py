"""`agentport admin reconcile`: calls left open end once, from what the executor's claims know."""

from __future__ import annotations

import json
import secrets
import signal

import httpx

from tests.e2e.conftest import World
from tests.support.agentport import audited, run_cli, set_mode


async def test_a_call_nobody_ran_is_ended_lost_and_can_never_run_afterwards(
    world: World, http: httpx.AsyncClient
) -> None:
    await set_mode(http, world.tenant, "up", "echo", "allow")
    text = "reconcile-" + secrets.token_hex(4)
    world.stack.stop("policy", signal.SIGKILL)  # as if the store lost the call before it was ruled
    try:
        first = (
            await http.post(
                "/api/tools/up/echo/call?timeout=1", json={"arguments": {"text": text}}, headers=world.tenant.agent
            )
        ).json()
        assert first["status"] == "pending", first
        call_id = first["call_id"]
        await audited(http, world.tenant, call_id)

        dry = run_cli(world.stack, "admin", "reconcile", "--older-than", "0", "--dry-run", "--json")
        assert dry.returncode == 0, dry.stderr
        listed = {c["call_id"]: c for c in json.loads(dry.stdout)["calls"]}
        assert listed[call_id]["action"] == "none (dry run)"

        done = run_cli(world.stack, "admin", "reconcile", "--older-than", "0", "--json")
        assert done.returncode == 0, done.stderr
        actions = {c["call_id"]: c["action"] for c in json.loads(done.stdout)["calls"]}
        assert actions[call_id] == "lost"
    finally:
        world.stack.start("policy")
    outcome = (await http.post(f"/api/calls/{call_id}/await", headers=world.tenant.agent)).json()
    assert outcome["status"] == "error", outcome
    assert outcome["error"]["code"] == "lost"
    # Policy, back, now allows the call: the executor finds it settled and publishes that ending again.
    await world.stack.wait_ready(world.stack.urls["policy"])
    await world.stack.settled()
    story = await audited(http, world.tenant, call_id, finished=True)
    endings = [e["type"] for e in story["events"] if e["type"] in ("call.completed", "call.failed")]
    assert endings == ["call.failed"], endings
    assert world.upstream.count("echo", text=text) == 0
    again = run_cli(world.stack, "admin", "reconcile", "--older-than", "0", "--json")
    assert call_id not in {c["call_id"] for c in json.loads(again.stdout)["calls"]}
