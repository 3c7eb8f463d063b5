"""A loopback TCP relay in front of a real server, that a test can pause, cut and watch.

One service talks to PostgreSQL, NATS or the gateway through the relay while every other client goes direct, so
a test can take that one link down for real:

- `pause()` holds what clients send (the server's answers still flow); `resume()` delivers it late.
- `cut()` drops every live connection, along with what was held; new connections pass at once.
  `cut(refuse_new=True)` also closes the listening port, so new connections are refused until `restore()`
  listens on the same port again.
- with `notes_http=True` it notes the HTTP request lines it passes on: a test that must know a client has sent a
  request (a long-poll now open at the gateway, say) waits with `forwarded(fragment)` instead of sleeping.

    async with Relay.in_front_of(database_url) as relay:
        start_service(DATABASE_URL=relay.url_for(database_url))
        relay.cut(refuse_new=True)
        ...
        await relay.restore()
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from types import TracebackType
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

REQUEST_LINE = re.compile(rb"^(?:GET|POST|PUT|PATCH|DELETE) (\S+) HTTP/1\.[01]$")
DEFAULT_PORTS = {"postgresql": 5432, "postgres": 5432, "nats": 4222, "http": 80, "https": 443}
CHUNK = 65536


@dataclass(eq=False)
class _Link:
    """One relayed connection: the client's side and the server's side."""

    client: asyncio.StreamWriter
    server: asyncio.StreamWriter
    alive: bool = True
    requests: _RequestFraming | None = None

    def abort(self) -> None:
        """Close both sides at once, throwing away whatever was not sent yet."""
        self.alive = False
        self.client.transport.abort()
        self.server.transport.abort()


class Relay:
    """Forwards every connection made to 127.0.0.1:`port` to `target_host`:`target_port`, or to the Unix socket
    `unix_socket` (PostgreSQL's, as an embedded server is reached).

    Use it as an async context manager, or call `start()` and `close()`."""

    def __init__(
        self, target_host: str, target_port: int, *, notes_http: bool = False, unix_socket: str | None = None
    ) -> None:
        self.target = (target_host, target_port)
        self.unix_socket = unix_socket
        self.port = 0
        self.requests: list[str] = []
        self._notes_http = notes_http
        self._noted = asyncio.Event()
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._refusing = False
        self._server: asyncio.Server | None = None
        self._links: set[_Link] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    @classmethod
    def in_front_of(cls, url: str, *, notes_http: bool = False) -> Relay:
        """A relay to the server `url` names: its host and port (the scheme's usual port when it names none), or
        the socket directory and port of a PostgreSQL URL's `host=/…` and `port=` query parameters."""
        parts = urlsplit(url)
        query = dict(parse_qsl(parts.query))
        port = int(query.get("port") or parts.port or DEFAULT_PORTS[parts.scheme])
        if query.get("host", "").startswith("/"):
            socket = f"{query['host']}/.s.PGSQL.{port}"
            return cls("127.0.0.1", port, notes_http=notes_http, unix_socket=socket)
        return cls(parts.hostname or "127.0.0.1", port, notes_http=notes_http)

    def url_for(self, url: str) -> str:
        """The same URL (scheme, credentials, path, other query parameters), through this relay."""
        assert self.port, "the relay is not started"
        parts = urlsplit(url)
        userinfo = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
        query = urlencode([(k, v) for k, v in parse_qsl(parts.query) if k not in ("host", "port")])
        return urlunsplit(parts._replace(netloc=f"{userinfo}127.0.0.1:{self.port}", query=query))

    # --- life ------------------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen on a free loopback port (`port`)."""
        await self._listen()

    async def close(self) -> None:
        """Stop listening and end every connection."""
        self._refusing = True
        self._drop_links()
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if server is not None:
            await server.wait_closed()

    async def __aenter__(self) -> Relay:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # --- faults ----------------------------------------------------------------------------------------------

    def pause(self) -> None:
        """Hold what clients send from now on (on live and new connections) until `resume()` or `cut()`."""
        self._flowing.clear()

    def resume(self) -> None:
        """Deliver what was held, and let client bytes flow again."""
        self._flowing.set()

    def cut(self, *, refuse_new: bool = False) -> None:
        """End every live connection at once, losing what was held or not yet sent; stop holding.

        New connections pass at once, unless `refuse_new`: then the port stops listening (connections to it are
        refused) until `restore()`."""
        if refuse_new:
            self._refusing = True
            if self._server is not None:
                self._server.close()
        self._drop_links()
        self._flowing.set()

    async def restore(self) -> None:
        """After `cut(refuse_new=True)`: listen again, on the same port (nothing to do after a plain cut)."""
        if self._refusing:
            await self._listen()

    # --- what passed -----------------------------------------------------------------------------------------

    async def forwarded(self, fragment: str, timeout: float = 30.0) -> str:
        """Until an HTTP request whose path contains `fragment` has been passed on to the server; its path."""
        assert self._notes_http, "the relay notes HTTP requests only with notes_http=True"
        try:
            async with asyncio.timeout(timeout):
                while True:
                    found = next((path for path in self.requests if fragment in path), None)
                    if found is not None:
                        return found
                    self._noted.clear()
                    await self._noted.wait()
        except TimeoutError:
            raise AssertionError(f"no request for {fragment} within {timeout:g}s; relayed: {self.requests}") from None

    # --- relaying --------------------------------------------------------------------------------------------

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._accepted, "127.0.0.1", self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]
        self._refusing = False

    def _drop_links(self) -> None:
        for link in list(self._links):
            link.abort()
        self._links.clear()

    async def _accepted(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            if self._refusing:
                writer.transport.abort()
                return
            try:
                if self.unix_socket is not None:
                    up_reader, up_writer = await asyncio.open_unix_connection(self.unix_socket)
                else:
                    up_reader, up_writer = await asyncio.open_connection(*self.target)
            except OSError:
                writer.transport.abort()
                return
            link = _Link(writer, up_writer, requests=_RequestFraming() if self._notes_http else None)
            if self._refusing:  # cut while connecting
                link.abort()
                return
            self._links.add(link)
            try:
                await asyncio.gather(
                    self._pump(link, reader, up_writer, upward=True), self._pump(link, up_reader, writer)
                )
            finally:
                self._links.discard(link)
                writer.close()
                up_writer.close()
        finally:
            self._tasks.discard(task)

    async def _pump(
        self, link: _Link, src: asyncio.StreamReader, dst: asyncio.StreamWriter, *, upward: bool = False
    ) -> None:
        """Copy one direction until end of file (passed on as a half-close); a reset ends the whole link."""
        try:
            while data := await src.read(CHUNK):
                if upward:
                    await self._flowing.wait()
                if not link.alive:
                    return
                dst.write(data)
                await dst.drain()
                if upward and link.requests is not None:
                    for path in link.requests.feed(data):
                        self.requests.append(path)
                        self._noted.set()
            if link.alive and dst.can_write_eof():
                dst.write_eof()
        except OSError:
            link.abort()


class _RequestFraming:
    """Splits one connection's bytes into HTTP/1.1 requests (heads, then `Content-Length` bytes of body)."""

    def __init__(self) -> None:
        self.buffer = b""
        self.body_left = 0

    def feed(self, data: bytes) -> list[str]:
        """The paths of the requests whose heads are complete in what arrived so far."""
        self.buffer += data
        paths: list[str] = []
        while True:
            if self.body_left:
                skipped = min(self.body_left, len(self.buffer))
                self.buffer, self.body_left = self.buffer[skipped:], self.body_left - skipped
                if self.body_left:
                    return paths
            head, found, rest = self.buffer.partition(b"\r\n\r\n")
            if not found:
                return paths
            line, *headers = head.split(b"\r\n")
            if matched := REQUEST_LINE.match(line):
                paths.append(matched.group(1).decode(errors="replace"))
            lengths = [h.split(b":", 1)[1] for h in headers if h.lower().startswith(b"content-length:")]
            self.buffer, self.body_left = rest, int(lengths[0]) if lengths else 0
