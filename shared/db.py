"""PostgreSQL access: one pool per service, bound to the schema that service alone writes."""

from __future__ import annotations

import asyncio
import json
import traceback
from pathlib import Path
from typing import Any

import asyncpg

from shared.errors import Unavailable


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
    await conn.set_type_codec("json", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def connect(database_url: str, schema: str, ddl: Path | None, *, wait_seconds: float = 30.0) -> asyncpg.Pool:
    """Open a pool whose search_path is `schema`, creating the schema and applying its DDL."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_seconds
    while True:
        try:
            pool = await asyncpg.create_pool(
                database_url,
                min_size=1,
                max_size=10,
                init=_init_connection,
                server_settings={"search_path": schema, "application_name": f"agentport-{schema}"},
            )
            break
        except (OSError, asyncpg.PostgresError) as exc:
            if loop.time() > deadline:
                raise Unavailable(f"cannot reach PostgreSQL: {exc}") from exc
            await asyncio.sleep(0.5)
    assert pool is not None
    async with pool.acquire() as conn:
        # Serialises concurrent first starts of replicas applying the same DDL.
        await conn.execute("SELECT pg_advisory_lock(hashtext($1))", schema)
        try:
            await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            if ddl is not None:
                await conn.execute(await asyncio.to_thread(ddl.read_text))
        finally:
            await conn.execute("SELECT pg_advisory_unlock(hashtext($1))", schema)
    return pool


def row_dict(record: asyncpg.Record | None) -> dict[str, Any] | None:
    """A record as a plain dict (None stays None)."""
    return dict(record) if record is not None else None


_DOWN = (
    asyncpg.PostgresConnectionError,  # class 08, and a connection that died mid-query
    asyncpg.CannotConnectNowError,  # starting up or shutting down
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.TooManyConnectionsError,
)
_CLOSED_MESSAGES = (
    "pool is closing",
    "pool is closed",
    "connection is closed",
    "connection was closed",
    "another operation",  # InternalClientError: a connection broken by a shutdown in the middle of a query
)


def unreachable(exc: BaseException) -> bool:
    """Whether `exc` (or what caused it) says PostgreSQL cannot be reached now, rather than a bug of ours."""
    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            return False
        if isinstance(seen, _DOWN):
            return True
        closed = isinstance(seen, asyncpg.InterfaceError | asyncpg.InternalClientError)
        if closed and any(m in str(seen) for m in _CLOSED_MESSAGES):
            return True
        if isinstance(seen, OSError | TimeoutError) and _raised_in_asyncpg(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _raised_in_asyncpg(exc: BaseException) -> bool:
    return any(
        str(frame.f_globals.get("__name__", "")).startswith("asyncpg")
        for frame, _ in traceback.walk_tb(exc.__traceback__)
    )
