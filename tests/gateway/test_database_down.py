"""When PostgreSQL cannot be reached, the gateway answers 503 `unavailable` with a clear message, never a 500:
a closed or closing pool, a refused connection, a connection the server ended, too many connections, and a
whole gateway whose database went away (and came back). A real bug in a query stays a 500."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from services.gateway.http import errors
from tests.support.relay import Relay
from tests.support.stack import Stack, fresh_namespace, pick_port, stack_env
from tests.support.upstream import free_port


@contextlib.asynccontextmanager
async def gateway_edge(work: Callable[[], Awaitable[Any]]) -> AsyncIterator[httpx.AsyncClient]:
    """An aiohttp app with the gateway's error middleware whose one route runs `work` against the database."""

    async def probe(_: web.Request) -> web.Response:
        return web.json_response({"result": await work()})

    app = web.Application(middlewares=[errors])
    app.router.add_get("/probe", probe)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        async with httpx.AsyncClient(base_url=str(server.make_url("")), timeout=30) as client:
            yield client
    finally:
        await server.close()


def assert_unavailable(r: httpx.Response) -> None:
    assert r.status_code == 503, (r.status_code, r.text)
    error = r.json()["error"]
    assert error["code"] == "unavailable" and "database" in error["message"], error


@pytest.fixture
def database_url(infra: dict[str, str]) -> str:
    return infra["DATABASE_URL"]


async def test_a_closed_pool_is_a_503(database_url: str) -> None:
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    await pool.close()
    async with gateway_edge(lambda: pool.fetchval("SELECT 1")) as client:
        assert_unavailable(await client.get("/probe"))


async def test_a_closing_pool_is_a_503(database_url: str) -> None:
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    held = await pool.acquire()
    closing = asyncio.create_task(pool.close())
    await asyncio.sleep(0)  # close() marks the pool closing at once, then waits for `held`
    try:
        async with gateway_edge(lambda: pool.fetchval("SELECT 1")) as client:
            assert_unavailable(await client.get("/probe"))
    finally:
        await pool.release(held)
        await closing


async def test_a_refused_connection_is_a_503(database_url: str) -> None:
    parts = urlsplit(database_url)
    nowhere = urlunsplit(parts._replace(netloc=f"{parts.username or 'postgres'}@127.0.0.1:{free_port()}"))
    pool = await asyncpg.create_pool(nowhere, min_size=0, max_size=1)
    try:
        async with gateway_edge(lambda: pool.fetchval("SELECT 1")) as client:
            assert_unavailable(await client.get("/probe"))
    finally:
        await pool.close()


async def test_a_connection_the_server_ended_mid_query_is_a_503(database_url: str) -> None:
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=1)
    admin = await asyncpg.connect(database_url)
    backend: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def work() -> Any:
        async with pool.acquire() as conn:
            backend.set_result(conn.get_server_pid())
            return await conn.fetchval("SELECT pg_sleep(60)")

    try:
        async with gateway_edge(work) as client:
            asking = asyncio.create_task(client.get("/probe"))
            pid = await asyncio.wait_for(backend, 10)
            sleeping = "SELECT count(*) FROM pg_stat_activity WHERE pid = $1 AND wait_event = 'PgSleep'"
            while not await admin.fetchval(sleeping, pid):
                await asyncio.sleep(0.02)
            await admin.execute("SELECT pg_terminate_backend($1)", pid)
            assert_unavailable(await asyncio.wait_for(asking, 20))
    finally:
        await admin.close()
        await pool.close()


async def test_too_many_connections_is_a_503(database_url: str) -> None:
    role = "ap_limited_" + secrets.token_hex(4)
    admin = await asyncpg.connect(database_url)
    await admin.execute(f'CREATE ROLE "{role}" LOGIN CONNECTION LIMIT 0')
    parts = urlsplit(database_url)
    limited = urlunsplit(parts._replace(netloc=f"{role}@{parts.hostname}:{parts.port or 5432}"))
    pool = await asyncpg.create_pool(limited, min_size=0, max_size=1)
    try:
        async with gateway_edge(lambda: pool.fetchval("SELECT 1")) as client:
            assert_unavailable(await client.get("/probe"))
    finally:
        await pool.close()
        await admin.execute(f'DROP ROLE "{role}"')
        await admin.close()


async def test_a_bug_in_a_query_is_still_a_500(database_url: str) -> None:
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=1)
    try:
        async with gateway_edge(lambda: pool.fetchval("SELEC 1")) as client:
            r = await client.get("/probe")
        assert (r.status_code, r.json()["error"]["code"]) == (500, "internal")
    finally:
        await pool.close()


# --- a whole gateway whose database goes away -----------------------------------------------------------------


async def test_a_gateway_whose_database_went_away_answers_503_and_recovers(
    infra: dict[str, str], tmp_path: Path
) -> None:
    async with fresh_namespace(infra["NATS_URL"], infra["DATABASE_URL"], prefix="pgdown") as (ns, own_db):
        relay = Relay.in_front_of(own_db)
        await relay.start()
        gateway = Stack(
            env=stack_env(ns, infra["NATS_URL"], relay.url_for(own_db), tmp_path),
            workdir=tmp_path,
            gateway_port=pick_port(),
        )
        gateway.start("gateway")
        try:
            await gateway.wait_ready(gateway.urls["gateway"])
            async with httpx.AsyncClient(base_url=gateway.base_url, timeout=30) as http:
                human = {"Authorization": "Bearer aps_" + secrets.token_hex(16)}
                agent = {"X-API-Key": "ap_" + secrets.token_hex(16)}
                assert (await http.get("/api/users/me", headers=human)).status_code == 401

                relay.cut(refuse_new=True)
                assert_unavailable(await http.get("/api/users/me", headers=human))
                assert_unavailable(await http.post("/mcp", json={}, headers=agent))
                assert_unavailable(
                    await http.post("/api/auth/token", data={"username": "a@b.example", "password": "x" * 12})
                )
                assert (await http.get("/ready")).status_code == 503

                await relay.restore()
                assert (await http.get("/api/users/me", headers=human)).status_code == 401
        finally:
            gateway.stop_all()
            await relay.close()
        assert "http.unhandled_error" not in gateway.logs()
