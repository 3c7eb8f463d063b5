"""Fixtures for flows that cross services: a tenant whose agent installed the counting upstream."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

from tests.conftest import PLANTED_SECRET
from tests.support.agentport import Tenant, add_custom_upstream, call, mcp_client, new_tenant
from tests.support.stack import Stack
from tests.support.upstream import Upstream


@dataclass
class World:
    stack: Stack
    tenant: Tenant
    upstream: Upstream
    integration: str


@pytest.fixture(scope="session")
async def world(stack: Stack, upstream: Upstream) -> AsyncIterator[World]:
    """Org A's agent defined and installed the upstream (with the planted token) through MCP."""
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=60) as http:
        tenant = await new_tenant(stack, http, "org-a")
        await add_custom_upstream(http, tenant, upstream.url, "up", bearer=True)
    async with mcp_client(stack.base_url, tenant.agent) as client:
        installed = await call(
            client, "install_integration", integration_id="up", auth_method="token", token=PLANTED_SECRET
        )
    assert installed["status"] == "ok", installed
    assert installed["installed"]["status"] == "ready", installed
    yield World(stack=stack, tenant=tenant, upstream=upstream, integration="up")
