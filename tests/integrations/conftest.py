"""Fixtures for integration kinds: the operator's local stdio server configured on the executor, and helpers
that wait on what a user can observe."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import nats
import pytest

from tests.integrations.stdio_config import LOCAL_ID, stdio_servers_config
from tests.support.stack import Stack

T = TypeVar("T")


async def _announced(stack: Stack) -> list[dict[str, Any]]:
    nc = await nats.connect(stack.env["NATS_URL"])
    try:
        kv = await nc.jetstream().key_value(f"{stack.env['AGENTPORT_NAMESPACE']}_keys")
        entry = await kv.get("stdio_servers")
        return list(json.loads(entry.value or b"[]"))
    except Exception:
        return []
    finally:
        await nc.close()


@pytest.fixture(scope="session")
async def local_server(stack: Stack) -> str:
    """The executor runs the test's stdio server for orgs that install it.

    If the stack was not started with it configured, the operator's file is written under the data directory
    and the executor restarted, as an operator would.
    """
    if any(e.get("id") == LOCAL_ID for e in await _announced(stack)):
        return LOCAL_ID
    data_dir = Path(stack.env["AGENTPORT_DATA_DIR"])
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "stdio_servers.json").write_text(json.dumps(stdio_servers_config()))
    stack.stop("executor")
    stack.start("executor")
    await stack.wait_ready(stack.urls["executor"])
    await eventually(lambda: _announced(stack), lambda found: any(e.get("id") == LOCAL_ID for e in found))
    return LOCAL_ID


async def eventually(
    probe: Callable[[], Awaitable[T]], ok: Callable[[T], bool], timeout: float = 20.0, every: float = 0.1
) -> T:
    """Probe until `ok` holds, failing with the last value seen after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if ok(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s; last value: {value!r}")
        await asyncio.sleep(every)
