"""SSRF guard: hostile URL table, allow-list parsing, and real redirects/pinning against 127.0.0.1."""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
import httpx2
import pytest
from aiohttp import web

from shared.netguard import (
    AllowList,
    CheckedTarget,
    UpstreamRefused,
    check_url,
    guarded_client,
    guarded_transport,
    is_forbidden_ip,
)

NO_ALLOW = AllowList.parse(None)

# (url, fragment the refusal message must contain)
HOSTILE: list[tuple[str, str]] = [
    ("http://127.0.0.1/", "127.0.0.1 is a loopback address"),
    ("http://127.0.0.1:8080/admin", "loopback"),
    ("http://127.255.255.254/", "loopback"),
    ("http://localhost/", "localhost resolves to"),
    ("http://LOCALHOST./", "loopback"),
    ("http://127.1/", "127.1 is a numeric form of 127.0.0.1"),
    ("http://127.0.1/", "numeric form of 127.0.0.1"),
    ("http://2130706433/", "2130706433 is a numeric form of 127.0.0.1"),
    ("http://0x7f000001/", "numeric form of 127.0.0.1"),
    ("http://0x7f.0.0.1/", "numeric form of 127.0.0.1"),
    ("http://0177.0.0.1/", "numeric form of 127.0.0.1"),
    ("http://017700000001/", "numeric form of 127.0.0.1"),
    ("http://[::1]/", "::1 is a loopback address"),
    ("http://[0:0:0:0:0:0:0:1]/", "loopback"),
    ("http://[::ffff:127.0.0.1]/", "IPv4-mapped IPv6 address embedding 127.0.0.1"),
    ("http://[::ffff:7f00:1]/", "IPv4-mapped IPv6 address embedding 127.0.0.1"),
    ("http://[::ffff:a9fe:a9fe]/", "embedding 169.254.169.254, a link-local/cloud metadata"),
    ("http://[::127.0.0.1]/", "IPv4-compatible IPv6 address embedding 127.0.0.1"),
    ("http://[64:ff9b::10.0.0.1]/", "NAT64 address embedding 10.0.0.1, a private-network"),
    ("http://[2002:c0a8:0101::1]/", "6to4 address embedding 192.168.1.1"),
    ("http://10.0.0.1/", "10.0.0.1 is a private-network address"),
    ("http://10.255.255.255/", "private-network"),
    ("http://172.16.0.1/", "172.16.0.1 is a private-network address"),
    ("http://172.31.255.1/", "private-network"),
    ("http://192.168.1.1/", "192.168.1.1 is a private-network address"),
    ("http://169.254.169.254/latest/meta-data", "169.254.169.254 is a link-local/cloud metadata address"),
    ("http://2852039166/", "numeric form of 169.254.169.254, a link-local/cloud metadata"),
    ("http://169.254.1.1/", "link-local address"),
    ("http://100.100.100.200/", "cloud metadata address (Alibaba Cloud)"),
    ("http://[fd00:ec2::254]/", "cloud metadata address (AWS IPv6)"),
    ("http://metadata.google.internal/computeMetadata/v1/", "cloud metadata hostname"),
    ("http://[fe80::1]/", "fe80::1 is a link-local address"),
    ("http://[fd00::1]/", "private-network (unique local)"),
    ("http://[fc00::1]/", "private-network (unique local)"),
    ("http://100.64.0.1/", "carrier-grade NAT"),
    ("http://0.0.0.0/", "0.0.0.0 is an unspecified address"),
    ("http://0/", "numeric form of 0.0.0.0"),
    ("http://0.1.2.3/", "unspecified ('this network')"),
    ("http://[::]/", ":: is an unspecified address"),
    ("http://224.0.0.1/", "multicast"),
    ("http://[ff02::1]/", "multicast"),
    ("http://255.255.255.255/", "broadcast"),
    ("http://240.0.0.1/", "reserved"),
    ("http://192.0.2.10/", "documentation"),
    ("http://[2001:db8::1]/", "documentation"),
    ("ftp://example.com/file", "scheme 'ftp' is not allowed"),
    ("file:///etc/passwd", "scheme 'file' is not allowed"),
    ("gopher://127.0.0.1:6379/_INFO", "scheme 'gopher' is not allowed"),
    ("//example.com/x", "scheme '(none)' is not allowed"),
    ("http://user:pass@example.com/", "must not carry credentials"),
    ("http://evil.example@127.0.0.1/", "must not carry credentials"),
    ("http://example.com\\@127.0.0.1/", "backslash"),
    ("http:///nohost", "has no host"),
    ("http://[::1/", "malformed"),
    ("http://example.com:99999/", "malformed"),
    ("http://exa mple.com/", "whitespace"),
    ("http://foo.localhost/", "foo.localhost could not be resolved"),
    ("http://bad_host!.example/", "not a valid hostname"),
    ("http://[fe80::1%25eth0]/", "scoped IPv6 address"),
]


@pytest.mark.parametrize(("url", "expected"), HOSTILE, ids=[u for u, _ in HOSTILE])
async def test_hostile_urls_are_refused_with_a_clear_message(url: str, expected: str) -> None:
    with pytest.raises(UpstreamRefused) as info:
        await check_url(url, NO_ALLOW)
    message = str(info.value)
    assert expected in message
    assert message.startswith("upstream ")


def test_hostile_table_is_large() -> None:
    assert len(HOSTILE) >= 30


async def test_refusal_names_the_operator_switch() -> None:
    with pytest.raises(UpstreamRefused) as info:
        await check_url("http://169.254.169.254/", NO_ALLOW)
    assert str(info.value) == (
        "upstream host 169.254.169.254 is a link-local/cloud metadata address; refused "
        "(an operator can allow it with AGENTPORT_UPSTREAM_ALLOW)"
    )
    assert info.value.host == "169.254.169.254"
    assert info.value.to_body()["error"]["code"] == "upstream_refused"


@pytest.mark.parametrize(
    ("url", "addresses", "port"),
    [
        ("http://93.184.216.34/", ("93.184.216.34",), 80),
        ("https://93.184.216.34:8443/x?y=1", ("93.184.216.34",), 8443),
        ("HTTPS://[2606:4700:4700::1111]/", ("2606:4700:4700::1111",), 443),
        ("http://[64:ff9b::808:808]/", ("64:ff9b::808:808",), 80),
        ("http://1.1.1.1./", ("1.1.1.1",), 80),
    ],
)
async def test_public_literals_pass_without_dns(url: str, addresses: tuple[str, ...], port: int) -> None:
    target = await check_url(url, NO_ALLOW)
    assert target == CheckedTarget(url=url, scheme=target.scheme, host=target.host, port=port, addresses=addresses)
    assert target.scheme in ("http", "https")


@pytest.mark.parametrize(
    ("allow", "url"),
    [
        ("127.0.0.1", "http://127.0.0.1:9000/mcp"),
        ("localhost", "http://localhost/"),
        ("LocalHost", "http://localhost./"),
        ("127.0.0.0/8", "http://127.1/"),
        ("127.0.0.0/8", "http://127.0.0.53/"),
        ("127.0.0.1", "http://[::ffff:127.0.0.1]/"),
        ("10.0.0.0/8, 192.168.0.0/16", "http://10.1.2.3/"),
        ("[::1]", "http://[::1]:8080/"),
        ("*.corp.example, 10.0.0.0/8", "http://10.9.9.9/"),
        ("169.254.169.254", "http://169.254.169.254/"),
    ],
)
async def test_allow_list_lets_operators_reach_internal_hosts(allow: str, url: str) -> None:
    target = await check_url(url, AllowList.parse(allow))
    assert target.addresses
    for address in target.addresses:
        assert is_forbidden_ip(address) is not None


async def test_allowed_network_does_not_cover_other_forbidden_addresses() -> None:
    with pytest.raises(UpstreamRefused, match=re.escape("10.0.0.1 is a private-network address")):
        await check_url("http://10.0.0.1/", AllowList.parse("127.0.0.0/8"))


def test_allow_list_parsing() -> None:
    allow = AllowList.parse(" *.Corp.Example , [::1], 10.0.0.0/8 ,LOCALHOST., 192.168.1.7,,")
    assert allow.hosts == frozenset({"*.corp.example", "localhost"})
    assert allow.networks == (
        ipaddress.ip_network("::1/128"),
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("192.168.1.7/32"),
    )
    assert allow.allows_host("LocalHost")
    assert allow.allows_host("mcp.corp.example")
    assert allow.allows_host("a.b.corp.example")
    assert not allow.allows_host("corp.example")
    assert not allow.allows_host("evilcorp.example")
    assert allow.allows_ip(ipaddress.ip_address("10.2.3.4"))
    assert allow.allows_ip(ipaddress.ip_address("::ffff:192.168.1.7"))
    assert not allow.allows_ip(ipaddress.ip_address("192.168.1.8"))
    assert AllowList.parse(None) == AllowList.parse("") == AllowList()


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("localhost:8080", "has a port"),
        ("[::1]:80", "has a port"),
        ("10.0.0.1/8", "did you mean 10.0.0.0/8"),
        ("1.2.3.4/40", "not a valid IP network"),
        ("http://internal/", "looks like a URL"),
        ("foo bar", "neither a hostname nor an IP"),
        ("-bad-.example", "neither a hostname nor an IP"),
    ],
)
def test_allow_list_rejects_garbage(value: str, fragment: str) -> None:
    with pytest.raises(ValueError, match="AGENTPORT_UPSTREAM_ALLOW") as info:
        AllowList.parse(value)
    assert fragment in str(info.value)


@pytest.mark.parametrize(
    ("ip", "reason"),
    [
        ("8.8.8.8", None),
        ("2606:4700:4700::1111", None),
        ("127.0.0.1", "a loopback address"),
        ("::ffff:10.0.0.1", "an IPv4-mapped IPv6 address embedding 10.0.0.1, a private-network address"),
        ("64:ff9b::8.8.8.8", None),
        ("64:ff9b:1::1", "a local-use NAT64 address"),
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "a Teredo tunnel address"),
    ],
)
def test_is_forbidden_ip(ip: str, reason: str | None) -> None:
    assert is_forbidden_ip(ip) == reason
    assert is_forbidden_ip(ipaddress.ip_address(ip)) == reason


# ----------------------------------------------------------------------------- real connections


@dataclass
class Upstream:
    """An aiohttp app on 127.0.0.1 recording what each request looked like."""

    port: int
    seen: list[dict[str, str]] = field(default_factory=list)


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    state = Upstream(port=0)

    async def record(request: web.Request) -> None:
        peer = request.transport.get_extra_info("peername") if request.transport else None
        state.seen.append({"path": request.path, "host": request.headers.get("Host", ""), "peer": str(peer)})

    async def ok(request: web.Request) -> web.Response:
        await record(request)
        return web.json_response({"path": request.path, "host": request.headers.get("Host")})

    async def to_metadata(request: web.Request) -> web.Response:
        await record(request)
        raise web.HTTPFound("http://169.254.169.254/latest/meta-data")

    async def to_decimal_loopback(request: web.Request) -> web.Response:
        await record(request)
        raise web.HTTPFound(f"http://2130706433:{state.port}/ok")

    async def to_ok(request: web.Request) -> web.Response:
        await record(request)
        raise web.HTTPFound("/ok")

    app = web.Application()
    app.router.add_get("/ok", ok)
    app.router.add_get("/to-metadata", to_metadata)
    app.router.add_get("/to-decimal-loopback", to_decimal_loopback)
    app.router.add_get("/to-ok", to_ok)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    state.port = runner.addresses[0][1]
    try:
        yield state
    finally:
        await runner.cleanup()


Lib = Literal["httpx", "httpx2"]
LIBS: list[Lib] = ["httpx", "httpx2"]
LOOPBACK = AllowList.parse("127.0.0.1")


async def _get(lib: Lib, allow: AllowList, url: str) -> tuple[int, Any]:
    if lib == "httpx":
        async with guarded_client(allow, follow_redirects=True, timeout=10) as client:
            response = await client.get(url)
            return response.status_code, response.json()
    async with guarded_client(allow, lib="httpx2", follow_redirects=True, timeout=10) as client2:
        response2 = await client2.get(url)
        return response2.status_code, response2.json()


@pytest.mark.parametrize("lib", LIBS)
async def test_redirect_to_metadata_is_refused(lib: Lib, upstream: Upstream) -> None:
    with pytest.raises(UpstreamRefused, match=re.escape("169.254.169.254 is a link-local/cloud metadata address")):
        await _get(lib, LOOPBACK, f"http://127.0.0.1:{upstream.port}/to-metadata")
    assert [s["path"] for s in upstream.seen] == ["/to-metadata"]


@pytest.mark.parametrize("lib", LIBS)
async def test_redirect_to_numeric_loopback_needs_its_own_allowance(lib: Lib, upstream: Upstream) -> None:
    # A numeric host form is judged by the address it denotes, so an allowed network covers it.
    status, body = await _get(lib, LOOPBACK, f"http://127.0.0.1:{upstream.port}/to-decimal-loopback")
    assert status == 200
    assert body["host"] == f"2130706433:{upstream.port}"
    with pytest.raises(UpstreamRefused, match=re.escape("2130706433 is a numeric form of 127.0.0.1")):
        await _get(lib, AllowList.parse("127.0.0.1.example"), f"http://2130706433:{upstream.port}/ok")


@pytest.mark.parametrize("lib", LIBS)
async def test_redirect_to_allowed_path_succeeds(lib: Lib, upstream: Upstream) -> None:
    status, body = await _get(lib, LOOPBACK, f"http://127.0.0.1:{upstream.port}/to-ok")
    assert status == 200
    assert body == {"path": "/ok", "host": f"127.0.0.1:{upstream.port}"}
    assert [s["path"] for s in upstream.seen] == ["/to-ok", "/ok"]


@pytest.mark.parametrize("lib", LIBS)
async def test_unallowed_loopback_is_refused_before_connecting(lib: Lib, upstream: Upstream) -> None:
    with pytest.raises(UpstreamRefused, match=re.escape("127.0.0.1 is a loopback address")):
        await _get(lib, NO_ALLOW, f"http://127.0.0.1:{upstream.port}/ok")
    assert upstream.seen == []


@pytest.mark.parametrize("lib", LIBS)
async def test_hostname_keeps_host_header_and_connects_to_vetted_ip(lib: Lib, upstream: Upstream) -> None:
    allow = AllowList.parse("localhost")
    target = await check_url(f"http://localhost:{upstream.port}/ok", allow)
    if "127.0.0.1" not in target.addresses:
        pytest.skip("localhost does not resolve to 127.0.0.1 on this machine")
    status, body = await _get(lib, allow, f"http://localhost:{upstream.port}/ok")
    assert status == 200
    assert body["host"] == f"localhost:{upstream.port}"
    assert upstream.seen[-1]["peer"].startswith("('127.0.0.1'")


@pytest.mark.parametrize("lib", LIBS)
async def test_name_is_resolved_once_and_never_again(
    lib: Lib, upstream: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rebinding resolver answers 127.0.0.1 once, then fails: the request must use the first answer."""
    loop = asyncio.get_running_loop()
    real_getaddrinfo = loop.getaddrinfo
    calls: list[str] = []

    async def rebinding(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host != "upstream.test":
            return await real_getaddrinfo(host, port, *args, **kwargs)
        calls.append(host)
        if len(calls) > 1:
            raise socket.gaierror(socket.EAI_NONAME, "second lookup: rebinding attempt")
        return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", ("127.0.0.1", port))]

    monkeypatch.setattr(loop, "getaddrinfo", rebinding)
    status, body = await _get(lib, LOOPBACK, f"http://upstream.test:{upstream.port}/ok")
    assert status == 200
    assert body["host"] == f"upstream.test:{upstream.port}"
    assert calls == ["upstream.test"]


@pytest.mark.parametrize("lib", LIBS)
async def test_transport_refuses_credentials_in_url(lib: Lib, upstream: Upstream) -> None:
    with pytest.raises(UpstreamRefused, match="must not carry credentials"):
        await _get(lib, LOOPBACK, f"http://u:p@127.0.0.1:{upstream.port}/ok")
    assert upstream.seen == []


def test_transport_and_client_refuse_proxy_bypass() -> None:
    makers: list[Callable[[], object]] = [
        lambda: guarded_transport(LOOPBACK, proxy="http://127.0.0.1:3128"),
        lambda: guarded_transport(LOOPBACK, lib="httpx2", uds="/tmp/sock"),
        lambda: guarded_client(LOOPBACK, proxy="http://127.0.0.1:3128"),
        lambda: guarded_client(LOOPBACK, lib="httpx2", transport=httpx2.AsyncHTTPTransport()),
    ]
    for make in makers:
        with pytest.raises(ValueError, match="bypass the SSRF guard"):
            make()


def test_guarded_transport_types() -> None:
    assert isinstance(guarded_transport(LOOPBACK), httpx.AsyncBaseTransport)
    assert isinstance(guarded_transport(LOOPBACK, lib="httpx2", http2=False), httpx2.AsyncBaseTransport)
    client = guarded_client(LOOPBACK, lib="httpx2", verify=False)
    assert isinstance(client, httpx2.AsyncClient)
    assert client.trust_env is False
