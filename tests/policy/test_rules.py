"""The ruling is a plain function of a tool's mode."""

from services.policy.rules import rule_on


def test_a_tool_never_set_needs_approval() -> None:
    assert rule_on(None) == ("hold", "default:require_approval")


def test_each_mode_maps_to_its_verdict() -> None:
    assert rule_on("allow") == ("allow", "tool_mode:allow")
    assert rule_on("deny") == ("deny", "tool_mode:deny")
    assert rule_on("require_approval") == ("hold", "tool_mode:require_approval")
