"""What the gateway's authorization server refuses, each with the OAuth error a client can act on."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest

from tests.oauth.clients import Human, RawClient, hidden_fields, pkce, redirect_params
from tests.oauth.conftest import Seen
from tests.support.agentport import Tenant
from tests.support.stack import Stack

LIST = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}


@pytest.fixture
async def http(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=30) as client:
        yield client


@pytest.fixture
async def raw(stack: Stack, http: httpx.AsyncClient) -> RawClient:
    client = RawClient(stack.base_url, http)
    await client.register()
    return client


@pytest.fixture
async def human(stack: Stack, tenant: Tenant) -> AsyncIterator[Human]:
    person = Human(stack.base_url, tenant)
    yield person
    await person.aclose()


async def code_for(raw: RawClient, human: Human, challenge: str | None, seen: Seen, **extra: str) -> str:
    response = await human.decide(raw.authorize_url(challenge, **extra))
    assert response.status_code == 302, response.text
    params = redirect_params(response.headers["location"])
    assert "code" in params, params
    seen.add(params["code"])
    return params["code"]


async def tokens(raw: RawClient, human: Human, seen: Seen) -> dict[str, Any]:
    verifier, challenge = pkce()
    r = await raw.exchange(await code_for(raw, human, challenge, seen), verifier)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    seen.add(body["access_token"], body.get("refresh_token"))
    return body


def error_of(response: httpx.Response) -> str:
    return str(response.json()["error"])


async def mcp_status(http: httpx.AsyncClient, access_token: str) -> httpx.Response:
    headers = {"Authorization": f"Bearer {access_token}", "Accept": "application/json, text/event-stream"}
    return await http.post("/mcp", json=LIST, headers=headers)


async def test_wrong_pkce_verifier_is_invalid_grant(raw: RawClient, human: Human, seen: Seen) -> None:
    _, challenge = pkce()
    other_verifier, _ = pkce()
    r = await raw.exchange(await code_for(raw, human, challenge, seen), other_verifier)
    assert r.status_code == 400 and error_of(r) == "invalid_grant"


async def test_authorization_without_pkce_or_with_plain_is_refused(raw: RawClient, human: Human) -> None:
    for extra in ({}, {"code_challenge": "x" * 43, "code_challenge_method": "plain"}):
        r = await human.open(raw.authorize_url(None, **extra))
        assert r.status_code == 302, r.text
        params = redirect_params(r.headers["location"])
        assert params["error"] == "invalid_request", params
        assert "code" not in params


async def test_reused_code_is_refused_and_revokes_what_it_issued(
    raw: RawClient, human: Human, seen: Seen, http: httpx.AsyncClient
) -> None:
    verifier, challenge = pkce()
    code = await code_for(raw, human, challenge, seen)
    first = await raw.exchange(code, verifier)
    assert first.status_code == 200
    seen.add(first.json()["access_token"], first.json()["refresh_token"])
    assert (await mcp_status(http, first.json()["access_token"])).status_code != 401
    again = await raw.exchange(code, verifier)
    assert again.status_code == 400 and error_of(again) == "invalid_grant"
    revoked = await mcp_status(http, first.json()["access_token"])
    assert revoked.status_code == 401 and 'error="invalid_token"' in revoked.headers["WWW-Authenticate"]


async def test_unregistered_redirect_uri_is_refused_without_redirecting(raw: RawClient, human: Human) -> None:
    _, challenge = pkce()
    r = await human.open(raw.authorize_url(challenge, redirect_uri="https://attacker.example/callback"))
    assert r.status_code == 400
    assert "location" not in r.headers
    assert "invalid_request" in r.text


async def test_mismatched_redirect_uri_at_the_token_endpoint_is_invalid_grant(
    raw: RawClient, human: Human, seen: Seen
) -> None:
    verifier, challenge = pkce()
    code = await code_for(raw, human, challenge, seen)
    r = await raw.exchange(code, verifier, redirect_uri="http://127.0.0.1:33418/other")
    assert r.status_code == 400 and error_of(r) == "invalid_grant"


async def test_loopback_redirect_may_come_back_on_another_port(raw: RawClient, human: Human, seen: Seen) -> None:
    verifier, challenge = pkce()
    raw.redirect_uri = "http://127.0.0.1:50123/callback"
    r = await raw.exchange(await code_for(raw, human, challenge, seen), verifier)
    assert r.status_code == 200, r.text
    seen.add(r.json()["access_token"], r.json()["refresh_token"])


async def test_a_resource_other_than_our_mcp_is_invalid_target(raw: RawClient, human: Human, seen: Seen) -> None:
    _, challenge = pkce()
    r = await human.open(raw.authorize_url(challenge, resource="https://other.example/mcp"))
    assert r.status_code == 302
    assert redirect_params(r.headers["location"])["error"] == "invalid_target"
    verifier, challenge = pkce()
    code = await code_for(raw, human, challenge, seen)
    r = await raw.exchange(code, verifier, resource="https://other.example/mcp")
    assert r.status_code == 400 and error_of(r) == "invalid_target"


async def test_token_for_another_resource_is_refused_by_mcp(
    raw: RawClient, human: Human, seen: Seen, http: httpx.AsyncClient, gateway_db: asyncpg.Connection
) -> None:
    issued = await tokens(raw, human, seen)
    # As if the gateway had moved: the grant names a resource this gateway no longer is.
    await gateway_db.execute(
        "UPDATE oauth_grants SET resource='https://old.example/mcp' WHERE client_id=$1", raw.client_id
    )
    r = await mcp_status(http, issued["access_token"])
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "invalid_token" and "another resource" in r.json()["error"]["message"]


async def test_revoked_access_token_is_refused(
    raw: RawClient, human: Human, seen: Seen, http: httpx.AsyncClient
) -> None:
    issued = await tokens(raw, human, seen)
    r = await http.post("/revoke", data={"token": issued["access_token"], "client_id": raw.client_id})
    assert r.status_code == 200
    refused = await mcp_status(http, issued["access_token"])
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_token"
    # Revoking the refresh token ends the grant: it can no longer be refreshed.
    await http.post("/revoke", data={"token": issued["refresh_token"], "client_id": raw.client_id})
    r = await raw.refresh(issued["refresh_token"])
    assert r.status_code == 400 and error_of(r) == "invalid_grant"


async def test_expired_access_token_is_refused(
    raw: RawClient, human: Human, seen: Seen, http: httpx.AsyncClient, gateway_db: asyncpg.Connection
) -> None:
    issued = await tokens(raw, human, seen)
    await gateway_db.execute(
        "UPDATE oauth_tokens SET expires_at = now() - interval '1 second' WHERE client_id=$1 AND kind='access'",
        raw.client_id,
    )
    r = await mcp_status(http, issued["access_token"])
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "invalid_token" and "expired" in r.json()["error"]["message"]
    assert 'error="invalid_token"' in r.headers["WWW-Authenticate"]


async def test_reused_refresh_token_revokes_the_whole_family(
    raw: RawClient, human: Human, seen: Seen, http: httpx.AsyncClient
) -> None:
    issued = await tokens(raw, human, seen)
    rotated = await raw.refresh(issued["refresh_token"])
    assert rotated.status_code == 200
    new = rotated.json()
    seen.add(new["access_token"], new["refresh_token"])
    assert new["refresh_token"] != issued["refresh_token"]
    replay = await raw.refresh(issued["refresh_token"])
    assert replay.status_code == 400 and error_of(replay) == "invalid_grant"
    assert (await mcp_status(http, new["access_token"])).status_code == 401
    assert error_of(await raw.refresh(new["refresh_token"])) == "invalid_grant"


async def test_denied_consent_sends_access_denied_and_no_code(raw: RawClient, human: Human) -> None:
    _, challenge = pkce()
    r = await human.decide(raw.authorize_url(challenge), "deny")
    params = redirect_params(r.headers["location"])
    assert r.status_code == 302 and params["error"] == "access_denied" and "code" not in params
    assert params["iss"] == raw.base_url


async def test_consent_form_cannot_be_altered_or_submitted_without_signing_in(raw: RawClient, human: Human) -> None:
    _, challenge = pkce()
    page = await human.open(raw.authorize_url(challenge))
    fields = hidden_fields(page.text)
    tampered = [(k, "http://127.0.0.1:33418/elsewhere" if k == "redirect_uri" else v) for k, v in fields]
    r = await human.submit(
        [*tampered, ("decision", "allow"), ("email", human.tenant.email), ("password", human.tenant.password)]
    )
    assert r.status_code == 400 and "location" not in r.headers
    wrong = await human.decide(raw.authorize_url(challenge), password="not-the-password")
    assert wrong.status_code == 401 and "location" not in wrong.headers


async def test_confidential_client_must_authenticate(
    http: httpx.AsyncClient, stack: Stack, human: Human, seen: Seen
) -> None:
    raw = RawClient(stack.base_url, http)
    registered = await raw.register(token_endpoint_auth_method="client_secret_post")
    assert registered["client_secret"].startswith("apcs_")
    seen.add(registered["client_secret"])
    verifier, challenge = pkce()
    code = await code_for(raw, human, challenge, seen)
    without = await raw.exchange(code, verifier)
    assert without.status_code in (400, 401) and error_of(without) == "invalid_client"
    verifier, challenge = pkce()
    code = await code_for(raw, human, challenge, seen)
    with_secret = await raw.exchange(code, verifier, client_secret=registered["client_secret"])
    assert with_secret.status_code == 200, with_secret.text
    seen.add(with_secret.json()["access_token"], with_secret.json()["refresh_token"])


@pytest.mark.parametrize(
    "uri",
    ["http://attacker.example/callback", "javascript:alert(1)", "https://app.example/cb#frag", "not a uri"],
)
async def test_registration_refuses_unsafe_redirect_uris(http: httpx.AsyncClient, uri: str) -> None:
    r = await http.post("/register", json={"client_name": "x", "redirect_uris": [uri]})
    assert r.status_code == 400 and error_of(r) == "invalid_redirect_uri", r.text


async def test_registration_accepts_native_app_redirects(http: httpx.AsyncClient) -> None:
    uris = [
        "cursor://anysphere.cursor-retrieval/oauth/callback",
        "http://localhost:6274/oauth/callback",
        "https://claude.ai/api/mcp/auth_callback",
    ]
    r = await http.post(
        "/register", json={"client_name": "Native", "redirect_uris": uris, "token_endpoint_auth_method": "none"}
    )
    assert r.status_code == 201, r.text
    assert "client_secret" not in r.json()
