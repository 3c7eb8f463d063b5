"""No OAuth token, code or client secret (ours or an upstream's) appears in an event, a log line, a table or a
response other than the one that issued it. Runs after every other test of the session."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.oauth.conftest import Seen
from tests.oauth.fake_upstream import ProtectedUpstream
from tests.support.agentport import Tenant, call, mcp_client
from tests.support.leaks import find_leaks, leaked
from tests.support.stack import Stack


@pytest.mark.suite_end
async def test_no_oauth_secret_leaks_anywhere(
    stack: Stack, tenant: Tenant, seen: Seen, protected: ProtectedUpstream
) -> None:
    secrets_ = {s for s in seen.values | set(protected.auth.issued) if len(s) >= 16}
    assert any(s.startswith("apo_") for s in secrets_), "the sign-in tests ran and issued gateway tokens"
    assert any(s.startswith("up-rt-") for s in secrets_), "the upstream tests ran and the upstream issued tokens"

    assert not await find_leaks(stack, secrets_)

    async with httpx.AsyncClient(base_url=stack.base_url, timeout=60) as http:
        for path, headers in (
            ("/api/installed", tenant.agent),
            ("/api/oauth/grants", tenant.human),
            ("/api/logs?limit=500", tenant.human),
            ("/.well-known/oauth-authorization-server", {}),
        ):
            r = await http.get(path, headers=headers)
            assert r.status_code == 200 and not leaked(r.text, secrets_), path
    async with mcp_client(stack.base_url, tenant.agent) as client:
        installed = await call(client, "list_installed_integrations")
        statuses = [
            await call(client, "get_auth_status", integration_id=i["integration_id"]) for i in installed["installed"]
        ]
    assert not leaked(json.dumps([installed, statuses]), secrets_)
