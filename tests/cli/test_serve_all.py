"""`agentport serve all`: every service as one process tree, announced only once it answers, stopped by
Ctrl-C with exit 0, and exit 1 with the reason when a service cannot run."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.support.stack import fresh_namespace, stack_env
from tests.support.upstream import free_port


@pytest.fixture
async def serve_env(infra: dict[str, str], tmp_path: Path) -> AsyncIterator[dict[str, str]]:
    async with fresh_namespace(infra["NATS_URL"], infra["DATABASE_URL"], prefix="s") as (ns, db):
        env = stack_env(ns, infra["NATS_URL"], db, tmp_path)
        port = free_port()
        env.update(AGENTPORT_PORT=str(port), AGENTPORT_BASE_URL=f"http://127.0.0.1:{port}")
        yield env


async def _serve_all(env: dict[str, str], cwd: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "agentport",
        "serve",
        "all",
        env=env,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def test_serve_all_announces_the_urls_once_ready_and_ctrl_c_stops_it(
    serve_env: dict[str, str], tmp_path: Path
) -> None:
    proc = await _serve_all(serve_env, tmp_path)
    assert proc.stdout is not None
    try:
        first = (await asyncio.wait_for(proc.stdout.readline(), 90)).decode()
        assert first.strip() == "AgentPort is running.", first
        lines = [(await proc.stdout.readline()).decode() for _ in range(2)]
        base = serve_env["AGENTPORT_BASE_URL"]
        assert f"{base}/mcp" in lines[1], lines
        async with httpx.AsyncClient(base_url=base) as http:
            ready = await http.get("/ready")
            assert ready.status_code == 200 and ready.json()["service"] == "gateway", ready.text
            assert (await http.post("/mcp", json={})).status_code == 401
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)
    await asyncio.wait_for(proc.wait(), 60)
    assert proc.returncode == 0


async def test_serve_all_exits_1_and_says_which_service_could_not_start(
    serve_env: dict[str, str], tmp_path: Path
) -> None:
    proc = await _serve_all({**serve_env, "AGENTPORT_STDIO_SERVERS": json.dumps([{"id": "Bad Id"}])}, tmp_path)
    out, err = await asyncio.wait_for(proc.communicate(), 90)
    assert proc.returncode == 1, (out, err)
    assert b"AgentPort is running" not in out
    assert "the executor service exited with code" in err.decode()
    assert "Traceback" not in err.decode().split("agentport: the executor service")[-1]
