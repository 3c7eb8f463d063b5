"""PostgreSQL access: one pool per service, bound to the schema that service alone writes."""

from __future__ import annotations

import asyncio
import json
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
