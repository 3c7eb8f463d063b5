"""Fixtures for the OAuth flows: a stack whose gateway knows its own public URL (issuer and resource must be
the address clients really use), a tenant, direct database access (to move a token's clock), and a record of
every secret the tests saw, for the final leak check."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import asyncpg
import httpx
import pytest

from tests.oauth.fake_upstream import ProtectedUpstream, protected_upstream
from tests.support.agentport import Tenant, new_tenant
from tests.support.stack import Stack


@dataclass
class Seen:
    """Tokens, codes and client secrets the tests handled: none may appear where it does not belong."""

    values: set[str] = field(default_factory=set)

    def add(self, *values: str | None) -> None:
        self.values.update(v for v in values if v)


@pytest.fixture(scope="session")
def seen() -> Seen:
    return Seen()


@pytest.fixture(scope="session")
async def tenant(stack: Stack) -> Tenant:
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=60) as http:
        return await new_tenant(stack, http, "org-oauth")


@pytest.fixture
async def gateway_db(stack: Stack) -> AsyncIterator[asyncpg.Connection]:
    """The gateway's schema, for tests that must move a token's expiry into the past."""
    conn = await asyncpg.connect(stack.env["DATABASE_URL"])
    await conn.execute(f'SET search_path TO "{stack.env["AGENTPORT_NAMESPACE"]}_gateway"')
    try:
        yield conn
    finally:
        await conn.close()


@pytest.fixture(scope="session")
async def protected() -> AsyncIterator[ProtectedUpstream]:
    """An MCP server behind its own OAuth authorization server, both on loopback."""
    async with protected_upstream() as up:
        yield up
