"""Query parameters are checked by the gateway before anything is forwarded: a bad value is a 400 that names
the parameter and says why, never a 500 from a service or the database further in."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import httpx
import pytest

from tests.support.agentport import Tenant, new_tenant
from tests.support.stack import Stack


@pytest.fixture(scope="module")
async def tenant(stack: Stack) -> AsyncIterator[Tenant]:
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=60) as http:
        yield await new_tenant(stack, http, "query-" + secrets.token_hex(3))


BAD = [
    ("/api/logs", "limit", "abc", "whole number"),
    ("/api/logs", "limit", "-1", "at least 1"),
    ("/api/logs", "limit", "0", "at least 1"),
    ("/api/logs", "limit", "1.5", "whole number"),
    ("/api/logs", "offset", "x", "whole number"),
    ("/api/logs", "offset", "-3", "at least 0"),
    ("/api/logs", "since", "garbage", "ISO 8601"),
    ("/api/logs", "until", "2026-13-01", "ISO 8601"),
    ("/api/logs", "tool_name", "a\x00b", "NUL"),
    ("/api/logs", "status", "\x00", "NUL"),
    ("/api/tool-approvals/requests", "limit", "abc", "whole number"),
    ("/api/tool-approvals/requests", "limit", "-1", "at least 1"),
    ("/api/tool-approvals/requests", "offset", "later", "whole number"),
    ("/api/tool-approvals/requests", "status", "\x00", "NUL"),
    ("/api/tools", "integration_id", "\x00", "NUL"),
    ("/api/tools", "query", "x\x00", "NUL"),
    ("/api/integrations", "query", "\x00", "NUL"),
    ("/api/integrations", "type", "\x00", "NUL"),
]


@pytest.mark.parametrize(("path", "name", "value", "why"), BAD)
async def test_a_bad_query_parameter_is_a_400_naming_it(
    http: httpx.AsyncClient, tenant: Tenant, path: str, name: str, value: str, why: str
) -> None:
    r = await http.get(path, params={name: value}, headers=tenant.human)
    assert r.status_code == 400, (path, name, value, r.status_code, r.text)
    error = r.json()["error"]
    assert error["code"] == "bad_request", error
    assert f"query parameter {name!r}" in error["message"] and why in error["message"], error


PATHS_WITH_NUL = [
    ("GET", "/api/logs/%00", "call_id"),
    ("GET", "/api/installed/%00", "integration_id"),
    ("GET", "/api/integrations/a%00b", "integration_id"),
    ("GET", "/api/tools/up/%00", "tool_name"),
    ("GET", "/api/tool-settings/%00", "integration_id"),
    ("GET", "/api/tool-approvals/requests/%00", "request_id"),
    ("DELETE", "/api/api-keys/%00", "key_id"),
    ("POST", "/api/calls/%00/await", "call_id"),
]


@pytest.mark.parametrize(("method", "path", "name"), PATHS_WITH_NUL)
async def test_a_nul_in_a_path_parameter_is_a_400_naming_it(
    http: httpx.AsyncClient, tenant: Tenant, method: str, path: str, name: str
) -> None:
    r = await http.request(method, path, headers=tenant.human)
    assert r.status_code == 400, (path, r.status_code, r.text)
    assert r.json()["error"]["message"] == f"path parameter {name!r} must not contain NUL characters"


async def test_a_huge_limit_or_offset_is_lowered_not_refused(http: httpx.AsyncClient, tenant: Tenant) -> None:
    for path in ("/api/logs", "/api/tool-approvals/requests"):
        r = await http.get(path, params={"limit": "1000000", "offset": "9" * 30}, headers=tenant.human)
        assert r.status_code == 200, (path, r.text)
        assert r.json() == []
        assert "limit=500" in r.headers["Link"] and 'rel="prev"' in r.headers["Link"]


async def test_good_times_and_empty_parameters_are_accepted(http: httpx.AsyncClient, tenant: Tenant) -> None:
    params = {"since": "2026-01-01", "until": "2026-01-02T09:30:00+02:00", "tool_name": "", "limit": ""}
    r = await http.get("/api/logs", params=params, headers=tenant.human)
    assert r.status_code == 200, r.text
    assert r.json() == [] and r.headers["X-Total-Count"] == "0"


async def test_a_bad_await_timeout_is_a_400(http: httpx.AsyncClient, tenant: Tenant) -> None:
    for value in ("soon", "-1", "0", "nan"):
        r = await http.post(
            f"/api/calls/c-{secrets.token_hex(4)}/await", params={"timeout": value}, headers=tenant.agent
        )
        assert r.status_code == 400, (value, r.text)
        assert "timeout" in r.json()["error"]["message"]
