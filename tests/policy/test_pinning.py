"""Only `allow` loosens anything, so only it falls back when an upstream changes a pinned tool."""

from services.policy.pinning import mode_after_change
from services.policy.rules import rule_on


def test_a_changed_allowed_tool_falls_back_to_require_approval() -> None:
    assert mode_after_change("allow") == "require_approval"
    assert mode_after_change("require_approval") == "require_approval"
    assert mode_after_change("deny") == "deny"


def test_an_unreviewed_change_holds_the_call_and_says_why() -> None:
    assert rule_on("require_approval", changed=True) == ("hold", "tool_changed:require_approval")
    assert rule_on("deny", changed=True) == ("deny", "tool_mode:deny")
