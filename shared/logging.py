"""structlog set-up: key-value events, JSON in production, readable on a terminal."""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog
from aiohttp.http_exceptions import HttpProcessingError

REDACTED = "[redacted]"
_SECRET_KEYS = ("token", "password", "secret", "authorization", "api_key", "credential", "cookie")


def _redact(_: Any, __: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """Last line of defence: values under secret-sounding keys never reach a log line."""
    for key in list(event_dict):
        lowered = key.lower()
        if any(marker in lowered for marker in _SECRET_KEYS) and not lowered.endswith(("_id", "_count")):
            event_dict[key] = REDACTED
    return event_dict


class _RequestBytesFilter(logging.Filter):
    """aiohttp reports a request it could not parse with the bytes it choked on (a header line, an API key in it):
    the log keeps that it happened and why, never what was sent."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            record.msg, record.args = "http.bad_request", ()
            record.levelno, record.levelname = logging.WARNING, "WARNING"  # the client's fault, not ours
            record.exc_info, record.exc_text, record.stack_info = None, None, None
            record.http_status, record.http_error = exc.code, type(exc).__name__
        return True


def configure(service: str, level: str = "info", fmt: str = "console") -> None:
    """Install structlog and route stdlib logging (libraries) through the same output."""
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        numeric = logging.INFO
    renderer: Any = (
        structlog.processors.JSONRenderer() if fmt == "json" else structlog.dev.ConsoleRenderer(colors=False)
    )
    shared_processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _redact,
    ]
    structlog.configure(
        processors=[*shared_processors, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.bind_contextvars(service=service)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                renderer,
            ],
            foreign_pre_chain=[*shared_processors, structlog.stdlib.ExtraAdder(allow=("http_status", "http_error"))],
        )
    )
    server = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, _RequestBytesFilter) for f in server.filters):
        server.addFilter(_RequestBytesFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(numeric, logging.INFO))
    for noisy in ("httpx", "httpx2", "httpcore", "mcp", "aiohttp.access", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
