"""The executor's pool of upstream sessions, against the test's real stdio server (no bus needed)."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any

from services.executor.limits import Limits
from services.executor.stdio import StdioServer
from services.executor.upstream import Target, UpstreamPool
from shared.netguard import AllowList
from tests.integrations.stdio_config import CRASH_RECORD_ENV, STDIO_SCRIPT

KEY = ("org-test", "local-echo")
LIMITS = Limits(timeout=20.0, max_bytes=1024 * 1024)


def _target(env: dict[str, str] | None = None) -> Target:
    server = StdioServer(
        id="local-echo", name="Local echo", command=sys.executable, args=(str(STDIO_SCRIPT),), env=env or {}
    )
    return Target(url="", headers={}, fingerprint="stdio:local-echo", stdio=server.parameters(None))


async def _echo(pool: UpstreamPool, text: str, call_id: str, target: Target | None = None) -> dict[str, Any]:
    result = await pool.call_tool(KEY, target or _target(), "echo", {"text": text}, LIMITS, call_id)
    assert not result.is_error, result
    assert result.structured_content is not None
    return dict(result.structured_content)


async def test_a_local_server_killed_while_idle_is_restarted_before_the_next_call() -> None:
    """The kill is not yet seen when the next call is dispatched: the pool must notice before sending it."""
    pool = UpstreamPool(AllowList(), connect_timeout=20.0)
    try:
        first = await _echo(pool, "a", "call-1")
        same = await _echo(pool, "b", "call-2")
        assert same["pid"] == first["pid"], "an idle, live session is reused"

        os.kill(first["pid"], signal.SIGKILL)
        # No await between the kill and the call: the session still looks alive to the pool.
        again = await _echo(pool, "c", "call-3")
        assert again["text"] == "c"
        assert again["pid"] != first["pid"]
    finally:
        await pool.close()


async def test_a_call_that_kills_its_local_server_fails_and_is_not_resent(tmp_path: Path) -> None:
    crashes = tmp_path / "crashes"
    target = _target({CRASH_RECORD_ENV: str(crashes)})
    pool = UpstreamPool(AllowList(), connect_timeout=20.0)
    try:
        before = await _echo(pool, "a", "call-1", target)
        try:
            await pool.call_tool(KEY, target, "crash", {}, LIMITS, "call-2")
        except Exception as exc:
            assert "closed" in str(exc).lower(), exc
        else:
            raise AssertionError("a call whose server died mid-call must fail, never be retried")
        after = await _echo(pool, "b", "call-3", target)
        assert after["pid"] != before["pid"]
    finally:
        await pool.close()
    # Each server process that ran `crash` left one line: a resent call would have crashed a second one.
    ran = crashes.read_text().splitlines() if crashes.exists() else []
    assert ran == [str(before["pid"])], f"the crashing call reached a server {len(ran)} times: {ran}"
