"""Redirect URI rules, as plain functions: what may be registered, and what matches at authorization time."""

from __future__ import annotations

import pytest

from services.gateway.identity.oauth.redirect_uris import matches, registration_problem
from services.gateway.identity.oauth.tokens import canonical_resource


@pytest.mark.parametrize(
    "uri",
    [
        "https://claude.ai/api/mcp/auth_callback",
        "http://127.0.0.1:33418/callback",
        "http://[::1]:8080/cb",
        "http://localhost:6274/oauth/callback",
        "cursor://anysphere.cursor-retrieval/oauth/callback",
        "com.example.app:/oauth2redirect",
    ],
)
def test_registrable_redirect_uris(uri: str) -> None:
    assert registration_problem(uri) is None


@pytest.mark.parametrize(
    "uri",
    [
        "http://app.example/callback",
        "http://10.0.0.5/callback",
        "javascript:alert(1)",
        "data:text/html,hi",
        "https://app.example/cb#fragment",
        "https://user:pw@app.example/cb",
        "/relative/callback",
        "",
    ],
)
def test_unsafe_redirect_uris_are_refused(uri: str) -> None:
    assert registration_problem(uri) is not None


def test_redirect_uris_match_exactly() -> None:
    registered = ["https://app.example/cb", "http://127.0.0.1:33418/callback"]
    assert matches(registered, "https://app.example/cb")
    assert not matches(registered, "https://app.example/cb/")
    assert not matches(registered, "https://app.example/cb?x=1")
    assert not matches(registered, "https://app.example:8443/cb")


def test_loopback_redirects_may_change_port_only() -> None:
    registered = ["http://127.0.0.1:33418/callback"]
    assert matches(registered, "http://127.0.0.1:50000/callback")
    assert matches(registered, "http://127.0.0.1/callback")
    assert not matches(registered, "http://127.0.0.1:50000/other")
    assert not matches(registered, "http://localhost:33418/callback")
    assert not matches(registered, "https://127.0.0.1:33418/callback")


def test_resources_compare_without_case_or_trailing_slash() -> None:
    assert canonical_resource("HTTP://Gateway.Example:4747/mcp/") == canonical_resource(
        "http://gateway.example:4747/mcp"
    )
    assert canonical_resource("https://a.example/mcp") != canonical_resource("https://b.example/mcp")
