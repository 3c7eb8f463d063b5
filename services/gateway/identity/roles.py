"""What each human role may do: one table the REST API enforces and the web UI shows."""

from __future__ import annotations

from typing import Literal

from services.gateway.identity.principals import DECIDE, MANAGE, READ, Principal
from shared.errors import Forbidden
from shared.events import Role

Capability = Literal["read", "decide", "manage"]
ROLES: tuple[Role, ...] = ("owner", "admin", "approver", "viewer")
_GRANTS: dict[Capability, tuple[Role, ...]] = {"read": READ, "decide": DECIDE, "manage": MANAGE}


def capabilities(role: Role | None) -> list[Capability]:
    """The capabilities a role carries, for the UI to show only what the server will accept."""
    return [cap for cap, roles in _GRANTS.items() if role in roles]


def require_manager_if_human(who: Principal, what: str) -> None:
    """Agents may install and remove integrations; among humans, only owners and admins may."""
    if who.is_human:
        who.require_human(MANAGE, what)


def check_role_change(who: Principal, target_role: Role, new_role: Role) -> None:
    """Owners may grant any role; admins may manage admins, approvers and viewers, never owners."""
    who.require_human(MANAGE, "change roles")
    if who.role != "owner" and "owner" in (target_role, new_role):
        raise Forbidden("only an owner can grant or take away the owner role")


def check_invite(who: Principal, role: Role) -> None:
    """Inviting follows the same rule as granting the role."""
    who.require_human(MANAGE, "invite people")
    if role == "owner" and who.role != "owner":
        raise Forbidden("only an owner can invite another owner")
