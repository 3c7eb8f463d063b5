"""Pure rules of the human side: TOTP codes by time step, recovery codes, redirects, roles."""

from __future__ import annotations

import pyotp
import pytest

from services.gateway.http import safe_next
from services.gateway.identity.roles import capabilities
from services.gateway.identity.sessions import csrf_token
from services.gateway.identity.totp import matching_step, new_recovery_codes


def test_a_code_matches_its_own_step_and_one_step_of_drift() -> None:
    secret = pyotp.random_base32()
    totp = pyotp.TOTP(secret)
    now = 1_700_000_015.0
    step = int(now // 30)
    assert matching_step(secret, totp.at(now), now) == step
    assert matching_step(secret, totp.at(now - 30), now) == step - 1
    assert matching_step(secret, totp.at(now + 30), now) == step + 1
    assert matching_step(secret, totp.at(now - 90), now) is None
    assert matching_step(secret, "12345", now) is None
    assert matching_step(secret, "abcdef", now) is None


def test_recovery_codes_are_distinct_and_easy_to_type() -> None:
    codes = new_recovery_codes()
    assert len(set(codes)) == 10
    assert all(len(c) == 12 and c.count("-") == 2 for c in codes)


@pytest.mark.parametrize("target", ["//evil.example/x", "/\\evil.example", "https://evil.example", "evil", "", None])
def test_sign_in_never_redirects_off_site(target: str | None) -> None:
    assert safe_next(target) == "/"


def test_sign_in_returns_to_the_page_that_asked() -> None:
    assert safe_next("/approve/abc?x=1") == "/approve/abc?x=1"


def test_csrf_token_is_bound_to_the_session() -> None:
    assert csrf_token("aps_one") != csrf_token("aps_two")
    assert csrf_token("aps_one") == csrf_token("aps_one")


def test_capabilities_per_role() -> None:
    assert capabilities("owner") == capabilities("admin") == ["read", "decide", "manage"]
    assert capabilities("approver") == ["read", "decide"]
    assert capabilities("viewer") == ["read"]
    assert capabilities(None) == []
