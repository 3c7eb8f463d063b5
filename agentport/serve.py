"""`agentport serve NAME|all`: one service in this process, or every service as a process tree."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from agentport.infra import discovered, ensure_infra
from agentport.services import SERVICE_NAMES, service_module
from shared.runner import run_until_signalled
from shared.settings import GatewaySettings


def serve_one(name: str, data_dir: Path) -> int:
    """Run a single service until SIGTERM/SIGINT."""
    module = service_module(name)
    os.environ.update({k: v for k, v in discovered(data_dir).items() if k not in os.environ})
    asyncio.run(run_until_signalled(module.spec(), module.settings()))
    return 0


def serve_all(data_dir: Path) -> int:
    """Start embedded NATS/PostgreSQL if needed, then each service as a child; Ctrl-C stops them all."""
    env_urls, infra = ensure_infra(data_dir)
    gateway = GatewaySettings()
    env = {**os.environ, **env_urls}
    children: dict[str, subprocess.Popen[bytes]] = {}
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        # Each service's /health, /ready and /metrics on the ports after the gateway's (or after
        # AGENTPORT_HEALTH_PORT when the operator moves them).
        first_health = int(os.environ.get("AGENTPORT_HEALTH_PORT") or gateway.port)
        ready_urls = [f"http://{gateway.host}:{gateway.port}/ready"]
        for offset, name in enumerate(SERVICE_NAMES):
            child_env = dict(env)
            if name != "gateway":
                child_env["AGENTPORT_HEALTH_PORT"] = str(first_health + offset)
                ready_urls.append(f"http://127.0.0.1:{first_health + offset}/ready")
            children[name] = subprocess.Popen(  # noqa: S603
                [sys.executable, "-m", "agentport", "serve", name], env=child_env, start_new_session=True
            )
        base = gateway.base_url.rstrip("/")
        failed = _wait_ready(ready_urls, children)
        if failed is not None:
            print(f"agentport: {failed}; stopping", file=sys.stderr, flush=True)
            return 1
        print(
            f"AgentPort is running.\n  Web UI:        {base}/\n  MCP endpoint:  {base}/mcp\n"
            f"  Data:          {data_dir.resolve()}\nPress Ctrl-C to stop.",
            flush=True,
        )
        while not stopping:
            for name, child in children.items():
                if child.poll() is not None:
                    print(
                        f"agentport: the {name} service exited with code {child.returncode}; stopping",
                        file=sys.stderr,
                        flush=True,
                    )
                    return 1
            time.sleep(0.2)
    finally:
        for child in children.values():
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for child in children.values():
            try:
                child.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
        if infra is not None:
            infra.stop()
    return 0


def _wait_ready(urls: list[str], children: dict[str, subprocess.Popen[bytes]], timeout: float = 120.0) -> str | None:
    """Block until every service answers /ready, so the printed URLs work when they appear; else say why not."""
    deadline = time.monotonic() + timeout
    waiting = list(urls)
    while waiting and time.monotonic() < deadline:
        for name, child in children.items():
            if child.poll() is not None:
                return f"the {name} service exited with code {child.returncode} while starting"
        waiting = [url for url in waiting if not _answers_ready(url)]
        if waiting:
            time.sleep(0.2)
    return f"not ready after {timeout:g} seconds: {', '.join(waiting)}" if waiting else None


def _answers_ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310
            return bool(response.status == 200)
    except OSError:
        return False
