"""HTTP edges of the gateway: errors as JSON (never a stack trace), request bodies, safe redirects."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import unquote

import structlog
from aiohttp import web

from shared.db import unreachable as database_unreachable
from shared.errors import AgentPortError, BadRequest, PayloadTooLarge, Unauthenticated, Unavailable
from shared.events import contains_nul
from shared.metrics import HTTP_REQUESTS
from shared.runner import CTX_KEY

log = structlog.get_logger("gateway.http")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

NUL_REFUSED = "the input must not contain NUL characters (U+0000); no tool, id or filter can store them"
HOME = "/"
NEXT_MAX_LENGTH = 2000
_UNSAFE_IN_PATH = re.compile(r"[\x00-\x1f\x7f-\x9f\\]")
DATABASE_DOWN = "the database is not reachable right now; try again in a moment"


def error_response(exc: AgentPortError, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(exc.to_body(), status=exc.status, headers=headers)


def resource_metadata_url(request: web.Request) -> str:
    base = request.app[CTX_KEY].settings.base_url.rstrip("/")  # type: ignore[attr-defined]
    return f"{base}/.well-known/oauth-protected-resource/mcp"


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure becomes `{"error": {"code", "message"}}` with a fitting status."""
    route = request.match_info.route.resource.canonical if request.match_info.route.resource else "unmatched"
    try:
        response = await handler(request)
    except AgentPortError as exc:
        headers = None
        if isinstance(exc, Unauthenticated) and request.path.startswith("/mcp"):
            challenge = f'Bearer resource_metadata="{resource_metadata_url(request)}"'
            if exc.code == "invalid_token":
                challenge += ', error="invalid_token"'
            headers = {"WWW-Authenticate": challenge}
        response = error_response(exc, headers)
    except web.HTTPRequestEntityTooLarge:
        limit = f"{request.client_max_size / 1024 / 1024:g} MiB"
        response = error_response(PayloadTooLarge(f"the request body is larger than the {limit} this server accepts"))
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status, "http_error")
        response = web.json_response({"error": {"code": code, "message": exc.reason}}, status=exc.status)
    except Exception as exc:
        if not database_unreachable(exc):
            log.exception("http.unhandled_error", path=request.path, method=request.method)
            response = web.json_response({"error": {"code": "internal", "message": "internal error"}}, status=500)
        else:
            log.warning("http.database_unavailable", path=request.path, error=f"{type(exc).__name__}: {exc}")
            response = error_response(Unavailable(DATABASE_DOWN), {"Retry-After": "5"})
    HTTP_REQUESTS.labels(route, str(response.status)).inc()
    return response


@web.middleware
async def plain_text(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A NUL character in a path or query parameter is a 400: no id or filter has one, and PostgreSQL cannot
    store it."""
    for where, params in (("path", request.match_info), ("query", request.query)):
        for name, value in params.items():
            if "\x00" in value:
                raise BadRequest(f"{where} parameter {name!r} must not contain NUL characters")
    return await handler(request)


async def json_body(request: web.Request) -> dict[str, Any]:
    """The request's JSON object body, or a clear 400."""
    if not request.can_read_body:
        return {}
    try:
        data = json.loads(await request.read() or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise BadRequest("the body must be a JSON object")
    if contains_nul(data):
        raise BadRequest(NUL_REFUSED)
    return data


def str_field(data: dict[str, Any], name: str, *, required: bool = True) -> str | None:
    value = data.get(name)
    if value is None:
        if required:
            raise BadRequest(f"missing field {name!r}")
        return None
    if not isinstance(value, str):
        raise BadRequest(f"field {name!r} must be a string")
    return value


def agreed(given: dict[str, Any]) -> Any:
    """One value that may come under several names: the one given, or None; different values are a 400."""
    present = {name: value for name, value in given.items() if value is not None}
    values = list(present.values())
    if any(value != values[0] for value in values[1:]):
        raise BadRequest(f"{' and '.join(map(repr, present))} differ; send one of them")
    return values[0] if values else None


def safe_next(value: object) -> str:
    """Where a browser goes after a form: a path on this site as given (trimmed), else the home page.

    The one check for every return path (`next`). Browsers drop tabs and newlines from a Location and read a
    backslash as a slash, so `/<tab>/evil` or `/<backslash>evil` would mean the host `evil`: the value must be
    printable ASCII without backslashes, and its path, also once (or more) percent-decoded, must start with a
    single `/` and hold no control character or backslash.
    """
    if not isinstance(value, str):
        return HOME
    value = value.strip()
    if not value or len(value) > NEXT_MAX_LENGTH or not all("!" <= ch <= "~" for ch in value) or "\\" in value:
        return HOME
    path = re.split(r"[?#]", value, maxsplit=1)[0]
    for _ in range(4):
        if not path.startswith("/") or path.startswith("//") or _UNSAFE_IN_PATH.search(path):
            return HOME
        decoded = unquote(path)
        if decoded == path:
            return value
        path = decoded
    return HOME
