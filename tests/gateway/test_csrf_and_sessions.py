"""Browser sessions: cookie flags, CSRF on every cookie-authenticated change, cross-site posts refused,
logout, lockout, and the web UI reachable only through the gateway."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.gateway.humans import CSRF_FIELD, browser_login
from tests.support.agentport import Tenant, new_tenant
from tests.support.stack import Stack

EVIL = "https://evil.example"


@pytest.fixture(scope="module")
async def tenant(stack: Stack) -> Tenant:
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=60) as http:
        return await new_tenant(stack, http, "csrf-" + secrets.token_hex(3))


@pytest.fixture
async def browser(stack: Stack, tenant: Tenant) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    client, csrf = await browser_login(stack.base_url, tenant.email, tenant.password)
    try:
        yield client, csrf
    finally:
        await client.aclose()


async def key_names(stack: Stack, tenant: Tenant) -> set[str]:
    async with httpx.AsyncClient(base_url=stack.base_url) as http:
        return {k["name"] for k in (await http.get("/api/api-keys", headers=tenant.human)).json()}


async def test_session_cookie_is_httponly_samesite_and_not_readable_by_scripts(stack: Stack, tenant: Tenant) -> None:
    async with httpx.AsyncClient(base_url=stack.base_url) as client:
        page = await client.get("/login")
        csrf = CSRF_FIELD.search(page.text)
        assert csrf
        r = await client.post(
            "/login",
            data={"csrf_token": csrf.group(1), "email": tenant.email, "password": tenant.password},
            headers={"Origin": stack.base_url},
        )
    cookie = r.headers["set-cookie"]
    assert cookie.startswith("agentport_session=aps_")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie, "served over plain http here; Secure is set when AGENTPORT_BASE_URL is https"


async def test_a_cross_site_form_post_is_refused(
    stack: Stack, tenant: Tenant, browser: tuple[httpx.AsyncClient, str]
) -> None:
    client, csrf = browser
    name = "evil-" + secrets.token_hex(3)
    # What a page on another site can make a browser send: the cookie rides along, the token cannot be known.
    forged = await client.post(
        "/ui/keys", data={"name": name}, headers={"Origin": EVIL, "Sec-Fetch-Site": "cross-site"}
    )
    assert forged.status_code == 403
    assert forged.json()["error"]["code"] == "csrf_failed"
    # Even a leaked token does not help a cross-site request.
    leaked = await client.post(
        "/ui/keys", data={"name": name, "csrf_token": csrf}, headers={"Origin": EVIL, "Sec-Fetch-Site": "cross-site"}
    )
    assert leaked.status_code == 403
    assert name not in await key_names(stack, tenant)


async def test_a_same_site_form_post_without_the_token_is_refused(
    stack: Stack, tenant: Tenant, browser: tuple[httpx.AsyncClient, str]
) -> None:
    client, csrf = browser
    name = "no-token-" + secrets.token_hex(3)
    refused = await client.post("/ui/keys", data={"name": name}, headers={"Origin": stack.base_url})
    wrong = await client.post(
        "/ui/keys", data={"name": name, "csrf_token": "x" * 64}, headers={"Origin": stack.base_url}
    )
    assert refused.status_code == wrong.status_code == 403
    ok = await client.post("/ui/keys", data={"name": name, "csrf_token": csrf}, headers={"Origin": stack.base_url})
    assert ok.status_code == 200 and "shown only once" in ok.text
    assert name in await key_names(stack, tenant)


async def test_cookie_authenticated_rest_calls_need_the_csrf_header(
    stack: Stack, tenant: Tenant, browser: tuple[httpx.AsyncClient, str]
) -> None:
    client, csrf = browser
    assert (await client.get("/api/org-settings")).status_code == 200, "reads need no token"
    body = {"approval_expiry_seconds": 900}
    assert (await client.put("/api/org-settings", json=body)).status_code == 403
    evil = await client.put("/api/org-settings", json=body, headers={"X-CSRF-Token": csrf, "Origin": EVIL})
    assert evil.status_code == 403
    ok = await client.put("/api/org-settings", json=body, headers={"X-CSRF-Token": csrf, "Origin": stack.base_url})
    assert ok.status_code == 200, ok.text


async def test_login_form_needs_its_own_token_and_the_same_origin(stack: Stack, tenant: Tenant) -> None:
    form = {"email": tenant.email, "password": tenant.password}
    async with httpx.AsyncClient(base_url=stack.base_url) as client:
        assert (await client.post("/login", data=form)).status_code == 403
        page = await client.get("/login")
        token = CSRF_FIELD.search(page.text)
        assert token
        cross = await client.post("/login", data={**form, "csrf_token": token.group(1)}, headers={"Origin": EVIL})
        assert cross.status_code == 403
        assert "agentport_session" not in client.cookies


async def test_logout_ends_the_session(stack: Stack, browser: tuple[httpx.AsyncClient, str]) -> None:
    client, csrf = browser
    assert (await client.get("/ui/approvals")).status_code == 200
    session = client.cookies["agentport_session"]
    out = await client.post("/logout", data={"csrf_token": csrf}, headers={"Origin": stack.base_url})
    assert out.status_code == 303 and out.headers["location"] == "/login"
    client.cookies.set("agentport_session", session)  # Even a kept copy of the cookie is dead now.
    after = await client.get("/ui/approvals")
    assert after.status_code == 303 and after.headers["location"].startswith("/login")


async def test_repeated_wrong_passwords_lock_the_account(stack: Stack, http: httpx.AsyncClient) -> None:
    tenant = await new_tenant(stack, http, "lock-" + secrets.token_hex(3))
    codes = [
        (await http.post("/api/auth/token", data={"username": tenant.email, "password": "wrong-password"})).status_code
        for _ in range(5)
    ]
    assert codes == [401] * 5
    right = await http.post("/api/auth/token", data={"username": tenant.email, "password": tenant.password})
    assert right.status_code == 429


async def test_pages_need_a_session(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.base_url) as client:
        page = await client.get("/approve/anything")
        assert page.status_code == 303
        assert urlsplit(page.headers["location"]).path == "/login"
        assert parse_qs(urlsplit(page.headers["location"]).query)["next"] == ["/approve/anything"]
        assert (await client.get("/ui/events")).status_code == 401


async def test_forged_identity_headers_are_ignored(stack: Stack, tenant: Tenant) -> None:
    forged = {"X-AgentPort-Context": "eyJ1c2VyIjp7fX0=", "X-AgentPort-Proxy-Secret": "guess"}
    async with httpx.AsyncClient(base_url=stack.base_url) as client:
        r = await client.get("/ui/keys", headers=forged)
    assert r.status_code == 303 and r.headers["location"].startswith("/login")


async def test_the_ui_service_refuses_requests_that_bypass_the_gateway(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.urls["approvals"]) as client:
        r = await client.get("/ui/approvals", headers={"X-AgentPort-Proxy-Secret": "guess"})
    assert r.status_code == 403


async def test_cookies_do_not_authenticate_mcp(stack: Stack, browser: tuple[httpx.AsyncClient, str]) -> None:
    client, _ = browser
    r = await client.post("/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    assert r.status_code == 401
