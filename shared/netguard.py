"""SSRF guard for every outbound request AgentPort makes on a user's behalf.

`check_url` vets a URL (scheme, credentials, host) and resolves its host exactly once; the
guarded transports then connect only to those vetted addresses, so a DNS answer that changes
between check and connect (rebinding) cannot steer a request to a forbidden address.

Allow-list syntax (`AGENTPORT_UPSTREAM_ALLOW`): comma-separated entries, each one of
  * a hostname, matched case-insensitively and exactly (`localhost`, `mcp.internal.corp`);
  * a wildcard hostname `*.example.corp`, matching any name below `example.corp` (not itself);
  * an IP address or CIDR network (`127.0.0.1`, `10.0.0.0/8`, `::1`, `[fd00::1]`, `fd00::/8`).
Ports are not part of an entry: `localhost:8080` is rejected rather than silently widened to
every port, because the guard decides on addresses, not services.
"""

from __future__ import annotations

import asyncio
import contextvars
import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, TypeVar, overload
from urllib.parse import urlsplit

import httpcore
import httpcore2
import httpx
import httpx2

from shared.errors import AgentPortError

__all__ = [
    "ALLOW_ENV",
    "AllowList",
    "CheckedTarget",
    "UpstreamRefused",
    "check_url",
    "guarded_client",
    "guarded_transport",
    "is_forbidden_ip",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

ALLOW_ENV = "AGENTPORT_UPSTREAM_ALLOW"
RESOLVE_TIMEOUT_S = 10.0
_HINT = f"(an operator can allow it with {ALLOW_ENV})"
_CREDENTIALS_MESSAGE = (
    "upstream URLs must not carry credentials (user:password@host); store them as a credential instead"
)


class UpstreamRefused(AgentPortError):
    """An outbound URL was refused; the message is a user-facing sentence naming host and reason."""

    code: ClassVar[str] = "upstream_refused"
    status: ClassVar[int] = 400

    def __init__(self, message: str, *, host: str | None = None) -> None:
        if host is None:
            super().__init__(message)
        else:
            super().__init__(message, host=host)
        self.host = host


# --------------------------------------------------------------------------- address policy

_METADATA_IPS: dict[IPAddress, str] = {
    ipaddress.ip_address("169.254.169.254"): "a link-local/cloud metadata address",
    ipaddress.ip_address("169.254.170.2"): "a link-local/cloud metadata address (container credentials)",
    ipaddress.ip_address("100.100.100.200"): "a cloud metadata address (Alibaba Cloud)",
    ipaddress.ip_address("fd00:ec2::254"): "a cloud metadata address (AWS IPv6)",
}

# Hostnames that only ever mean the instance metadata service; refused without resolving.
_METADATA_NAMES = frozenset({"metadata.google.internal", "metadata.goog", "metadata", "instance-data"})

_V4_RULES: tuple[tuple[ipaddress.IPv4Network, str], ...] = tuple(
    (ipaddress.IPv4Network(net), reason)
    for net, reason in (
        ("0.0.0.0/32", "an unspecified address"),
        ("0.0.0.0/8", "an unspecified ('this network') address"),
        ("127.0.0.0/8", "a loopback address"),
        ("10.0.0.0/8", "a private-network address"),
        ("172.16.0.0/12", "a private-network address"),
        ("192.168.0.0/16", "a private-network address"),
        ("100.64.0.0/10", "a carrier-grade NAT (shared address space) address"),
        ("169.254.0.0/16", "a link-local address"),
        ("192.0.0.0/24", "a reserved (IETF protocol assignment) address"),
        ("192.0.2.0/24", "a reserved (documentation) address"),
        ("198.51.100.0/24", "a reserved (documentation) address"),
        ("203.0.113.0/24", "a reserved (documentation) address"),
        ("198.18.0.0/15", "a reserved (benchmarking) address"),
        ("192.88.99.0/24", "a reserved (6to4 relay) address"),
        ("224.0.0.0/4", "a multicast address"),
        ("255.255.255.255/32", "a broadcast address"),
        ("240.0.0.0/4", "a reserved address"),
    )
)

_V6_RULES: tuple[tuple[ipaddress.IPv6Network, str], ...] = tuple(
    (ipaddress.IPv6Network(net), reason)
    for net, reason in (
        ("::/128", "an unspecified address"),
        ("::1/128", "a loopback address"),
        ("64:ff9b:1::/48", "a local-use NAT64 address"),
        ("100::/64", "a reserved (discard-only) address"),
        ("2001::/32", "a Teredo tunnel address"),
        ("2001:db8::/32", "a reserved (documentation) address"),
        ("3fff::/20", "a reserved (documentation) address"),
        ("fc00::/7", "a private-network (unique local) address"),
        ("fe80::/10", "a link-local address"),
        ("fec0::/10", "a site-local address"),
        ("ff00::/8", "a multicast address"),
    )
)

_V4_COMPAT = ipaddress.IPv6Network("::/96")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_SIXTOFOUR = ipaddress.IPv6Network("2002::/16")


def _v4_reason(ip: ipaddress.IPv4Address) -> str | None:
    for net, reason in _V4_RULES:
        if ip in net:
            return reason
    if not ip.is_global:
        return "not a globally routable address"
    return None


def _embedded_reason(kind: str, v4: ipaddress.IPv4Address) -> str | None:
    inner = is_forbidden_ip(v4)
    return None if inner is None else f"{kind} embedding {v4}, {inner}"


def is_forbidden_ip(ip: IPAddress | str) -> str | None:
    """Why `ip` must not be contacted (e.g. "a loopback address"), or None when it is acceptable."""
    addr = ipaddress.ip_address(ip) if isinstance(ip, str) else ip
    if isinstance(addr, ipaddress.IPv6Address) and addr.scope_id is not None:
        addr = ipaddress.IPv6Address(str(addr).split("%", 1)[0])
    if addr in _METADATA_IPS:
        return _METADATA_IPS[addr]
    if isinstance(addr, ipaddress.IPv4Address):
        return _v4_reason(addr)
    for net, reason in _V6_RULES[:2]:
        if addr in net:
            return reason
    if addr.ipv4_mapped is not None:
        return _embedded_reason("an IPv4-mapped IPv6 address", addr.ipv4_mapped)
    if addr in _V4_COMPAT:
        return (
            _embedded_reason("an IPv4-compatible IPv6 address", ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF))
            or "a reserved (IPv4-compatible) address"
        )
    if addr in _NAT64:
        # NAT64 of a public IPv4 address is ordinary internet traffic.
        return _embedded_reason("a NAT64 address", ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF))
    if addr.sixtofour is not None:
        return _embedded_reason("a 6to4 address", addr.sixtofour)
    for net, reason in _V6_RULES[2:]:
        if addr in net:
            return reason
    if not addr.is_global:
        return "not a globally routable address"
    return None


# --------------------------------------------------------------------------- allow-list

_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")


def _valid_hostname(host: str) -> bool:
    return 0 < len(host) <= 253 and all(_LABEL.match(label) for label in host.split("."))


@dataclass(frozen=True)
class AllowList:
    """Operator exceptions to the guard: hostnames (exact or `*.suffix`) and IP networks."""

    hosts: frozenset[str] = frozenset()
    networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def parse(cls, value: str | None) -> AllowList:
        """Parse the comma-separated `AGENTPORT_UPSTREAM_ALLOW` syntax; ValueError names a bad entry."""
        hosts: set[str] = set()
        networks: list[IPNetwork] = []
        for raw in (value or "").split(","):
            entry = raw.strip()
            if not entry:
                continue
            if "://" in entry:
                raise ValueError(f"{ALLOW_ENV}: {entry!r} looks like a URL; list the hostname only")
            network = _parse_network(entry)
            if network is not None:
                networks.append(network)
                continue
            hosts.add(_parse_host_entry(entry))
        return cls(hosts=frozenset(hosts), networks=tuple(networks))

    def allows_host(self, host: str) -> bool:
        """Whether the hostname is listed, exactly or under a `*.suffix` entry."""
        name = host.strip("[]").rstrip(".").lower()
        if name in self.hosts:
            return True
        return any(
            entry.startswith("*.") and name.endswith(entry[1:]) and len(name) > len(entry) - 1 for entry in self.hosts
        )

    def allows_ip(self, ip: IPAddress) -> bool:
        """Whether the address (or the IPv4 address an IPv4-mapped IPv6 one stands for) is listed."""
        candidates: list[IPAddress] = [ip]
        if isinstance(ip, ipaddress.IPv6Address):
            if ip.scope_id is not None:
                candidates = [ipaddress.IPv6Address(str(ip).split("%", 1)[0])]
            if ip.ipv4_mapped is not None:
                candidates.append(ip.ipv4_mapped)
        return any(c.version == n.version and c in n for c in candidates for n in self.networks)


def _parse_network(entry: str) -> IPNetwork | None:
    text = entry[1:-1] if entry.startswith("[") and entry.endswith("]") else entry
    try:
        return ipaddress.ip_network(text, strict=True)
    except ValueError as exc:
        if "/" not in text:
            return None
        try:
            loose = ipaddress.ip_network(text, strict=False)
        except ValueError:
            raise ValueError(f"{ALLOW_ENV}: {entry!r} is not a valid IP network ({exc})") from None
        raise ValueError(f"{ALLOW_ENV}: {entry!r} has host bits set; did you mean {loose}?") from None


def _parse_host_entry(entry: str) -> str:
    name = entry.lower().rstrip(".")
    if "://" in name or "/" in name:
        raise ValueError(f"{ALLOW_ENV}: {entry!r} looks like a URL; list the hostname only")
    if ":" in name:
        raise ValueError(f"{ALLOW_ENV}: {entry!r} has a port; entries are hosts or networks and apply to every port")
    bare = name[2:] if name.startswith("*.") else name
    if not _valid_hostname(bare):
        raise ValueError(f"{ALLOW_ENV}: {entry!r} is neither a hostname nor an IP address/network")
    return name


# --------------------------------------------------------------------------- URL checking


@dataclass(frozen=True)
class CheckedTarget:
    """A vetted URL: where it points and the addresses that may be connected to for it."""

    url: str
    scheme: str
    host: str
    port: int
    addresses: tuple[str, ...]


def _refuse(message: str, host: str | None = None) -> UpstreamRefused:
    return UpstreamRefused(message, host=host)


def _parse_ipv4_numeric(host: str) -> ipaddress.IPv4Address | None:
    """Read `host` the way libc's inet_aton does (127.1, 2130706433, 0x7f.0.0.1, 0177.0.0.1)."""
    parts = host.split(".")
    if not 1 <= len(parts) <= 4:
        return None
    values: list[int] = []
    for part in parts:
        if re.fullmatch(r"0[xX][0-9a-fA-F]+", part):
            values.append(int(part[2:], 16))
        elif re.fullmatch(r"0[0-7]*", part):
            values.append(int(part, 8))
        elif re.fullmatch(r"[1-9][0-9]*", part):
            values.append(int(part))
        else:
            return None
    *head, last = values
    if any(v > 0xFF for v in head) or last >= 1 << (8 * (4 - len(head))):
        return None
    number = last
    for index, value in enumerate(head):
        number |= value << (8 * (3 - index))
    return ipaddress.IPv4Address(number)


def _normalise_host(raw: str) -> str:
    host = raw.lower()
    if host.endswith(".") and not host.endswith(".."):
        host = host[:-1]
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            raise _refuse(f"upstream host {raw!r} is not a valid hostname; refused", raw) from None
    return host


async def _resolve(host: str, port: int) -> tuple[str, ...]:
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(
            loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP),
            RESOLVE_TIMEOUT_S,
        )
    except (OSError, TimeoutError, UnicodeError) as exc:
        raise _refuse(f"upstream host {host} could not be resolved ({exc}); refused", host) from None
    addresses: list[str] = []
    for _family, _type, _proto, _canon, sockaddr in infos:
        address = str(sockaddr[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise _refuse(f"upstream host {host} resolved to no addresses; refused", host)
    return tuple(addresses)


async def _check_parts(url: str, scheme: str, raw_host: str, port: int | None, allow: AllowList) -> CheckedTarget:
    """Vet already-split URL parts: one code path for `check_url` and for the transports."""
    if scheme not in ("http", "https"):
        shown = scheme or "(none)"
        raise _refuse(f"upstream URL scheme {shown!r} is not allowed; only http and https are")
    if not raw_host:
        raise _refuse(f"upstream URL {url!r} has no host")
    host = _normalise_host(raw_host)
    effective_port = port if port is not None else (443 if scheme == "https" else 80)
    if not 0 < effective_port < 65536:
        raise _refuse(f"upstream URL {url!r} has an invalid port {effective_port}", host)
    host_allowed = allow.allows_host(host)

    literal: IPAddress | None = None
    numeric_form = False
    if ":" in host:
        if "%" in host:
            raise _refuse(f"upstream host {host} is a scoped IPv6 address; refused", host)
        try:
            literal = ipaddress.IPv6Address(host)
        except ValueError:
            raise _refuse(f"upstream host {host!r} is not a valid IPv6 address; refused", host) from None
    else:
        literal = _parse_ipv4_numeric(host)
        numeric_form = literal is not None and str(literal) != host
        if literal is None and not _valid_hostname(host):
            raise _refuse(f"upstream host {raw_host!r} is not a valid hostname; refused", raw_host)

    if literal is None and host in _METADATA_NAMES and not host_allowed:
        raise _refuse(f"upstream host {host} is a cloud metadata hostname; refused {_HINT}", host)

    addresses = (str(literal),) if literal is not None else await _resolve(host, effective_port)
    for address in addresses:
        ip = ipaddress.ip_address(address)
        reason = is_forbidden_ip(ip)
        if reason is None or host_allowed or allow.allows_ip(ip):
            continue
        if literal is None:
            what = f"resolves to {address}, {reason}"
        elif numeric_form:
            what = f"is a numeric form of {address}, {reason}"
        else:
            what = f"is {reason}"
        raise _refuse(f"upstream host {host} {what}; refused {_HINT}", host)
    return CheckedTarget(url=url, scheme=scheme, host=host, port=effective_port, addresses=addresses)


async def check_url(url: str, allow: AllowList) -> CheckedTarget:
    """Vet an outbound http(s) URL and resolve its host once; raise UpstreamRefused when it is not allowed.

    Connect only to `addresses` of the result (or use `guarded_client`): re-resolving undoes the check.
    """
    if any(ch.isspace() or ord(ch) < 0x20 or ch in "\\\x7f" for ch in url):
        raise _refuse(f"upstream URL {url!r} contains whitespace, control characters or a backslash")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise _refuse(f"upstream URL {url!r} is malformed ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        return await _check_parts(url, scheme, "", None, allow)
    if "@" in parts.netloc:
        raise _refuse(_CREDENTIALS_MESSAGE)
    return await _check_parts(url, scheme, parts.hostname or "", port, allow)


# --------------------------------------------------------------------------- pinned connections

# The vetted (host, addresses) for the request currently being sent by this task. httpcore opens
# connections lazily inside the requesting task, so the network backend reads it from there.
_PIN: contextvars.ContextVar[tuple[str, tuple[str, ...]] | None] = contextvars.ContextVar(
    "agentport_netguard_pin", default=None
)


def _pinned_addresses(host: str) -> tuple[str, ...]:
    pin = _PIN.get()
    name = host.strip("[]").lower()
    if pin is None or pin[0] != name:
        # Fail closed: a connection the guard did not vet for this very host is never opened.
        raise UpstreamRefused(f"upstream host {name} was not vetted by the SSRF guard; refused", host=name)
    return pin[1]


async def _check_request(
    url_text: str, scheme: str, raw_host: bytes, port: int | None, userinfo: bytes, allow: AllowList
) -> tuple[str, tuple[str, ...]]:
    if userinfo:
        raise _refuse(_CREDENTIALS_MESSAGE)
    host = raw_host.decode("ascii").lower()
    target = await _check_parts(url_text, scheme, host, port, allow)
    return host, target.addresses


async def _connect_pinned(
    connect: Callable[..., Awaitable[Any]], host: str, retryable: tuple[type[Exception], ...], **options: Any
) -> Any:
    """Connect to each vetted address of `host` in turn (never resolving it again); the last error if all fail."""
    last: Exception | None = None
    for address in _pinned_addresses(host):
        try:
            return await connect(address, **options)
        except retryable as exc:
            last = exc
    assert last is not None
    raise last


class _PinnedBackend(httpcore.AsyncNetworkBackend):
    """httpcore backend that connects to the guard's vetted addresses instead of resolving names."""

    def __init__(self) -> None:
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        stream: httpcore.AsyncNetworkStream = await _connect_pinned(
            self._inner.connect_tcp,
            host,
            (httpcore.ConnectError, httpcore.ConnectTimeout),
            port=port,
            timeout=timeout,
            local_address=local_address,
            socket_options=socket_options,
        )
        return stream

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise UpstreamRefused("unix-socket upstreams are not allowed by the SSRF guard")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _PinnedBackend2(httpcore2.AsyncNetworkBackend):
    """httpcore2 twin of `_PinnedBackend` (the mcp SDK's client stack)."""

    def __init__(self) -> None:
        self._inner = httpcore2.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore2.SOCKET_OPTION] | None = None,
    ) -> httpcore2.AsyncNetworkStream:
        stream: httpcore2.AsyncNetworkStream = await _connect_pinned(
            self._inner.connect_tcp,
            host,
            (httpcore2.ConnectError, httpcore2.ConnectTimeout),
            port=port,
            timeout=timeout,
            local_address=local_address,
            socket_options=socket_options,
        )
        return stream

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore2.SOCKET_OPTION] | None = None,
    ) -> httpcore2.AsyncNetworkStream:
        raise UpstreamRefused("unix-socket upstreams are not allowed by the SSRF guard")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


_UNSUPPORTED_TRANSPORT_KWARGS = ("proxy", "uds")


def _reject_bypasses(kwargs: dict[str, Any], names: Iterable[str]) -> None:
    for name in names:
        if kwargs.get(name) is not None:
            # A proxy or a unix socket would reach the upstream without going through the pinned connect.
            raise ValueError(f"{name!r} cannot be used with a guarded client: it would bypass the SSRF guard")


_Response = TypeVar("_Response")


def _secured(lib: Any, transport_kwargs: dict[str, Any]) -> Any:
    """The SSL context AsyncHTTPTransport would build (taking `verify` and `cert` out of the kwargs)."""
    return lib.create_ssl_context(
        verify=transport_kwargs.pop("verify", True),
        cert=transport_kwargs.pop("cert", None),
        trust_env=transport_kwargs.get("trust_env", True),
    )


def _pinned_pool(lib: Any, core: Any, backend: Any, ssl_context: Any, transport_kwargs: dict[str, Any]) -> Any:
    """The pool AsyncHTTPTransport builds, plus the pinning backend (neither library has a public knob for it)."""
    limits = transport_kwargs.get("limits") or lib.Limits(max_connections=100, max_keepalive_connections=20)
    return core.AsyncConnectionPool(
        ssl_context=ssl_context,
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry,
        http1=transport_kwargs.get("http1", True),
        http2=transport_kwargs.get("http2", False),
        local_address=transport_kwargs.get("local_address"),
        retries=transport_kwargs.get("retries", 0),
        socket_options=transport_kwargs.get("socket_options"),
        network_backend=backend,
    )


async def _send_pinned(allow: AllowList, url: Any, send: Callable[[], Awaitable[_Response]]) -> _Response:
    """Vet the request URL, then send it over a connection to one of the vetted addresses."""
    pin = await _check_request(str(url), url.scheme, url.raw_host, url.port, url.userinfo, allow)
    token = _PIN.set(pin)
    try:
        return await send()
    finally:
        _PIN.reset(token)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx transport that vets every request (each redirect hop too) and connects to the vetted IP."""

    def __init__(self, allow: AllowList, **transport_kwargs: Any) -> None:
        _reject_bypasses(transport_kwargs, _UNSUPPORTED_TRANSPORT_KWARGS)
        ssl_context = _secured(httpx, transport_kwargs)
        super().__init__(verify=ssl_context, **transport_kwargs)
        self._pool = _pinned_pool(httpx, httpcore, _PinnedBackend(), ssl_context, transport_kwargs)
        self.allow = allow

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        send = super().handle_async_request
        return await _send_pinned(self.allow, request.url, lambda: send(request))


class GuardedTransport2(httpx2.AsyncHTTPTransport):
    """httpx2 twin of `GuardedTransport`, for the mcp SDK's client."""

    def __init__(self, allow: AllowList, **transport_kwargs: Any) -> None:
        _reject_bypasses(transport_kwargs, _UNSUPPORTED_TRANSPORT_KWARGS)
        ssl_context = _secured(httpx2, transport_kwargs)
        super().__init__(verify=ssl_context, **transport_kwargs)
        self._pool = _pinned_pool(httpx2, httpcore2, _PinnedBackend2(), ssl_context, transport_kwargs)
        self.allow = allow

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        send = super().handle_async_request
        return await _send_pinned(self.allow, request.url, lambda: send(request))


@overload
def guarded_transport(
    allow: AllowList, *, lib: Literal["httpx"] = "httpx", **transport_kwargs: Any
) -> GuardedTransport: ...
@overload
def guarded_transport(allow: AllowList, *, lib: Literal["httpx2"], **transport_kwargs: Any) -> GuardedTransport2: ...
def guarded_transport(
    allow: AllowList, *, lib: Literal["httpx", "httpx2"] = "httpx", **transport_kwargs: Any
) -> GuardedTransport | GuardedTransport2:
    """An async transport for `lib` that refuses forbidden upstreams and pins connections to vetted IPs.

    `transport_kwargs` are AsyncHTTPTransport's (verify, http2, limits, retries, ...); proxy/uds are refused.
    """
    if lib == "httpx":
        return GuardedTransport(allow, **transport_kwargs)
    if lib == "httpx2":
        return GuardedTransport2(allow, **transport_kwargs)
    raise ValueError(f"unknown HTTP library {lib!r}; expected 'httpx' or 'httpx2'")


# Client options that configure the connection layer, so they belong to the guarded transport.
_TRANSPORT_OPTIONS = ("verify", "cert", "trust_env", "http1", "http2", "limits")


@overload
def guarded_client(allow: AllowList, *, lib: Literal["httpx"] = "httpx", **client_kwargs: Any) -> httpx.AsyncClient: ...
@overload
def guarded_client(allow: AllowList, *, lib: Literal["httpx2"], **client_kwargs: Any) -> httpx2.AsyncClient: ...
def guarded_client(
    allow: AllowList, *, lib: Literal["httpx", "httpx2"] = "httpx", **client_kwargs: Any
) -> httpx.AsyncClient | httpx2.AsyncClient:
    """An AsyncClient of `lib` whose every request and redirect hop goes through `guarded_transport`.

    Connection options (verify, cert, http2, limits, trust_env) are routed to the transport.
    """
    _reject_bypasses(client_kwargs, ("transport", "mounts", "proxy"))
    transport_kwargs = {k: client_kwargs.pop(k) for k in _TRANSPORT_OPTIONS if k in client_kwargs}
    if lib == "httpx":
        return httpx.AsyncClient(
            transport=GuardedTransport(allow, **transport_kwargs), trust_env=False, **client_kwargs
        )
    if lib == "httpx2":
        return httpx2.AsyncClient(
            transport=GuardedTransport2(allow, **transport_kwargs), trust_env=False, **client_kwargs
        )
    raise ValueError(f"unknown HTTP library {lib!r}; expected 'httpx' or 'httpx2'")
