"""What commands print: aligned tables for people, one JSON document with `--json`, a spinner while waiting."""

from __future__ import annotations

import itertools
import json
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any

MAX_CELL = 60


def emit_json(data: Any) -> None:
    """Exactly one JSON document on stdout."""
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


def emit_json_line(data: Any) -> None:
    """One JSON object per line, for streams such as `logs --follow --json`."""
    sys.stdout.write(json.dumps(data, default=str) + "\n")
    sys.stdout.flush()


def cell(value: Any, limit: int = MAX_CELL) -> str:
    """A value as one short line of a table."""
    if value is None:
        text = "-"
    elif isinstance(value, bool):
        text = "yes" if value else "no"
    elif isinstance(value, list | tuple):
        text = ", ".join(str(v) for v in value) or "-"
    elif isinstance(value, dict):
        text = json.dumps(value, separators=(",", ":"))
    else:
        text = str(value)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def when(value: Any) -> Any:
    """An ISO timestamp as local time to the second, for tables; anything else as it is."""
    if not isinstance(value, str):
        return value
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def table(rows: Iterable[Sequence[Any]], headers: Sequence[str], empty: str) -> None:
    """An aligned table with a header row, or the `empty` sentence when there are no rows."""
    cells = [[cell(v) for v in row] for row in rows]
    if not cells:
        print(empty)
        return
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    for row in [list(headers), *cells]:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def fields(pairs: Iterable[tuple[str, Any]]) -> None:
    """`label: value` lines, aligned, skipping empty values."""
    shown = [(label, value) for label, value in pairs if value not in (None, "", [], {})]
    width = max((len(label) for label, _ in shown), default=0)
    for label, value in shown:
        text = value if isinstance(value, str) else json.dumps(value, default=str)
        print(f"{(label + ':').ljust(width + 1)} {text}")


def note(message: str) -> None:
    """A line for the person at the terminal, on stderr so stdout stays the command's answer."""
    print(message, file=sys.stderr, flush=True)


class Spinner:
    """A one-line spinner on stderr while a long wait runs; silent unless stderr is a terminal."""

    FRAMES = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"

    def __init__(self, message: str) -> None:
        self.message = message
        self.started = time.monotonic()
        self.enabled = sys.stderr.isatty()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Spinner:
        if self.enabled:
            self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self.enabled:
            self._stop.set()
            self._thread.join()
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()

    def _run(self) -> None:
        for frame in itertools.cycle(self.FRAMES):
            elapsed = int(time.monotonic() - self.started)
            sys.stderr.write(f"\r\033[K{frame} {self.message} ({elapsed // 60}:{elapsed % 60:02d})")
            sys.stderr.flush()
            if self._stop.wait(0.1):
                return
