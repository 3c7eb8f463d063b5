"""`agentport tools call --idempotency-key`: the same key gives the first call's outcome; and the CLI's own retry
after a lost answer (under the key it made up) never calls twice."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from tests.cli.conftest import World
from tests.support.agentport import set_mode
from tests.support.upstream import free_port


async def test_the_same_key_gives_the_first_calls_outcome(world: World) -> None:
    await set_mode(world.http, world.tenant, world.integration, "echo", "allow")
    text, key = f"cli-once-{world.nonce()}", "k-" + secrets.token_hex(6)
    command = ("tools", "call", world.integration, "echo", "--arg", f"text={text}", "--idempotency-key", key)
    first = await world.agent.run(*command, "--json")
    again = await world.agent.run(*command, "--json")
    assert first.code == 0 and again.code == 0, (first, again)
    assert first.json()["call_id"] == again.json()["call_id"]
    assert again.json()["idempotency_key"] == key
    assert world.upstream.count("echo", text=text) == 1
    other = await world.agent.run(
        "tools", "call", world.integration, "echo", "--arg", "text=other", "--idempotency-key", key
    )
    assert other.code == 1, other
    assert key in other.stderr and "different call" in other.stderr


@contextlib.asynccontextmanager
async def losing_the_first_answer(target: str) -> AsyncIterator[str]:
    """A proxy to the gateway that passes the first tool call on, then hangs up instead of answering it."""
    lost: list[str] = []

    async def forward(request: web.Request) -> web.StreamResponse:
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
        async with (
            aiohttp.ClientSession() as session,
            session.request(
                request.method, target + request.path_qs, headers=headers, data=await request.read()
            ) as upstream,
        ):
            body = await upstream.read()
            if request.path.endswith("/call") and not lost:
                lost.append(request.path)
                assert request.transport is not None
                request.transport.abort()
                raise ConnectionResetError("answer lost on purpose")
            content_type = upstream.headers.get("Content-Type", "application/json")
            return web.Response(status=upstream.status, body=body, headers={"Content-Type": content_type})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", forward)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()
    assert lost, "the proxy never lost an answer"


async def test_a_retry_after_a_lost_answer_does_not_call_twice(world: World) -> None:
    await set_mode(world.http, world.tenant, world.integration, "echo", "allow")
    text = f"cli-lost-{world.nonce()}"
    async with losing_the_first_answer(world.stack.base_url) as proxy:
        ran = await world.agent.run(
            "tools",
            "call",
            world.integration,
            "echo",
            "--arg",
            f"text={text}",
            "--json",
            env={"AGENTPORT_URL": proxy, "AGENTPORT_API_KEY": world.tenant.api_key},
        )
    assert ran.code == 0, ran
    assert ran.json()["status"] == "executed" and ran.json()["replayed"] is True, ran
    assert world.upstream.count("echo", text=text) == 1
