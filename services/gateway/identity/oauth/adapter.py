"""aiohttp ↔ authlib: authlib's request objects built from an aiohttp request, its (status, body, headers)
answers turned into responses, and a bridge that runs authlib's synchronous hooks against our async database.

authlib runs in a worker thread; a hook that needs the database submits a coroutine to the event loop and
waits for it there, so the loop is never blocked and authlib never sees an `await`.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar
from urllib.parse import urlencode

from aiohttp import web
from authlib.oauth2.rfc6749 import JsonPayload, JsonRequest, OAuth2Payload, OAuth2Request
from multidict import CIMultiDict

T = TypeVar("T")
HOOK_TIMEOUT_SECONDS = 15.0
CORS = {"Access-Control-Allow-Origin": "*", "Access-Control-Allow-Headers": "Authorization, Content-Type"}

# authlib logs issued tokens at debug level; they must never reach a log line.
logging.getLogger("authlib").setLevel(logging.WARNING)


class Bridge:
    """Runs authlib in a worker thread; its hooks reach the event loop through `wait`."""

    def __init__(self, loop: asyncio.AbstractEventLoop, workers: int = 8) -> None:
        self.loop = loop
        # Its own threads: a hook waiting on the loop must never hold a thread the loop's own work needs.
        self._threads = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="authlib")

    def wait(self, coro: Coroutine[Any, Any, T]) -> T:
        """From authlib's thread: run `coro` on the event loop and return its result."""
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self.loop:
            coro.close()
            raise RuntimeError("authlib hooks must not run on the event loop thread")
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(HOOK_TIMEOUT_SECONDS)

    async def run(self, fn: Callable[[], T]) -> T:
        """Run synchronous authlib code off the event loop."""
        return await self.loop.run_in_executor(self._threads, contextvars.copy_context().run, fn)

    def close(self) -> None:
        self._threads.shutdown(wait=False, cancel_futures=True)


class _Payload(OAuth2Payload):  # type: ignore[misc]
    def __init__(self, params: list[tuple[str, str]]) -> None:
        self._data: dict[str, str] = {}
        self._datalist: dict[str, list[str]] = {}
        for key, value in params:
            self._data.setdefault(key, value)
            self._datalist.setdefault(key, []).append(value)

    @property
    def data(self) -> dict[str, str]:
        return self._data

    @property
    def datalist(self) -> dict[str, list[str]]:
        return self._datalist


class OAuthRequest(OAuth2Request):  # type: ignore[misc]
    """An authorization or token request with its parameters already read; `resource` is set once validated."""

    def __init__(self, method: str, uri: str, headers: CIMultiDict[str], params: list[tuple[str, str]]) -> None:
        super().__init__(method, uri, headers=headers)
        self.payload = _Payload(params)
        self.resource: str | None = None

    @property
    def args(self) -> dict[str, str]:
        data: dict[str, str] = self.payload.data
        return data

    @property
    def form(self) -> dict[str, str]:
        data: dict[str, str] = self.payload.data
        return data


class _Json(JsonPayload):  # type: ignore[misc]
    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data

    @property
    def data(self) -> dict[str, Any]:
        return self._data


class OAuthJsonRequest(JsonRequest):  # type: ignore[misc]
    """A registration request (RFC 7591) with its JSON body already read."""

    def __init__(self, method: str, uri: str, headers: CIMultiDict[str], data: dict[str, Any]) -> None:
        super().__init__(method, uri, headers)
        self.payload = _Json(data)


def endpoint_uri(issuer: str, request: web.Request) -> str:
    """The public URI of this request: the issuer's origin, not whatever Host header arrived."""
    return f"{issuer}{request.path}"


async def oauth_request(request: web.Request, issuer: str, extra: list[tuple[str, str]] | None = None) -> OAuthRequest:
    """The query and (for a form POST) body parameters of `request`, as authlib's request."""
    params = list(request.query.items())
    if request.method == "POST" and request.content_type == "application/x-www-form-urlencoded":
        params += [(k, v) for k, v in (await request.post()).items() if isinstance(v, str)]
    params += extra or []
    return OAuthRequest(request.method, endpoint_uri(issuer, request), CIMultiDict(request.headers), params)


def params_request(request: web.Request, issuer: str, path: str, params: list[tuple[str, str]]) -> OAuthRequest:
    """An authorization request rebuilt from parameters carried in a form (the consent page's hidden fields)."""
    uri = f"{issuer}{path}?{urlencode(params)}"
    return OAuthRequest("GET", uri, CIMultiDict(request.headers), params)


async def json_request(request: web.Request, issuer: str) -> OAuthJsonRequest:
    """A registration request; a body that is not a JSON object becomes an empty one (authlib refuses it)."""
    try:
        data = json.loads(await request.read() or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError):
        data = {}
    if not isinstance(data, dict):
        data = {}
    return OAuthJsonRequest(request.method, endpoint_uri(issuer, request), CIMultiDict(request.headers), data)


def to_response(status: int, body: Any, headers: list[tuple[str, str]], *, cors: bool = True) -> web.Response:
    """authlib's (status, body, headers) as an aiohttp response."""
    out = CIMultiDict(headers)
    if cors:
        out.update(CORS)
    if isinstance(body, dict):
        text = json.dumps({k: v for k, v in body.items() if v is not None})
        out["Content-Type"] = "application/json"
        return web.Response(status=status, text=text, headers=out)
    return web.Response(status=status, text=str(body or ""), headers=out)
