"""The approval flow in a real browser: the live queue, the approval page, approve and deny reaching the agent,
and two-factor on decisions."""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import Any

import pyotp
from playwright.async_api import expect

from tests.support.agentport import call, mcp_client
from tests.ui.conftest import VIEWPORT, Site, shot


async def held_call(site: Site, client: Any, tool: str, arguments: dict[str, Any], info: str) -> dict[str, Any]:
    held = await call(
        client, "call_tool", integration_id=site.integration, tool_name=tool, arguments=arguments, additional_info=info
    )
    assert held["status"] == "approval_required", held
    return held


async def test_first_user_registration_then_login(browser: Any, site: Site) -> None:
    context = await browser.new_context(viewport=VIEWPORT)
    page = await context.new_page()
    try:
        await page.goto(site.url + "/setup")
        assert page.url.endswith("/login"), "set-up closes once the first user exists"
        await page.fill("input[name=email]", site.owner.email)
        await page.fill("input[name=password]", "not-the-password")
        await page.click("button[type=submit]")
        await expect(page.locator(".alert.error")).to_contain_text("Wrong email or password")
        await page.fill("input[name=password]", site.owner.password)
        await page.click("button[type=submit]")
        await page.wait_for_url("**/ui/approvals")
        await expect(page.locator(".who")).to_contain_text(f"{site.owner.email} · owner")
        cookies = {c["name"]: c for c in await context.cookies()}
        assert cookies["agentport_session"]["httpOnly"] and cookies["agentport_session"]["sameSite"] == "Lax"
        await shot(page, "login-then-queue")
    finally:
        await context.close()


async def test_gated_call_appears_live_and_approving_returns_the_real_result(page: Any, site: Site) -> None:
    await page.goto(site.url + "/ui/approvals")
    await page.evaluate("window.__stillHere = true")
    a = secrets.randbelow(10**6)
    long_note = "Add the invoice totals for the quarterly report. " * 8
    async with mcp_client(site.url, site.owner.agent) as client:
        held = await held_call(site, client, "add", {"a": a, "b": 5}, long_note)
        request_id = held["approval_request_id"]
        row = page.locator(f"tr[data-request-id='{request_id}']")
        await expect(row).to_be_visible(timeout=10_000)
        assert await page.evaluate("window.__stillHere === true"), "the row arrived without a reload"
        await expect(row).to_contain_text("laptop-agent")
        await shot(page, "queue", guide=True)

        waiting = asyncio.create_task(call(client, "await_approval", request_id=request_id))
        await row.get_by_role("link", name="Review").click()
        await page.wait_for_url(f"**/approve/{request_id}")
        await expect(page.locator("#arguments")).to_contain_text(f'"a": {a}')
        await expect(page.locator(".agent-info")).to_contain_text("quarterly report")
        await expect(page.locator(".facts")).to_contain_text("API key “laptop-agent”")
        await expect(page.locator(".facts")).to_contain_text("127.0.0.1")
        await expect(page.locator(".countdown")).to_contain_text("min")
        await shot(page, "approval-page", guide=True)
        await page.get_by_role("button", name="Approve once").click()
        await expect(page.locator("#outcome")).to_contain_text("approve once")
        await expect(page.locator("#outcome")).to_contain_text(site.owner.email)
        outcome = await asyncio.wait_for(waiting, 30)
    assert outcome["status"] == "executed", outcome
    assert outcome["result"]["structuredContent"] == {"sum": a + 5}
    await shot(page, "approval-approved")


async def test_deny_with_a_reason_reaches_the_agent(page: Any, site: Site) -> None:
    name = f"prod-{secrets.token_hex(3)}"
    async with mcp_client(site.url, site.owner.agent) as client:
        held = await held_call(site, client, "delete_repo", {"name": name}, "Clean up an old repository")
        await page.goto(held["approval_url"].replace("http://127.0.0.1:4747", site.url))
        await page.fill("#reason", "production repository: never delete")
        await page.get_by_role("button", name="Deny").click()
        await expect(page.locator("#outcome")).to_contain_text("production repository: never delete")
        await shot(page, "approval-denied")
        outcome = await call(client, "await_approval", request_id=held["approval_request_id"])
    assert outcome["status"] == "denied"
    assert outcome["reason"] == "production repository: never delete"
    assert outcome["decided_by"] == site.owner.email


async def test_an_approver_with_two_factor_must_give_a_valid_code(browser: Any, page: Any, site: Site) -> None:
    # The owner invites an approver from the People page.
    email = f"approver-{secrets.token_hex(3)}@acme.example"
    await page.goto(site.url + "/ui/users")
    await page.fill("#invite-email", email)
    await page.select_option("#invite-role", "approver")
    await page.get_by_role("button", name="Invite").click()
    link = await page.locator("#invite-link").inner_text()

    context = await browser.new_context(viewport=VIEWPORT)
    tab = await context.new_page()
    tab.set_default_timeout(15_000)
    try:
        await tab.goto(link.replace("http://127.0.0.1:4747", site.url))
        password = "pw-" + secrets.token_hex(8)
        await tab.fill("input[name=password]", password)
        await tab.fill("input[name=password_again]", password)
        await tab.get_by_role("button", name="Create my account").click()
        await tab.wait_for_url("**/ui/approvals")
        await expect(tab.locator(".who")).to_contain_text("approver")

        await tab.goto(site.url + "/ui/settings")
        await tab.get_by_role("button", name="Set up two-factor").click()
        await expect(tab.locator("#totp-qr svg")).to_be_visible()
        secret = (await tab.locator("#totp-secret").inner_text()).strip()
        totp = pyotp.TOTP(secret)
        await shot(tab, "two-factor-setup")
        # Enable with the current code and decide with the next step's (accepted for clock drift): that one is
        # fresh, however long the steps in between take on a loaded machine.
        await tab.fill("#totp-enable-code", totp.now())
        await tab.get_by_role("button", name="Turn on").click()
        await expect(tab.locator("#recovery-codes li")).to_have_count(10)

        async with mcp_client(site.url, site.owner.agent) as client:
            a = secrets.randbelow(10**6)
            held = await held_call(site, client, "add", {"a": a, "b": 11}, "Needs a second factor")
            await tab.goto(site.url + f"/approve/{held['approval_request_id']}")
            await expect(tab.locator("#totp_code")).to_be_visible()
            await tab.fill("#totp_code", "000000" if totp.now() != "000000" else "111111")
            await tab.get_by_role("button", name="Approve once").click()
            await expect(tab.locator(".alert.error")).to_contain_text("wrong two-factor code")
            await tab.fill("#totp_code", totp.at(time.time() + 30))
            await tab.get_by_role("button", name="Approve once").click()
            await expect(tab.locator("#outcome")).to_contain_text(email)
            await shot(tab, "two-factor-decision")
            outcome = await call(client, "await_approval", request_id=held["approval_request_id"])
        assert outcome["status"] == "executed"
        assert outcome["result"]["structuredContent"] == {"sum": a + 11}
    finally:
        await context.close()
