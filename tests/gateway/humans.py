"""Acting as humans in tests: invitations accepted, REST logins, and browser-like cookie sessions."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

import httpx

from tests.support.agentport import Tenant, login

CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class Person:
    email: str
    password: str
    role: str
    token: str
    user_id: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


async def invite_and_join(http: httpx.AsyncClient, inviter: dict[str, str], org: str, role: str) -> Person:
    """An owner or admin invites someone with `role`; they accept through the public REST call and log in."""
    email = f"{role}-{secrets.token_hex(4)}@{org}.example"
    password = "pw-" + secrets.token_hex(8)
    invited = await http.post("/api/invitations", json={"email": email, "role": role}, headers=inviter)
    assert invited.status_code == 201, invited.text
    accepted = await http.post("/api/invitations/accept", json={"token": invited.json()["token"], "password": password})
    assert accepted.status_code == 201, accepted.text
    token = await login(http, email, password)
    me = await http.get("/api/users/me", headers={"Authorization": f"Bearer {token}"})
    assert me.json()["role"] == role
    return Person(email=email, password=password, role=role, token=token, user_id=me.json()["actor"]["id"])


def owner_of(tenant: Tenant, user_id: str) -> Person:
    return Person(tenant.email, tenant.password, "owner", tenant.human_token, user_id)


async def browser_login(base_url: str, email: str, password: str) -> tuple[httpx.AsyncClient, str]:
    """A client holding a session cookie the way a browser gets one (login form); returns it and the CSRF token."""
    client = httpx.AsyncClient(base_url=base_url, timeout=60, follow_redirects=False)
    page = await client.get("/login")
    match = CSRF_FIELD.search(page.text)
    assert match, page.text[:500]
    r = await client.post(
        "/login",
        data={"csrf_token": match.group(1), "email": email, "password": password},
        headers={"Origin": base_url},
    )
    assert r.status_code == 303 and "agentport_session" in client.cookies, (r.status_code, r.headers)
    page = await client.get("/ui/settings")
    match = CSRF_FIELD.search(page.text)
    assert match, page.text[:500]
    return client, match.group(1)
