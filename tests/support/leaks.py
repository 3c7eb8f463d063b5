"""Searching everything AgentPort keeps for secrets that must not be there."""

from __future__ import annotations

import json

import asyncpg
import nats

from tests.support.stack import Stack


def leaked(text: str, secrets: set[str]) -> list[str]:
    """The secrets found in `text`, shortened so a failure does not print them whole."""
    return [s[:12] + "…" for s in secrets if s in text]


async def find_leaks(stack: Stack, secrets: set[str]) -> list[str]:
    """Where any secret appears: a stream message (events, key-value), a service log, or a database row."""
    found: list[str] = []
    env, ns = stack.env, stack.env["AGENTPORT_NAMESPACE"]
    nc = await nats.connect(env["NATS_URL"])
    try:
        js = nc.jetstream()
        checked = 0
        for info in await js.streams_info():
            if ns not in info.config.name and ns.upper() not in info.config.name:
                continue
            for seq in range(info.state.first_seq, info.state.last_seq + 1):
                try:
                    msg = await js.get_msg(info.config.name, seq)
                except nats.js.errors.NotFoundError:
                    continue
                body = (msg.data or b"").decode(errors="replace") + json.dumps(msg.headers or {})
                found += [f"stream {info.config.name} #{seq}: {s}" for s in leaked(body, secrets)]
                checked += 1
        assert checked > 20, "the streams hold the suite's events"
    finally:
        await nc.close()
    await stack.settled()  # the services have reacted to every event, and logged what they did
    logs = stack.logs()
    assert logs, "the services logged"
    found += [f"service logs: {s}" for s in leaked(logs, secrets)]
    conn = await asyncpg.connect(env["DATABASE_URL"])
    try:
        tables = await conn.fetch(
            "SELECT table_schema, table_name FROM information_schema.tables WHERE table_schema LIKE $1", ns + "_%"
        )
        assert len(tables) >= 8, "every service created its tables"
        for t in tables:
            rows = await conn.fetch(f'SELECT * FROM "{t["table_schema"]}"."{t["table_name"]}"')
            found += [f"table {t['table_name']}: {s}" for s in leaked(repr([dict(r) for r in rows]), secrets)]
    finally:
        await conn.close()
    return found
