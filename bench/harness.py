"""Shared set-up for benchmarks: the real stack on real NATS and PostgreSQL, like the tests."""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

from tests.support.stack import Stack, isolated_stack


@contextlib.asynccontextmanager
async def running_stack(extra_env: dict[str, str] | None = None) -> AsyncIterator[Stack]:
    """Every service on a private namespace and database (embedded servers if none are configured)."""
    workdir = Path(tempfile.mkdtemp(prefix="agentport-bench-"))
    nats_url, db_url = os.environ.get("NATS_URL"), os.environ.get("DATABASE_URL")
    infra = None
    if not (nats_url and db_url):
        from shared.embedded import start_embedded

        infra = await asyncio.to_thread(start_embedded, workdir / "embedded", nats=not nats_url, postgres=not db_url)
        nats_url, db_url = nats_url or infra.nats_url, db_url or infra.database_url
    assert nats_url and db_url
    try:
        async with isolated_stack(
            nats_url, db_url, workdir, prefix="b", extra_env={"AGENTPORT_LOG_LEVEL": "warning", **(extra_env or {})}
        ) as stack:
            yield stack
    finally:
        if infra is not None:
            infra.stop()


def describe(samples_ms: list[float]) -> str:
    ordered = sorted(samples_ms)
    p95 = ordered[int(len(ordered) * 0.95) - 1]
    return f"p50 {statistics.median(ordered):7.2f} ms   p95 {p95:7.2f} ms   n={len(ordered)}"
