"""The gateway's public address: the contract's default, following a moved port unless set."""

from __future__ import annotations

import pytest

from shared.settings import GatewaySettings


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "http://127.0.0.1:4747"),
        ({"AGENTPORT_PORT": "8080"}, "http://127.0.0.1:8080"),
        ({"AGENTPORT_HOST": "0.0.0.0", "AGENTPORT_PORT": "9000"}, "http://127.0.0.1:9000"),
        ({"AGENTPORT_HOST": "::1"}, "http://[::1]:4747"),
        ({"AGENTPORT_PORT": "8080", "AGENTPORT_BASE_URL": "https://gate.example.com/"}, "https://gate.example.com"),
    ],
)
def test_base_url(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], expected: str) -> None:
    for name in ("AGENTPORT_HOST", "AGENTPORT_PORT", "AGENTPORT_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert GatewaySettings().base_url == expected
