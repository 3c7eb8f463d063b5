"""Query parameters of the REST API, read and checked before anything is forwarded: a bad value is a 400 that
names the parameter and says why, never a 500 from a service or the database further in."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from services.gateway.http import agreed
from shared.errors import BadRequest

MAX_LIMIT = 500
MAX_OFFSET = 10**9  # Far past any page; keeps the number within PostgreSQL's bigint.


def _refuse(name: str, why: str) -> BadRequest:
    return BadRequest(f"query parameter {name!r} {why}")


def text(request: web.Request, name: str) -> str | None:
    """A text parameter; absent or empty is None. (`http.plain_text` has refused NUL characters already.)"""
    return request.query.get(name) or None


def texts(request: web.Request, names: tuple[str, ...]) -> dict[str, str]:
    """The given text parameters that are present."""
    return {name: value for name in names if (value := text(request, name)) is not None}


def whole(request: web.Request, name: str, default: int, *, minimum: int, maximum: int | None = None) -> int:
    """A whole number of at least `minimum`; one above `maximum` is lowered to it."""
    raw = text(request, name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _refuse(name, f"must be a whole number, not {raw[:40]!r}") from None
    if value < minimum:
        raise _refuse(name, f"must be at least {minimum}, not {value}")
    return value if maximum is None else min(value, maximum)


def moment(request: web.Request, name: str) -> str | None:
    """An ISO 8601 date or time (read as UTC without an offset), passed on in full ISO form."""
    raw = text(request, name)
    if raw is None:
        return None
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise _refuse(name, f"must be an ISO 8601 date or time like 2026-05-01T09:30:00Z, not {raw[:40]!r}") from None
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()


def moments(request: web.Request, names: tuple[str, ...]) -> dict[str, str]:
    """The given time parameters that are present."""
    return {name: value for name in names if (value := moment(request, name)) is not None}


def page(request: web.Request, default_limit: int) -> tuple[int, int]:
    """`limit` (1 to MAX_LIMIT) and `offset` (0 or more); a larger value is lowered to the maximum."""
    limit = whole(request, "limit", default_limit, minimum=1, maximum=MAX_LIMIT)
    return limit, whole(request, "offset", 0, minimum=0, maximum=MAX_OFFSET)


def seconds(request: web.Request, body: dict[str, Any], default: float) -> float:
    """A long-poll budget from `?timeout=` or the body's `timeout_seconds` (the same if both), bounded by `default`."""
    given = {"timeout": request.query.get("timeout"), "timeout_seconds": body.get("timeout_seconds")}
    value = agreed({name: _positive(name, raw) for name, raw in given.items() if raw is not None})
    return default if value is None else min(value, default)


def _positive(name: str, raw: Any) -> float:
    try:
        value = math.nan if isinstance(raw, bool) else float(raw)
    except (TypeError, ValueError):
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise BadRequest(f"{name} must be a positive number of seconds")
    return value
