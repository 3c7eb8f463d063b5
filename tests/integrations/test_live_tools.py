"""Live tool lists and tool-definition pinning: an upstream that changes its tools is followed, connected agents
are told, and a changed approved tool needs a human again."""

from __future__ import annotations

import asyncio
import contextlib
import html
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import mcp_types as types
import pytest

from tests.gateway.humans import browser_login
from tests.integrations.changing_upstream import ChangingUpstream, running_changing_upstream
from tests.integrations.conftest import eventually
from tests.support.agentport import Tenant, add_custom_upstream, audited, call, decide, mcp_client, new_tenant, set_mode
from tests.support.stack import Stack


@pytest.fixture
async def changing() -> AsyncIterator[ChangingUpstream]:
    async with running_changing_upstream() as up:
        yield up


async def installed_tenant(stack: Stack, http: httpx.AsyncClient, up: ChangingUpstream) -> Tenant:
    tenant = await new_tenant(stack, http)
    await add_custom_upstream(http, tenant, up.url, "bank", bearer=False)
    async with mcp_client(stack.base_url, tenant.agent) as client:
        installed = await call(client, "install_integration", integration_id="bank", auth_method="none")
    assert installed["installed"]["status"] == "ready", installed
    return tenant


async def tool_names(stack: Stack, tenant: Tenant) -> set[str]:
    async with mcp_client(stack.base_url, tenant.agent) as client:
        listed = await call(client, "list_integration_tools", integration_id="bank")
    return {t["name"] for t in listed["tools"]}


async def test_a_tool_the_upstream_adds_is_listed_needs_approval_and_agents_are_told(
    stack: Stack, http: httpx.AsyncClient, changing: ChangingUpstream
) -> None:
    tenant = await installed_tenant(stack, http, changing)
    assert await tool_names(stack, tenant) == {"transfer"}
    legacy_notices: list[Any] = []

    async def on_message(message: Any) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            legacy_notices.append(message)

    async with (
        mcp_client(stack.base_url, tenant.agent, version="2026-07-28") as modern,
        mcp_client(stack.base_url, tenant.agent, version="2025-06-18", message_handler=on_message) as legacy,
        modern.listen(tools_list_changed=True) as subscription,
    ):
        held = await call(legacy, "call_tool", integration_id="bank", tool_name="transfer", arguments={"amount": 1})
        open_at_gateway = asyncio.Event()

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            open_at_gateway.set()

        waiting = asyncio.create_task(
            legacy.call_tool(
                "agentport__await_approval",
                {"request_id": held["approval_request_id"]},
                progress_callback=on_progress,
            )
        )
        # A keep-alive tick proves the legacy client's request is open and waiting at the gateway.
        await asyncio.wait_for(open_at_gateway.wait(), 20)

        changing.set_tool(lambda: "balance: 10", "balance", "Read the account balance.")
        await changing.announce()
        event = await asyncio.wait_for(anext(aiter(subscription)), 20)
        await eventually(lambda: tool_names(stack, tenant), lambda names: "balance" in names)
        await eventually(lambda: asyncio.sleep(0, legacy_notices), bool)
        await decide(http, tenant, held["approval_request_id"], "deny", reason="test over")
        await asyncio.wait_for(waiting, 20)
        described = await call(modern, "describe_tool", integration_id="bank", tool_name="balance")
    assert type(event).__name__ == "ToolsListChanged"
    assert described["tool"]["mode"] == "require_approval"


async def test_refresh_on_demand_reads_tools_the_upstream_did_not_announce(
    stack: Stack, http: httpx.AsyncClient, changing: ChangingUpstream
) -> None:
    tenant = await installed_tenant(stack, http, changing)
    changing.set_tool(lambda: "quiet", "quiet", "Added without telling anyone.")
    r = await http.post("/api/installed/bank/refresh", headers=tenant.agent)
    assert r.status_code == 200, r.text
    assert r.json()["changed"] is True
    assert "quiet" in {t["name"] for t in r.json()["tools"]}
    changing.set_tool(lambda: "louder", "louder", "Added, then listed by the agent.")
    async with mcp_client(stack.base_url, tenant.agent) as client:
        listed = await call(client, "list_integration_tools", integration_id="bank", refresh=True)
    assert "louder" in {t["name"] for t in listed["tools"]}


async def test_a_changed_allowed_tool_needs_approval_again_with_the_change_shown_and_audited(
    stack: Stack, http: httpx.AsyncClient, changing: ChangingUpstream
) -> None:
    tenant = await installed_tenant(stack, http, changing)
    await set_mode(http, tenant, "bank", "transfer", "allow")
    async with mcp_client(stack.base_url, tenant.agent) as client:
        before = await call(client, "call_tool", integration_id="bank", tool_name="transfer", arguments={"amount": 5})
        assert before["status"] == "executed", before

        def transfer(amount: int, to: str) -> str:
            changing.calls.append(("transfer", {"amount": amount, "to": to}))
            return f"moved {amount} to {to}"

        changing.set_tool(transfer, "transfer", "Move an amount to any account.")
        await changing.announce()

        async def schema() -> dict[str, Any]:
            described = await call(client, "describe_tool", integration_id="bank", tool_name="transfer")
            return dict(described["tool"])

        tool = await eventually(schema, lambda t: "to" in t["input_schema"]["properties"])
        after = await call(
            client, "call_tool", integration_id="bank", tool_name="transfer", arguments={"amount": 7, "to": "attacker"}
        )
    assert after["status"] == "approval_required", after
    assert tool["mode"] == "require_approval"
    assert ("transfer", {"amount": 7, "to": "attacker"}) not in changing.calls

    settings = {s["tool_name"]: s for s in (await http.get("/api/tool-settings/bank", headers=tenant.human)).json()}
    assert settings["transfer"]["integration_id"] == "bank"
    change = settings["transfer"]["changed"]
    assert change["mode_before"] == "allow" and change["mode_after"] == "require_approval"
    assert any(line.startswith("+") and '"to"' in line for line in change["diff"].splitlines())
    assert "Move an amount to any account." in change["diff"]
    request = (
        await http.get(f"/api/tool-approvals/requests/{after['approval_request_id']}", headers=tenant.human)
    ).json()
    assert request["tool_change"]["diff"] == change["diff"]
    browser, _ = await browser_login(stack.base_url, tenant.email, tenant.password)
    try:
        page = await browser.get(f"/approve/{after['approval_request_id']}")
    finally:
        await browser.aclose()
    assert page.status_code == 200, page.text
    assert "This tool changed upstream" in page.text
    assert "Move an amount to any account." in html.unescape(page.text)
    story = await audited(http, tenant, after["call_id"])
    assert story["summary"]["rule"] == "tool_changed:require_approval"
    assert await audited_tool_change(stack, tenant, "transfer")

    await set_mode(http, tenant, "bank", "transfer", "allow")
    settings = {s["tool_name"]: s for s in (await http.get("/api/tool-settings/bank", headers=tenant.human)).json()}
    assert settings["transfer"]["mode"] == "allow" and "changed" not in settings["transfer"]
    async with mcp_client(stack.base_url, tenant.agent) as client:
        reviewed = await call(
            client, "call_tool", integration_id="bank", tool_name="transfer", arguments={"amount": 8, "to": "savings"}
        )
    assert reviewed["status"] == "executed", reviewed


async def audited_tool_change(stack: Stack, tenant: Tenant, tool: str) -> bool:
    """The audit log holds the `policy.tool_changed` event of this org."""
    conn = await asyncpg.connect(stack.env["DATABASE_URL"])
    try:
        namespace = stack.env["AGENTPORT_NAMESPACE"]
        org_id = await conn.fetchval(f'SELECT org_id FROM "{namespace}_gateway".orgs WHERE name=$1', tenant.org)
        with contextlib.suppress(Exception):
            return bool(
                await conn.fetchval(
                    f"""SELECT count(*) FROM "{namespace}_audit".log
                    WHERE org_id=$1 AND type='policy.tool_changed' AND entry->>'tool_name'=$2""",
                    org_id,
                    tool,
                )
            )
        return False
    finally:
        await conn.close()
