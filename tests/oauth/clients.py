"""OAuth clients of the gateway in tests: a human answering the consent page with a real HTTP client, a
hand-rolled client for the refusal tests, and the official MCP SDK's OAuth provider."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
from mcp.shared.auth import OAuthClientInformationFull, OAuthToken

from tests.support.agentport import Tenant

LOOPBACK_REDIRECT = "http://127.0.0.1:33418/callback"


class _Form(HTMLParser):
    """The consent page's form fields (hidden inputs and buttons)."""

    def __init__(self) -> None:
        super().__init__()
        self.fields: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "input" and a.get("type") == "hidden" and a.get("name"):
            self.fields.append((str(a["name"]), a.get("value") or ""))


def hidden_fields(page: str) -> list[tuple[str, str]]:
    parser = _Form()
    parser.feed(page)
    return parser.fields


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    return verifier, challenge


def redirect_params(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


@dataclass
class Human:
    """A person in a browser: opens the consent page, signs in on it and clicks Allow or Deny."""

    base_url: str
    tenant: Tenant
    browser: httpx.AsyncClient = field(init=False)

    def __post_init__(self) -> None:
        self.browser = httpx.AsyncClient(base_url=self.base_url, timeout=30, follow_redirects=False)

    async def open(self, authorize_url: str) -> httpx.Response:
        return await self.browser.get(authorize_url)

    async def decide(
        self,
        authorize_url: str,
        decision: str = "allow",
        *,
        password: str | None = None,
        headers: dict[str, str] | None = None,
        signed_in: bool = False,
    ) -> httpx.Response:
        """Open the page and submit it; the response is the redirect back to the client (or a page)."""
        page = await self.open(authorize_url)
        assert page.status_code == 200, page.text
        form = [*hidden_fields(page.text), ("decision", decision)]
        if headers is None and not signed_in:
            form += [("email", self.tenant.email), ("password", password or self.tenant.password)]
        return await self.submit(form, headers=headers)

    async def submit(self, form: list[tuple[str, str]], headers: dict[str, str] | None = None) -> httpx.Response:
        data: dict[str, list[str]] = {}
        for key, value in form:
            data.setdefault(key, []).append(value)
        return await self.browser.post("/authorize", data=data, headers=headers or {})

    async def sign_in_to_web_ui(self) -> None:
        """Sign in the way the web UI's login form does, leaving the session cookie in this browser."""
        token = secrets.token_urlsafe(32)
        self.browser.cookies.set("agentport_csrf", token)
        r = await self.browser.post(
            "/login",
            data={"email": self.tenant.email, "password": self.tenant.password, "csrf_token": token, "next": "/"},
        )
        assert r.status_code == 303 and "agentport_session" in self.browser.cookies, r.text

    async def aclose(self) -> None:
        await self.browser.aclose()


@dataclass
class RawClient:
    """A registered public client speaking the protocol by hand, to probe what the server refuses."""

    base_url: str
    http: httpx.AsyncClient
    client_id: str = ""
    redirect_uri: str = LOOPBACK_REDIRECT
    client_secret: str | None = None

    async def register(self, **metadata: Any) -> dict[str, Any]:
        body = {
            "client_name": "Probe",
            "redirect_uris": [self.redirect_uri],
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"],
            **metadata,
        }
        r = await self.http.post(f"{self.base_url}/register", json=body)
        assert r.status_code == 201, r.text
        data: dict[str, Any] = r.json()
        self.client_id = data["client_id"]
        self.client_secret = data.get("client_secret")
        return data

    def authorize_url(self, challenge: str | None, **extra: str) -> str:
        params = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": self.redirect_uri,
            "state": secrets.token_urlsafe(8),
            "resource": f"{self.base_url}/mcp",
        }
        if challenge is not None:
            params.update(code_challenge=challenge, code_challenge_method="S256")
        params.update(extra)
        return f"{self.base_url}/authorize?{urlencode({k: v for k, v in params.items() if v is not None})}"

    async def token(self, **form: str) -> httpx.Response:
        data = {"client_id": self.client_id, **form}
        return await self.http.post(f"{self.base_url}/token", data=data)

    async def exchange(self, code: str, verifier: str, **extra: str) -> httpx.Response:
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "code_verifier": verifier,
            "redirect_uri": self.redirect_uri,
            **extra,
        }
        return await self.token(**form)

    async def refresh(self, refresh_token: str, **extra: str) -> httpx.Response:
        return await self.token(grant_type="refresh_token", refresh_token=refresh_token, **extra)


class MemoryStorage:
    """Token storage for the SDK's OAuth provider, kept in memory."""

    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client: OAuthClientInformationFull | None = None
        self.history: list[OAuthToken] = []

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens
        self.history.append(tokens)

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client = client_info


def csrf_of(page: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', page)
    assert match, page
    return match.group(1)
