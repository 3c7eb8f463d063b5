"""The executor under faults: a PostgreSQL outage loses no outcome, a dead executor's calls end within seconds."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import signal
import time
from collections.abc import AsyncIterator

import httpx
import nats

from tests.e2e.conftest import World
from tests.support.agentport import set_mode
from tests.support.relay import Relay


async def _wait_upstream_saw(world: World, tag: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not world.upstream.count("slow", tag=tag):
        assert time.monotonic() < deadline, f"the upstream never saw {tag}"
        await asyncio.sleep(0.02)


async def _replace_executor(world: World, name: str, **env: str) -> None:
    """Run the stack's executor work on `name` alone (with its own environment)."""
    world.stack.stop("executor")
    world.stack.start(name, extra_env=env)
    await world.stack.wait_ready(world.stack.urls[name])


async def _restore_executor(world: World, name: str) -> None:
    if name in world.stack.procs:
        world.stack.stop(name)
    if "executor" not in world.stack.procs:
        world.stack.start("executor")
    await world.stack.wait_ready(world.stack.urls["executor"])


@contextlib.asynccontextmanager
async def executor_ack_wait(world: World, seconds: float) -> AsyncIterator[None]:
    """The executors' call consumer with another ack wait (the test stack's is short), for the block."""
    nc = await nats.connect(world.stack.env["NATS_URL"])
    js = nc.jetstream()
    namespace = world.stack.env["AGENTPORT_NAMESPACE"]
    stream, durable = f"{namespace.upper()}_EVENTS", f"{namespace}_executor-calls"
    config = (await js.consumer_info(stream, durable)).config
    before = config.ack_wait
    try:
        config.ack_wait = seconds
        await js.add_consumer(stream, config)
        yield
    finally:
        config.ack_wait = before
        await js.add_consumer(stream, config)
        await nc.close()


async def test_an_outcome_reached_during_a_database_outage_is_recorded_not_declared_unknown(
    world: World, http: httpx.AsyncClient
) -> None:
    await set_mode(http, world.tenant, "up", "slow", "allow")
    tag = "pg-outage-" + secrets.token_hex(4)
    async with Relay.in_front_of(world.stack.env["DATABASE_URL"]) as link:
        try:
            await _replace_executor(world, "executor#pg", DATABASE_URL=link.url_for(world.stack.env["DATABASE_URL"]))
            calling = asyncio.create_task(
                http.post(
                    "/api/tools/up/slow/call",
                    json={"arguments": {"seconds": 1, "tag": tag}, "timeout_seconds": 60},
                    headers=world.tenant.agent,
                )
            )
            await _wait_upstream_saw(world, tag)
            link.cut(refuse_new=True)  # the executor loses PostgreSQL while the upstream is still answering
            await asyncio.sleep(8)
            assert not calling.done()
            await link.restore()
            outcome = (await asyncio.wait_for(calling, 90)).json()
        finally:
            await _restore_executor(world, "executor#pg")
    assert outcome["status"] == "executed", outcome
    assert world.upstream.count("slow", tag=tag) == 1
    await world.stack.settled()
    story = (await http.get(f"/api/logs/{outcome['call_id']}", headers=world.tenant.human)).json()
    endings = [e["type"] for e in story["events"] if e["type"] in ("call.completed", "call.failed")]
    assert endings == ["call.completed"], endings


async def test_a_dead_executors_call_ends_within_seconds_not_after_the_ack_wait(
    world: World, http: httpx.AsyncClient
) -> None:
    await set_mode(http, world.tenant, "up", "slow", "allow")
    tag = "dead-executor-" + secrets.token_hex(4)
    async with executor_ack_wait(world, 30):
        await _kill_claimant_mid_call(world, http, tag)


async def _kill_claimant_mid_call(world: World, http: httpx.AsyncClient, tag: str) -> None:
    try:
        await _replace_executor(world, "executor#victim")
        calling = asyncio.create_task(
            http.post(
                "/api/tools/up/slow/call",
                json={"arguments": {"seconds": 40, "tag": tag}, "timeout_seconds": 60},
                headers=world.tenant.agent,
            )
        )
        await _wait_upstream_saw(world, tag)
        world.stack.start("executor")  # the survivor
        await world.stack.wait_ready(world.stack.urls["executor"])
        world.stack.stop("executor#victim", signal.SIGKILL)
        killed_at = time.monotonic()
        outcome = (await asyncio.wait_for(calling, 60)).json()
        noticed_after = time.monotonic() - killed_at
    finally:
        await _restore_executor(world, "executor#victim")
    assert outcome["status"] == "error", outcome
    assert outcome["error"]["code"] == "outcome_unknown", outcome
    # The message would only come back after the 30 s ack wait; the heartbeat tells within seconds.
    assert noticed_after < 20, f"the dead executor was noticed after {noticed_after:.1f}s"
    assert world.upstream.count("slow", tag=tag) == 1
