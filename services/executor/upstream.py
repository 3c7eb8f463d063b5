"""Sessions with upstream MCP servers, remote (Streamable HTTP) or local (stdio): one reused SDK client per
installed integration, watched for `notifications/tools/list_changed` and for its transport ending."""

from __future__ import annotations

import asyncio
import contextlib
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, cast

import httpx2
import mcp_types as types
from mcp import Client
from mcp.client._transport import TransportStreams
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPDeprecationWarning, MCPError
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from services.executor.limits import Limits, check_result_size
from shared.events import AuthSpec, ToolDef
from shared.netguard import AllowList, check_url, guarded_client

_LIST_PAGE_CAP = 50
_LISTEN_RETRIES = 5
CALL_ID_META_KEY = "io.agentport/call_id"
Key = tuple[str, str]
ToolsChanged = Callable[[Key], None]
AuthFor = Callable[[Key], Awaitable[httpx2.Auth | None]]


async def _no_auth(key: Key) -> httpx2.Auth | None:
    return None


@dataclass(frozen=True)
class Target:
    """Where and how to reach one upstream; `headers` and `stdio` hold the opened credential, in memory only."""

    url: str
    headers: dict[str, str] = field(repr=False)
    fingerprint: str
    stdio: StdioServerParameters | None = field(default=None, repr=False)
    max_bytes: int = 1024 * 1024


def auth_headers(auth: AuthSpec, credential: str | None) -> dict[str, str]:
    """The headers that present a credential the way the integration expects."""
    if credential is None or auth.type == "none":
        return {}
    if auth.type == "header" and auth.header_name:
        return {auth.header_name: f"{auth.scheme} {credential}" if auth.scheme else credential}
    return {"Authorization": f"Bearer {credential}"}


class _EndSignallingReader:
    """The transport's read stream, setting `ended` once the session stops reading it (EOF, crash or close)."""

    def __init__(self, inner: Any, ended: asyncio.Event) -> None:
        self._inner = inner
        self._ended = ended

    @property
    def last_context(self) -> Any:
        return getattr(self._inner, "last_context", None)

    async def receive(self) -> Any:
        return await self._inner.receive()

    async def aclose(self) -> None:
        self._ended.set()
        await self._inner.aclose()

    def __aiter__(self) -> _EndSignallingReader:
        return self

    async def __anext__(self) -> Any:
        try:
            return await self._inner.__anext__()
        except StopAsyncIteration:
            self._ended.set()
            raise

    async def __aenter__(self) -> _EndSignallingReader:
        await self._inner.__aenter__()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        self._ended.set()
        return cast(bool | None, await self._inner.__aexit__(exc_type, exc, tb))


@contextlib.asynccontextmanager
async def _watched(
    inner: AbstractAsyncContextManager[TransportStreams], ended: asyncio.Event
) -> AsyncIterator[TransportStreams]:
    async with inner as (read, write):
        yield cast(Any, _EndSignallingReader(read, ended)), write


class UpstreamSession:
    """One connected client, entered and left by its own task as the SDK requires."""

    def __init__(
        self,
        key: Key,
        target: Target,
        allow: AllowList,
        connect_timeout: float,
        on_tools_changed: ToolsChanged,
        auth: httpx2.Auth | None = None,
    ) -> None:
        self.key = key
        self.target = target
        self.allow = allow
        self.connect_timeout = connect_timeout
        self.on_tools_changed = on_tools_changed
        self.auth = auth
        self.client: Client | None = None
        self._ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(self._own(), name=f"upstream:{target.url or 'stdio'}")

    async def _own(self) -> None:
        try:
            async with contextlib.AsyncExitStack() as stack:
                transport: AbstractAsyncContextManager[TransportStreams]
                if self.target.stdio is not None:
                    transport = stdio_client(self.target.stdio)
                else:
                    await check_url(self.target.url, self.allow)
                    http = await stack.enter_async_context(
                        guarded_client(
                            self.allow,
                            lib="httpx2",
                            headers=self.target.headers,
                            timeout=httpx2.Timeout(self.connect_timeout, read=300.0),
                            auth=self.auth,
                        )
                    )
                    transport = streamable_http_client(
                        self.target.url, http_client=http, max_sse_event_size=self.target.max_bytes
                    )
                client = await stack.enter_async_context(
                    Client(_watched(transport, self._stop), cache=None, message_handler=self._on_message)
                )
                self.client = client
                self._ready.set_result(None)
                watcher = asyncio.create_task(self._watch_tool_list(client), name="upstream:listen")
                try:
                    await self._stop.wait()
                finally:
                    watcher.cancel()
                    await asyncio.gather(watcher, return_exceptions=True)
        except BaseException as exc:
            if not self._ready.done():
                self._ready.set_exception(exc if isinstance(exc, Exception) else RuntimeError("cancelled"))
            if not isinstance(exc, Exception | asyncio.CancelledError):
                raise
        finally:
            self.client = None
            self._stop.set()

    async def _on_message(self, message: Any) -> None:
        if isinstance(getattr(message, "root", message), types.ToolListChangedNotification):
            self.on_tools_changed(self.key)

    async def _watch_tool_list(self, client: Client) -> None:
        """On 2026-07-28 servers, change notifications flow only on a `subscriptions/listen` stream: keep one open.

        Its events also reach `_on_message`; on older servers they arrive there without asking.
        """
        tools = client.server_capabilities.tools
        if client.protocol_version not in MODERN_PROTOCOL_VERSIONS or not (tools and tools.list_changed):
            return
        for attempt in range(_LISTEN_RETRIES):
            try:
                async with client.listen(tools_list_changed=True) as subscription:
                    if attempt:
                        self.on_tools_changed(self.key)  # changes while the stream was down were not replayed
                    async for _ in subscription:
                        pass
                return
            except MCPError:
                return
            except Exception:
                if self._stop.is_set():
                    return
                await asyncio.sleep(min(0.5 * 2**attempt, 10.0))

    async def ready(self) -> Client:
        await asyncio.wait_for(asyncio.shield(self._ready), self.connect_timeout)
        if self.client is None:
            raise ConnectionError("the upstream session closed")
        return self.client

    @property
    def alive(self) -> bool:
        """False once closed or once its transport ended (a local server that died, a dropped connection)."""
        return not self._task.done() and not self._stop.is_set()

    async def close(self) -> None:
        self._stop.set()
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(self._task, 10)


async def _answers(client: Client, timeout: float) -> bool:
    """Whether the server answers a ping. Any JSON-RPC answer proves it alive, even the "method not found" of
    2026-07-28 servers, which dropped ping; only a closed connection or silence means it is gone."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MCPDeprecationWarning)
            await asyncio.wait_for(client.send_ping(), timeout)
    except MCPError as exc:
        return exc.error.code != types.CONNECTION_CLOSED
    except Exception:
        return False
    return True


class UpstreamPool:
    """Reuses one session per (org, integration) until its target changes or it ends; a dead one is replaced."""

    def __init__(self, allow: AllowList, connect_timeout: float) -> None:
        self.allow = allow
        self.connect_timeout = connect_timeout
        self.on_tools_changed: ToolsChanged = lambda key: None
        # How an integration signed in with OAuth authenticates (fresh tokens per request); None for the rest.
        self.auth_for: AuthFor = _no_auth
        self._sessions: dict[Key, UpstreamSession] = {}
        self._lock = asyncio.Lock()

    async def client(self, key: Key, target: Target) -> Client:
        async with self._lock:
            session = self._sessions.get(key)
            if session is None or not session.alive or session.target.fingerprint != target.fingerprint:
                if session is not None:
                    await session.close()
                auth = await self.auth_for(key) if target.stdio is None else None
                session = UpstreamSession(key, target, self.allow, self.connect_timeout, self._tools_changed, auth=auth)
                self._sessions[key] = session
        try:
            return await session.ready()
        except BaseException:
            await self.drop(key)
            raise

    async def live_client(self, key: Key, target: Target) -> Client:
        """A client whose local server answers a ping now; a dead one is restarted before the call is sent.

        A local server killed while idle is noticed only when its pipe's end is read, which can come after the
        next call is dispatched. A ping cannot act, so retrying it is safe; the call itself is never resent.
        """
        client = await self.client(key, target)
        if target.stdio is None or await _answers(client, self.connect_timeout):
            return client
        await self.drop(key)
        return await self.client(key, target)

    def _tools_changed(self, key: Key) -> None:
        self.on_tools_changed(key)

    async def drop(self, key: Key) -> None:
        session = self._sessions.pop(key, None)
        if session is not None:
            await session.close()

    async def close(self) -> None:
        """End every session; local servers are stopped (stdin closed, then terminated)."""
        await asyncio.gather(*(self.drop(key) for key in list(self._sessions)), return_exceptions=True)

    async def list_tools(self, key: Key, target: Target) -> tuple[ToolDef, ...]:
        """Every tool the upstream offers, following pagination."""
        client = await self.live_client(key, target)
        tools: list[ToolDef] = []
        cursor: str | None = None
        for _ in range(_LIST_PAGE_CAP):
            page = await client.list_tools(cursor=cursor)
            tools.extend(
                ToolDef(name=t.name, description=t.description or "", input_schema=dict(t.input_schema), title=t.title)
                for t in page.tools
            )
            cursor = page.next_cursor
            if not cursor:
                break
        return tuple(tools)

    async def call_tool(
        self, key: Key, target: Target, name: str, arguments: dict[str, Any], limits: Limits, call_id: str
    ) -> types.CallToolResult:
        """Run one tool call upstream, at most once; the call id travels in `_meta` as an idempotency key."""
        client = await self.live_client(key, target)
        meta = cast(types.RequestParamsMeta, {CALL_ID_META_KEY: call_id})
        try:
            async with asyncio.timeout(limits.timeout + 1.0):
                result = await client.call_tool(name, arguments, read_timeout_seconds=limits.timeout, meta=meta)
        except TimeoutError as exc:
            await self.drop(key)
            raise limits.timed_out() from exc
        except MCPError as exc:
            await self.drop(key)
            if exc.error.code == types.REQUEST_TIMEOUT:
                raise limits.timed_out() from exc
            raise
        except BaseException:
            # A failed session is not reused; the call itself is never resent.
            await self.drop(key)
            raise
        return check_result_size(result, limits)
