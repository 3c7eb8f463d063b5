"""Managing from the browser: a tool's mode in one click, API keys created and revoked, logs filtered."""

from __future__ import annotations

import secrets
import time
from typing import Any

import httpx
import pyotp
from playwright.async_api import expect

from tests.gateway.humans import invite_and_join
from tests.support.agentport import call, mcp_client
from tests.ui.conftest import VIEWPORT, Site, shot


async def test_setting_a_tool_to_allow_from_the_integrations_page(page: Any, site: Site) -> None:
    await page.goto(site.url + "/ui/integrations")
    row = page.locator(f"#tool-{site.integration}-echo")
    await expect(row.get_by_role("button", name="Ask")).to_have_attribute("aria-pressed", "true")
    await row.get_by_role("button", name="Allow").click()
    await expect(page.locator(".alert.ok")).to_contain_text("Tool mode saved")
    row = page.locator(f"#tool-{site.integration}-echo")
    await expect(row.get_by_role("button", name="Allow")).to_have_attribute("aria-pressed", "true")
    await shot(page, "integrations-allow")
    text = f"hello {secrets.token_hex(3)}"
    async with mcp_client(site.url, site.owner.agent) as client:
        result = await call(
            client, "call_tool", integration_id=site.integration, tool_name="echo", arguments={"text": text}
        )
    assert result["status"] == "executed", "the tool now runs without asking"


async def test_an_admin_with_two_factor_allows_a_tool_only_with_a_fresh_code(browser: Any, site: Site) -> None:
    async with httpx.AsyncClient(base_url=site.url, timeout=60) as http:
        admin = await invite_and_join(http, site.owner.human, site.owner.org, "admin")
        headers = {"Authorization": f"Bearer {admin.token}"}
        secret = (await http.post("/api/users/me/totp/setup", headers=headers)).json()["secret"]
        totp = pyotp.TOTP(secret)
        enabled = await http.post("/api/users/me/totp/enable", json={"code": totp.now()}, headers=headers)
        recovery = enabled.json()["recovery_codes"]
    context = await browser.new_context(viewport=VIEWPORT)
    tab = await context.new_page()
    tab.set_default_timeout(15_000)
    try:
        await tab.goto(site.url + "/login")
        await tab.fill("input[name=email]", admin.email)
        await tab.fill("input[name=password]", admin.password)
        await tab.fill("input[name=totp_code]", recovery[0])  # keeps the current code fresh for the change
        await tab.get_by_role("button", name="Log in").click()
        await tab.wait_for_url("**/ui/approvals")

        await tab.goto(site.url + "/ui/integrations")
        row = tab.locator(f"#tool-{site.integration}-slow")
        await row.get_by_role("button", name="Allow").click()
        await expect(tab.locator(".alert.error")).to_contain_text("two-factor")
        row = tab.locator(f"#tool-{site.integration}-slow")
        await expect(row.get_by_role("button", name="Ask")).to_have_attribute("aria-pressed", "true")
        await row.get_by_label("Two-factor code, needed to allow slow").fill(totp.at(time.time() + 30))
        await row.get_by_role("button", name="Allow").click()
        await expect(tab.locator(".alert.ok")).to_contain_text("Tool mode saved")
        row = tab.locator(f"#tool-{site.integration}-slow")
        await expect(row.get_by_role("button", name="Allow")).to_have_attribute("aria-pressed", "true")
        await shot(tab, "integrations-allow-two-factor")
    finally:
        await context.close()


async def test_creating_and_revoking_an_api_key(page: Any, site: Site) -> None:
    page.on("dialog", lambda dialog: dialog.accept())
    name = f"ci-{secrets.token_hex(3)}"
    await page.goto(site.url + "/ui/keys")
    await page.fill("#key-name", name)
    await page.get_by_role("button", name="Create key").click()
    key = (await page.locator("#new-key").inner_text()).strip()
    assert key.startswith("ap_")
    for client in ("Claude Desktop", "Claude Code", "Cursor", "VS Code"):
        await expect(page.locator(".snippet-head", has_text=client)).to_be_visible()
    await expect(page.locator("#config-2")).to_contain_text(f"X-API-Key: {key}")
    await shot(page, "key-created")
    async with httpx.AsyncClient(base_url=site.url) as http:
        assert (await http.get("/api/tools", headers={"X-API-Key": key})).status_code == 200
        await page.goto(site.url + "/ui/keys")
        row = page.locator(f"tr[data-key-name='{name}']")
        await row.get_by_role("button", name="Revoke").click()
        await expect(page.locator(f"tr[data-key-name='{name}']")).to_contain_text("revoked")
        await shot(page, "key-revoked")
        assert (await http.get("/api/tools", headers={"X-API-Key": key})).status_code == 401


async def test_filtering_the_logs_and_opening_a_call(page: Any, site: Site) -> None:
    tag = secrets.token_hex(3)
    async with httpx.AsyncClient(base_url=site.url) as http:
        await http.put(
            f"/api/tool-settings/{site.integration}/send_email", json={"mode": "deny"}, headers=site.owner.human
        )
        await http.put(f"/api/tool-settings/{site.integration}/echo", json={"mode": "allow"}, headers=site.owner.human)
    async with mcp_client(site.url, site.owner.agent) as client:
        for i in range(3):
            await call(
                client, "call_tool", integration_id=site.integration, tool_name="echo", arguments={"text": f"{tag}-{i}"}
            )
        denied = await call(
            client,
            "call_tool",
            integration_id=site.integration,
            tool_name="send_email",
            arguments={"to": f"{tag}@example.com", "subject": "hi"},
        )
    assert denied["status"] == "denied"
    await page.goto(site.url + "/ui/logs")
    await page.fill("input[name=tool_name]", "echo")
    await page.get_by_role("button", name="Filter").click()
    rows = page.locator("#log-table tbody tr")
    await expect(rows.first).to_be_visible()
    assert await rows.count() >= 3
    for text in await rows.all_inner_texts():
        assert "echo" in text and "send_email" not in text
    await shot(page, "logs", guide=True)

    await page.fill("input[name=tool_name]", "")
    await page.select_option("select[name=status]", "denied")
    await page.get_by_role("button", name="Filter").click()
    await expect(rows.first).to_be_visible()
    texts = await rows.all_inner_texts()
    assert texts and all("denied" in t for t in texts)
    assert any("send_email" in t for t in texts)

    await page.select_option("select[name=status]", "")
    await page.select_option("select[name=actor_id]", label=f"laptop-agent ({site.owner.api_key[:10]}…)")
    await page.get_by_role("button", name="Filter").click()
    await expect(page.locator("#log-total")).to_contain_text("call")
    texts = await rows.all_inner_texts()
    assert texts and all("laptop-agent" in t for t in texts)

    await page.goto(site.url + f"/ui/logs/{denied['call_id']}")
    await expect(page.locator("#timeline")).to_contain_text("call.requested")
    await expect(page.locator("#timeline")).to_contain_text("call.denied")
    await shot(page, "call-story", guide=True)
