"""The ruling itself: a plain function of the tool's mode."""

from __future__ import annotations

from shared.events import ToolMode, Verdict

DEFAULT_MODE: ToolMode = "require_approval"


def rule_on(mode: ToolMode | None, *, changed: bool = False) -> tuple[Verdict, str]:
    """The verdict for a call to a tool in `mode` (None: never set, so the default applies).

    `changed`: the upstream changed the tool since its mode was set, and no human has reviewed that yet.
    """
    if changed and mode != "deny":
        return "hold", "tool_changed:require_approval"
    if mode is None:
        return "hold", f"default:{DEFAULT_MODE}"
    if mode == "allow":
        return "allow", "tool_mode:allow"
    if mode == "deny":
        return "deny", "tool_mode:deny"
    return "hold", "tool_mode:require_approval"
