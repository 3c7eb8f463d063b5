"""Error-level lines in the services' logs, and the error logs a test declares it causes on purpose.

The services log with structlog (shared/logging.py), one line per entry: JSON (`{"event": …, "level": …,
"timestamp": …}`) or the console renderer (`<timestamp> [<level>   ] <event>   key=value …`). Libraries log
through the same renderer, so their errors count too.

A test that makes a service log an error on purpose says so with a marker, naming each event (a glob: a
library's message can carry an address) and why:

    @pytest.mark.expects_error_logs("bus.handler_failed", reason="the handler's database is down")

Such lines are then accepted while that test runs, and for `grace` seconds after it ends (a redelivery or a
retry can log after the test has its answer)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import pytest

MARKER = "expects_error_logs"
MARKER_HELP = (
    f"{MARKER}(*events, reason, grace=10.0): the test makes services log these error events on purpose "
    "(globs over the event name); the suite-end log check accepts them during the test and `grace` seconds after"
)
ERROR_LEVELS = frozenset({"error", "critical", "exception", "fatal"})
DEFAULT_GRACE_SECONDS = 10.0
_CONSOLE = re.compile(r"^(?P<at>\d{4}-\d\d-\d\dT\S+) \[(?P<level>[a-z]+)\s*\] (?P<rest>.*)$")
_CONSOLE_PAIRS = re.compile(r"\s+(?=[A-Za-z_][\w.]*=)")


@dataclass(frozen=True)
class Entry:
    """One structured log line of one service."""

    service: str
    level: str
    event: str
    at: datetime | None
    text: str

    @property
    def is_error(self) -> bool:
        return self.level in ERROR_LEVELS

    def __str__(self) -> str:
        return f"{self.service}: {self.text[:600]}"


def entries(path: Path) -> Iterator[Entry]:
    """The structured lines of a service's log file (JSON or console); other lines (tracebacks, prints) are
    skipped."""
    service = path.stem
    for text in path.read_text(errors="replace").splitlines():
        parsed = _parse(text)
        if parsed is not None:
            level, event, at = parsed
            yield Entry(service, level, event, at, text)


def _parse(text: str) -> tuple[str, str, datetime | None] | None:
    if text.startswith("{"):
        try:
            data: Any = json.loads(text)
        except ValueError:
            return None
        if not isinstance(data, dict) or "level" not in data:
            return None
        return str(data["level"]).lower(), str(data.get("event", "")), _time(data.get("timestamp"))
    matched = _CONSOLE.match(text)
    if matched is None:
        return None
    event = _CONSOLE_PAIRS.split(matched["rest"], maxsplit=1)[0].strip()
    return matched["level"], event, _time(matched["at"])


def _time(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        return None


@dataclass(frozen=True)
class Expected:
    """Error events one test declared it causes, and when it ran (UTC, grace included)."""

    test: str
    events: tuple[str, ...]
    reason: str
    start: datetime
    end: datetime

    def covers(self, entry: Entry) -> bool:
        return (
            entry.at is not None
            and self.start <= entry.at <= self.end
            and any(fnmatchcase(entry.event, pattern) for pattern in self.events)
        )


EXPECTED: pytest.StashKey[list[Expected]] = pytest.StashKey()


def now() -> datetime:
    return datetime.now(UTC)


def declared(item: pytest.Item, start: datetime) -> Expected | None:
    """What a test that just ran declared with the marker, with its time window; None without the marker."""
    marker = item.get_closest_marker(MARKER)
    if marker is None:
        return None
    reason = marker.kwargs.get("reason")
    if not marker.args or not reason:
        raise pytest.UsageError(f"{item.nodeid}: {MARKER} needs the event names and a reason")
    grace = float(marker.kwargs.get("grace", DEFAULT_GRACE_SECONDS))
    return Expected(item.nodeid, tuple(marker.args), str(reason), start, now() + timedelta(seconds=grace))


def unexpected_errors(log_dir: Path, expected: list[Expected]) -> tuple[list[Entry], dict[str, int]]:
    """The error lines of every service log in `log_dir` that no test declared, and how many structured entries
    each log held."""
    read: dict[str, int] = {}
    found: list[Entry] = []
    for path in sorted(log_dir.glob("*.log")):
        read[path.stem] = 0
        for entry in entries(path):
            read[path.stem] += 1
            if entry.is_error and not any(e.covers(entry) for e in expected):
                found.append(entry)
    return found, read
