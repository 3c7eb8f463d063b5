"""Two-factor over REST: set up, enable, every decision needs a fresh code, recovery codes work once,
login asks for a code, and disabling needs one."""

from __future__ import annotations

import secrets
import time

import asyncpg
import httpx
import pyotp

from tests.gateway.humans import invite_and_join
from tests.support.agentport import add_custom_upstream, new_tenant
from tests.support.stack import Stack
from tests.support.upstream import Upstream


def code_at(secret: str, offset_seconds: float = 0) -> str:
    return pyotp.TOTP(secret).at(time.time() + offset_seconds)


async def test_two_factor_guards_decisions_and_login(
    stack: Stack, http: httpx.AsyncClient, open_upstream: Upstream
) -> None:
    tenant = await new_tenant(stack, http, "tfa-" + secrets.token_hex(3))
    approver = await invite_and_join(http, tenant.human, tenant.org, "approver")
    await add_custom_upstream(http, tenant, open_upstream.url, "tfa-up", bearer=False)
    assert (
        await http.post("/api/installed", json={"integration_id": "tfa-up"}, headers=tenant.agent)
    ).status_code == 201

    setup = (await http.post("/api/users/me/totp/setup", headers=approver.headers)).json()
    assert setup["otpauth_uri"].startswith("otpauth://totp/AgentPort:")
    wrong = await http.post("/api/users/me/totp/enable", json={"code": "000000"}, headers=approver.headers)
    assert wrong.status_code == 403 and wrong.json()["error"]["code"] == "totp_invalid"
    # Enabled with the current code; decisions below use the next step's (accepted for clock drift), which is
    # fresh however slow the machine is.
    first = code_at(setup["secret"])
    enabled = await http.post("/api/users/me/totp/enable", json={"code": first}, headers=approver.headers)
    assert enabled.status_code == 200, enabled.text
    recovery = enabled.json()["recovery_codes"]
    assert len(recovery) == 10 and len(set(recovery)) == 10

    async def held() -> str:
        r = await http.post(
            "/api/tools/tfa-up/add/call",
            json={"arguments": {"a": secrets.randbelow(10**9), "b": 1}},
            headers=tenant.agent,
        )
        return str(r.json()["approval_request_id"])

    async def decide(request_id: str, **body: str) -> httpx.Response:
        return await http.post(
            f"/api/tool-approvals/requests/{request_id}/approve-once", json=body, headers=approver.headers
        )

    one = await held()
    missing = await decide(one)
    assert missing.status_code == 403 and missing.json()["error"]["code"] == "totp_required"
    assert (await decide(one, totp_code="123456")).json()["error"]["code"] == "totp_invalid"
    code = code_at(setup["secret"], 30)
    assert (await decide(one, totp_code=code)).status_code == 200
    replay = await decide(await held(), totp_code=code)
    assert replay.status_code == 403 and "already used" in replay.json()["error"]["message"]

    two = await held()
    assert (await decide(two, totp_code=recovery[0])).status_code == 200
    again = await decide(await held(), totp_code=recovery[0])
    assert again.status_code == 403, "a recovery code works once"

    no_code = await http.post("/api/auth/token", data={"username": approver.email, "password": approver.password})
    assert no_code.status_code == 403 and no_code.json()["error"]["code"] == "totp_required"
    with_code = await http.post(
        "/api/auth/token",
        data={"username": approver.email, "password": approver.password, "totp_code": recovery[1]},
    )
    assert with_code.status_code == 200

    refused = await http.post("/api/users/me/totp/disable", json={}, headers=approver.headers)
    assert refused.status_code == 403
    off = await http.post("/api/users/me/totp/disable", json={"code": recovery[2]}, headers=approver.headers)
    assert off.status_code == 200
    assert (await decide(await held())).status_code == 200, "with two-factor off, no code is needed"


async def test_the_totp_secret_is_encrypted_at_rest(stack: Stack, http: httpx.AsyncClient) -> None:
    tenant = await new_tenant(stack, http, "tfa-rest-" + secrets.token_hex(3))
    setup = (await http.post("/api/users/me/totp/setup", headers=tenant.human)).json()
    conn = await asyncpg.connect(stack.env["DATABASE_URL"])
    try:
        stored = await conn.fetch(f'SELECT pending_secret FROM "{stack.env["AGENTPORT_NAMESPACE"]}_gateway".user_totp')
    finally:
        await conn.close()
    assert stored and all(setup["secret"] not in (r["pending_secret"] or "") for r in stored)


async def test_allowing_a_tool_needs_a_fresh_code_when_two_factor_is_on(
    stack: Stack, http: httpx.AsyncClient, open_upstream: Upstream
) -> None:
    """Setting `allow` lifts the approval gate like "Always allow this tool", so it is guarded the same way;
    tightening (ask, deny) and re-saving `allow` need no code."""
    tenant = await new_tenant(stack, http, "tfa-mode-" + secrets.token_hex(3))
    await add_custom_upstream(http, tenant, open_upstream.url, "tfa-up", bearer=False)
    assert (
        await http.post("/api/installed", json={"integration_id": "tfa-up"}, headers=tenant.agent)
    ).status_code == 201
    setup = (await http.post("/api/users/me/totp/setup", headers=tenant.human)).json()
    enabled = await http.post(
        "/api/users/me/totp/enable", json={"code": code_at(setup["secret"])}, headers=tenant.human
    )
    assert enabled.status_code == 200, enabled.text

    async def put(mode: str, **body: str) -> httpx.Response:
        return await http.put("/api/tool-settings/tfa-up/echo", json={"mode": mode, **body}, headers=tenant.human)

    refused = await put("allow")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "totp_required", refused.text
    assert (await put("allow", totp_code="000000")).json()["error"]["code"] == "totp_invalid"
    assert (await http.get("/api/tools/tfa-up/echo", headers=tenant.human)).json()["mode"] == "require_approval"
    allowed = await put("allow", totp_code=code_at(setup["secret"], 30))
    assert allowed.status_code == 200 and allowed.json()["mode"] == "allow", allowed.text
    assert (await put("allow")).status_code == 200  # already allowed: nothing is lifted
    assert (await put("deny")).status_code == 200
    assert (await put("require_approval")).status_code == 200
    by_key = await http.put("/api/tool-settings/tfa-up/echo", json={"mode": "allow"}, headers=tenant.agent)
    assert by_key.status_code == 403 and by_key.json()["error"]["code"] == "forbidden"
