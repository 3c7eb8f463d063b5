"""Browser tests: a fresh AgentPort of their own (so the first user can register), Debian's Chromium driven
by Playwright, an agent on the MCP client, and a screenshot of every test."""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ARTIFACTS
from tests.support.agentport import Tenant, add_custom_upstream, login
from tests.support.stack import Stack, isolated_stack
from tests.support.upstream import Upstream, running_upstream

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = ARTIFACTS / "screenshots"
GUIDE = Path(__file__).resolve().parents[2] / "docs" / "guide"
VIEWPORT = {"width": 1200, "height": 820}
INTEGRATION = "ui-up"


@dataclass
class Site:
    """The UI tests' own AgentPort, its owner (registered through the browser) and the owner's agent."""

    stack: Stack
    owner: Tenant
    owner_state: dict[str, Any]
    integration: str

    @property
    def url(self) -> str:
        return self.stack.base_url


@pytest.fixture(scope="session")
async def ui_stack(infra: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    """A stack on a namespace and database of its own: no user exists until the first one registers."""
    workdir = tmp_path_factory.mktemp("ui-stack")
    async with isolated_stack(
        infra["NATS_URL"], infra["DATABASE_URL"], workdir, prefix="u", artifacts=ARTIFACTS
    ) as stack:
        yield stack


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip("/usr/bin/chromium is absent: install Debian's chromium package (.ci/run does)")
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()


async def shot(page: Any, name: str, *, guide: bool = False) -> Path:
    """Save a screenshot for the test's record (and, when asked, for the guide in docs/guide/)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    if guide and os.environ.get("AGENTPORT_UPDATE_GUIDE") == "1":
        await page.screenshot(path=str(GUIDE / f"{name}.png"))
    return path


@pytest.fixture(scope="session")
async def ui_upstream() -> AsyncIterator[Upstream]:
    """The UI tests' own counting upstream: their calls are audited in their own stack, not the suite's."""
    async with running_upstream(None) as up:
        yield up


@pytest.fixture(scope="session")
async def site(browser: Any, ui_stack: Stack, ui_upstream: Upstream) -> Site:
    """The first user registers through the browser; their agent key installs a counting upstream."""
    context = await browser.new_context(viewport=VIEWPORT)
    page = await context.new_page()
    page.set_default_timeout(15_000)
    email, password = f"owner-{secrets.token_hex(3)}@acme.example", "pw-" + secrets.token_hex(8)
    await page.goto(ui_stack.base_url + "/")
    assert page.url.endswith("/setup"), "a fresh install sends the first visitor to set-up"
    await page.fill("input[name=org]", "acme")
    await page.fill("input[name=email]", email)
    await page.fill("input[name=password]", password)
    await page.fill("input[name=password_again]", password)
    await shot(page, "setup-first-user")
    await page.click("button[type=submit]")
    await page.wait_for_url("**/ui/approvals")
    state = await context.storage_state()
    await context.close()
    async with httpx.AsyncClient(base_url=ui_stack.base_url, timeout=60) as http:
        token = await login(http, email, password)
        key = await http.post(
            "/api/api-keys", json={"name": "laptop-agent"}, headers={"Authorization": f"Bearer {token}"}
        )
        assert key.status_code == 201, key.text
        owner = Tenant(org="acme", email=email, password=password, api_key=key.json()["key"], human_token=token)
        await add_custom_upstream(http, owner, ui_upstream.url, INTEGRATION, bearer=False)
        installed = await http.post("/api/installed", json={"integration_id": INTEGRATION}, headers=owner.agent)
        assert installed.status_code == 201 and installed.json()["status"] == "ready", installed.text
    return Site(stack=ui_stack, owner=owner, owner_state=state, integration=INTEGRATION)


@pytest.fixture
async def page(browser: Any, site: Site) -> AsyncIterator[Any]:
    """A browser tab signed in as the owner."""
    context = await browser.new_context(viewport=VIEWPORT, storage_state=site.owner_state)
    tab = await context.new_page()
    tab.set_default_timeout(15_000)
    try:
        yield tab
    finally:
        await context.close()
