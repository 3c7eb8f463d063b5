"""Odd and hostile HTTP input gets a clear answer: never a 500, never a corrupted kept-alive connection, never a
redirect off the site, never a secret echoed into a log."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import h11
import httpx
import pytest

from services.gateway.http import safe_next
from tests.gateway.humans import CSRF_FIELD, browser_login
from tests.support.agentport import Tenant, new_tenant
from tests.support.stack import Stack

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "probe", "version": "1"}},
}
MCP_HEADERS = [(b"content-type", b"application/json"), (b"accept", b"application/json, text/event-stream")]


@dataclass
class Answer:
    status: int
    headers: dict[bytes, bytes]
    body: bytes

    def error(self) -> dict[str, Any]:
        """The JSON error body, which every refusal must carry."""
        assert self.headers.get(b"content-type", b"").startswith(b"application/json"), (self.status, self.body)
        error: dict[str, Any] = json.loads(self.body)["error"]
        assert isinstance(error["code"], str) and isinstance(error["message"], str), error
        return error


Request = tuple[bytes, bytes, list[tuple[bytes, bytes]], bytes]


async def exchange(stack: Stack, *requests: Request) -> list[Answer]:
    """Send each request in turn on ONE kept-alive connection, reading each answer as a strict HTTP/1.1 client."""
    reader, writer = await asyncio.open_connection("127.0.0.1", stack.gateway_port)
    conn = h11.Connection(h11.CLIENT)
    answers: list[Answer] = []
    try:
        for method, target, headers, body in requests:
            head = [(b"host", f"127.0.0.1:{stack.gateway_port}".encode()), *headers]
            if body or method in (b"POST", b"PUT"):
                head.append((b"content-length", str(len(body)).encode()))
            writer.write(conn.send(h11.Request(method=method, target=target, headers=head)))
            if body:
                writer.write(conn.send(h11.Data(data=body)))
            writer.write(conn.send(h11.EndOfMessage()))
            await writer.drain()
            status, got, chunks = 0, {}, []
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    conn.receive_data(await asyncio.wait_for(reader.read(65536), 30))
                elif isinstance(event, h11.Response):
                    status, got = event.status_code, {k.lower(): v for k, v in event.headers}
                elif isinstance(event, h11.Data):
                    chunks.append(bytes(event.data))
                elif isinstance(event, h11.EndOfMessage):
                    break
                elif isinstance(event, h11.ConnectionClosed):
                    raise AssertionError(f"the server closed the connection during {method!r} {target!r}")
            answers.append(Answer(status, got, b"".join(chunks)))
            if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
                conn.start_next_cycle()
    finally:
        writer.close()
    return answers


async def raw(stack: Stack, data: bytes, port: int | None = None) -> bytes:
    """Send bytes no HTTP client would, and read until the server closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port or stack.gateway_port)
    try:
        writer.write(data)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), 30)
    finally:
        writer.close()


@pytest.fixture(scope="module")
async def tenant(stack: Stack) -> Tenant:
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=60) as http:
        return await new_tenant(stack, http, "hostile-" + secrets.token_hex(3))


# --- 1. HEAD /mcp ---------------------------------------------------------------------------------------------


async def test_head_on_mcp_sends_no_body_and_the_next_answer_on_the_connection_parses(
    stack: Stack, tenant: Tenant
) -> None:
    key = [(b"x-api-key", tenant.api_key.encode())]
    head, after = await exchange(stack, (b"HEAD", b"/mcp", key, b""), (b"GET", b"/health", [], b""))
    assert head.status in (200, 405), head
    assert head.body == b""
    assert (after.status, json.loads(after.body)) == (200, {"status": "ok"})


async def test_head_on_mcp_without_a_key_keeps_the_connection_usable(stack: Stack) -> None:
    head, after = await exchange(stack, (b"HEAD", b"/mcp", [], b""), (b"GET", b"/health", [], b""))
    assert head.status == 401 and head.body == b""
    assert (after.status, json.loads(after.body)) == (200, {"status": "ok"})


# --- 2. where a browser goes after signing in -----------------------------------------------------------------

HOSTILE_NEXT = [
    "/\t/evil.example",
    "/\n/evil.example",
    "/\r\n/evil.example",
    "/\x00/evil.example",
    "\t//evil.example",
    " //evil.example",
    "//evil.example",
    "///evil.example",
    "/\\evil.example",
    "\\\\evil.example",
    "\\/evil.example",
    "/\\/evil.example",
    "/%09/evil.example",
    "/%0a/evil.example",
    "/%0d%0a/evil.example",
    "/%2f/evil.example",
    "/%2F%2Fevil.example",
    "%2f%2fevil.example",
    "/%5cevil.example",
    "/%5Cevil.example",
    "/%252f/evil.example",
    "https://evil.example",
    "http:evil.example",
    "HTTPS://evil.example/x",
    "javascript:alert(1)",
    "JaVaScRiPt:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "evil.example",
    "ui/approvals",
    "/\u3000/evil.example",
    "/\u2028/evil.example",
    "/\x7f/evil.example",
    "/\x85/evil.example",
    "/ui\r\nSet-Cookie: x=1",
    "/" + "a" * 5000,
    "",
]
SAFE_NEXT = [
    "/",
    "/ui/approvals",
    "/approve/ar_123?x=1&y=2",
    "/authorize?response_type=code&client_id=c&redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fcb",
    "/ui/logs?q=a%20b#top",
]


@pytest.mark.parametrize("value", HOSTILE_NEXT)
def test_a_hostile_return_path_falls_back_to_the_home_page(value: str) -> None:
    assert safe_next(value) == "/"


@pytest.mark.parametrize("value", SAFE_NEXT)
def test_a_path_on_this_site_is_kept_as_given(value: str) -> None:
    assert safe_next(value) == value


def test_a_return_path_that_is_not_text_falls_back_to_the_home_page() -> None:
    assert safe_next(None) == "/" and safe_next(["/ui"]) == "/"


async def _login_form(client: httpx.AsyncClient) -> str:
    page = await client.get("/login")
    match = CSRF_FIELD.search(page.text)
    assert match, page.text[:300]
    return match.group(1)


@pytest.mark.parametrize("value", ["/\t/evil.example", "//evil.example", "/\\evil.example", "https://evil.example"])
async def test_signing_in_never_redirects_off_the_site(stack: Stack, tenant: Tenant, value: str) -> None:
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=60) as client:
        csrf = await _login_form(client)
        form = {"csrf_token": csrf, "email": tenant.email, "password": tenant.password, "next": value}
        r = await client.post("/login", data=form, headers={"Origin": stack.base_url})
    assert r.status_code == 303, r.text
    assert r.headers["location"] == "/"


async def test_the_percent_encoded_tab_of_the_report_does_not_redirect_off_the_site(
    stack: Stack, tenant: Tenant
) -> None:
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=60) as client:
        csrf = await _login_form(client)
        body = urlencode({"csrf_token": csrf, "email": tenant.email, "password": tenant.password})
        r = await client.post(
            "/login",
            content=f"{body}&next=/%09/evil.example".encode(),
            headers={"Origin": stack.base_url, "Content-Type": "application/x-www-form-urlencoded"},
        )
    assert r.status_code == 303, r.text
    assert r.headers["location"] == "/"


async def test_a_failed_sign_in_carries_only_a_safe_return_path_back_to_the_form(stack: Stack, tenant: Tenant) -> None:
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=60) as client:
        csrf = await _login_form(client)
        form = {"csrf_token": csrf, "email": tenant.email, "password": "wrong", "next": "/\t/evil.example"}
        r = await client.post("/login", data=form, headers={"Origin": stack.base_url})
    assert r.status_code == 303
    location = urlsplit(r.headers["location"])
    assert location.path == "/login" and "next" not in parse_qs(location.query), r.headers["location"]


async def test_a_safe_return_path_is_followed_after_signing_in(stack: Stack, tenant: Tenant) -> None:
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=60) as client:
        csrf = await _login_form(client)
        form = {"csrf_token": csrf, "email": tenant.email, "password": tenant.password, "next": "/ui/logs?limit=5"}
        r = await client.post("/login", data=form, headers={"Origin": stack.base_url})
    assert (r.status_code, r.headers["location"]) == (303, "/ui/logs?limit=5")


async def test_the_web_ui_sends_a_signed_out_browser_to_sign_in_with_a_safe_return_path(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=60) as client:
        r = await client.get("/ui/approvals", params={"x": "1"})
    assert r.status_code == 303
    location = urlsplit(r.headers["location"])
    assert location.path == "/login" and parse_qs(location.query)["next"] == ["/ui/approvals?x=1"]


# --- 3. odd input is a clear 4xx -----------------------------------------------------------------------------

ODD_KEYS = [
    "ap_caf\u00e9".encode(),
    "ap_\U0001f600".encode(),
    b"ap_\xff\xfe",
    b"\xff\xfe",
    b"\xc3\x28",
]


@pytest.mark.parametrize("value", ODD_KEYS, ids=repr)
@pytest.mark.parametrize("target", [b"/mcp", b"/api/tools"])
async def test_an_api_key_that_is_not_ascii_is_a_401(stack: Stack, value: bytes, target: bytes) -> None:
    method, body = (b"POST", json.dumps(INITIALIZE).encode()) if target == b"/mcp" else (b"GET", b"")
    [answer] = await exchange(stack, (method, target, [(b"x-api-key", value), *MCP_HEADERS], body))
    assert answer.status == 401, answer
    assert answer.error()["code"] == "unauthenticated"


@pytest.mark.parametrize("value", ODD_KEYS, ids=repr)
async def test_a_bearer_token_that_is_not_ascii_is_a_401(stack: Stack, value: bytes) -> None:
    headers = [(b"authorization", b"Bearer " + value), *MCP_HEADERS]
    for target, method, body in ((b"/mcp", b"POST", json.dumps(INITIALIZE).encode()), (b"/api/tools", b"GET", b"")):
        [answer] = await exchange(stack, (method, target, headers, body))
        assert answer.status == 401, (target, answer)
        assert answer.error()["code"] in ("unauthenticated", "invalid_token")


@pytest.mark.parametrize("value", ["caf\u00e9".encode(), "\U0001f600".encode(), b"\xff\xfe"], ids=repr)
async def test_an_odd_unrelated_header_on_mcp_is_not_a_500(stack: Stack, tenant: Tenant, value: bytes) -> None:
    headers = [(b"x-api-key", tenant.api_key.encode()), (b"x-note", value), (b"user-agent", value), *MCP_HEADERS]
    [answer] = await exchange(stack, (b"POST", b"/mcp", headers, json.dumps(INITIALIZE).encode()))
    assert answer.status == 200, answer
    assert b'"serverInfo"' in answer.body


@pytest.mark.parametrize("value", ["caf\u00e9".encode(), "\U0001f600".encode(), b"\xff\xfe"], ids=repr)
async def test_an_odd_session_cookie_or_proxy_secret_is_not_a_500(stack: Stack, tenant: Tenant, value: bytes) -> None:
    cookie = [(b"cookie", b"agentport_session=" + value)]
    [page] = await exchange(stack, (b"GET", b"/ui/approvals", cookie, b""))
    assert page.status == 303 and page.headers[b"location"].startswith(b"/login"), page
    [api] = await exchange(stack, (b"GET", b"/api/tools", cookie, b""))
    assert api.status == 401 and api.error()["code"] == "unauthenticated", api
    proxied = [(b"x-agentport-client-ip", b"10.0.0.1"), (b"x-agentport-proxy-secret", value)]
    [tools] = await exchange(stack, (b"GET", b"/api/tools", [(b"x-api-key", tenant.api_key.encode()), *proxied], b""))
    assert tools.status == 200, tools


@pytest.mark.parametrize("value", ["2025-06-18\u00e9".encode(), "\U0001f600".encode(), b"\xff"], ids=repr)
@pytest.mark.parametrize("name", [b"mcp-protocol-version", b"mcp-session-id", b"accept", b"content-type"])
async def test_an_mcp_header_that_is_not_ascii_is_a_400_naming_it(
    stack: Stack, tenant: Tenant, name: bytes, value: bytes
) -> None:
    headers = [(b"x-api-key", tenant.api_key.encode()), *((k, v) for k, v in MCP_HEADERS if k != name), (name, value)]
    [answer] = await exchange(stack, (b"POST", b"/mcp", headers, json.dumps(INITIALIZE).encode()))
    assert answer.status == 400, answer
    error = answer.error()
    assert error["code"] == "bad_request" and name.decode() in error["message"].lower(), error


async def test_a_backslash_in_redirect_uri_on_authorize_is_an_invalid_redirect_uri(
    stack: Stack, http: httpx.AsyncClient
) -> None:
    registered = "http://127.0.0.1:9/cb"
    r = await http.post(
        "/register",
        json={
            "client_name": "Probe",
            "redirect_uris": [registered],
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code"],
        },
    )
    assert r.status_code == 201, r.text
    client_id = r.json()["client_id"]
    verifier = secrets.token_urlsafe(40)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    for uri in ("http://127.0.0.1:9\\cb", "http://127.0.0.1:9/cb\\", "http:\\\\127.0.0.1:9/cb", "\\\\evil.example"):
        params = {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": uri,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "state": "s",
        }
        r = await http.get("/authorize", params=params)
        assert r.status_code == 400, (uri, r.status_code, r.text[:500])
        assert "redirect_uri" in r.text, (uri, r.text[:500])
        assert "location" not in r.headers


BIG = 5 * 1024 * 1024


@pytest.mark.parametrize(
    ("method", "target", "content_type"),
    [
        (b"POST", b"/mcp", b"application/json"),
        (b"POST", b"/api/tools/x/y/call", b"application/json"),
        (b"POST", b"/api/installed", b"application/json"),
        (b"POST", b"/api/auth/token", b"application/x-www-form-urlencoded"),
        (b"POST", b"/login", b"application/x-www-form-urlencoded"),
        (b"POST", b"/authorize", b"application/x-www-form-urlencoded"),
    ],
)
async def test_a_body_over_the_limit_is_a_413_with_the_json_error_body(
    stack: Stack, tenant: Tenant, method: bytes, target: bytes, content_type: bytes
) -> None:
    headers = [(b"x-api-key", tenant.api_key.encode()), (b"content-type", content_type), *MCP_HEADERS[1:]]
    headers += [(b"cookie", b"agentport_csrf=" + secrets.token_urlsafe(16).encode())]  # a sign-in form reads on
    [answer] = await exchange(stack, (method, target, headers, b"a" * BIG))
    assert answer.status == 413, answer.status
    assert answer.error()["code"] == "payload_too_large"


# --- 6. what a malformed request leaves in the log ------------------------------------------------------------


MALFORMED = [
    b"GET /mcp HTTP/1.1\r\nHost: x\r\nX-API-Key: %s\x01\r\n\r\n",
    b"GET /mcp HTTP/1.1\r\nHost: x\r\nX-API-Key %s\r\n\r\n",
    b"GET /mcp HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\x7f\r\n\r\n",
    b"GET /mcp HTTP/1.1\r\nHost: x\r\nX-A\x01: %s\r\n\r\n",
    b"GET /mcp?key=%s\x01 HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /mcp HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\nX-API-Key: %s\r\n\r\n",
]


@pytest.mark.parametrize("template", MALFORMED, ids=range(len(MALFORMED)))
@pytest.mark.parametrize("service", ["gateway", "approvals"])
async def test_a_malformed_request_never_puts_its_header_values_in_the_log(
    stack: Stack, template: bytes, service: str
) -> None:
    secret = "ap_secret" + secrets.token_hex(12)
    port = int(stack.urls[service].rsplit(":", 1)[1])
    path = stack.log_path(service)
    before = path.stat().st_size
    answer = await raw(stack, template.replace(b"%s", secret.encode()), port)
    assert answer.startswith((b"HTTP/1.1 400", b"HTTP/1.0 400")), answer[:200]
    with path.open("rb") as log:
        log.seek(before)
        written = log.read().decode(errors="replace")
    assert "http.bad_request" in written, f"the refusal is logged, without the request's values: {written[-2000:]}"
    assert secret not in written


@pytest.mark.parametrize("value", ["caf\u00e9".encode(), b"\xff\xfe"], ids=repr)
async def test_a_csrf_token_that_is_not_ascii_is_refused_not_a_500(stack: Stack, tenant: Tenant, value: bytes) -> None:
    client, _ = await browser_login(stack.base_url, tenant.email, tenant.password)
    cookie = f"agentport_session={client.cookies['agentport_session']}".encode()
    await client.aclose()
    headers = [(b"cookie", cookie), (b"origin", stack.base_url.encode()), (b"x-csrf-token", value)]
    headers.append((b"content-type", b"application/json"))
    [answer] = await exchange(stack, (b"POST", b"/api/api-keys", headers, b'{"name": "odd-csrf"}'))
    assert answer.status == 403, answer
