"""The event vocabulary: immutable, versioned facts published on the bus.

Subjects are `<namespace>.<type>`; every event carries `event_id`, `type`, `version`,
`occurred_at`, `org_id` and, where it belongs to a call, `call_id`.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

ToolMode = Literal["allow", "require_approval", "deny"]
Verdict = Literal["allow", "hold", "deny"]
Decision = Literal["approve_once", "allow_tool", "deny", "expired"]
Role = Literal["owner", "admin", "approver", "viewer"]
IntegrationKind = Literal["mcp", "openapi", "stdio"]
RefreshTrigger = Literal["install", "list_changed", "on_demand"]


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def new_id() -> str:
    """A fresh random identifier."""
    return uuid.uuid4().hex


def derived_id(*parts: str) -> str:
    """A deterministic id, so that re-handling the same input publishes the same event once."""
    return uuid.uuid5(uuid.NAMESPACE_URL, "agentport:" + ":".join(parts)).hex


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no insignificant whitespace: equal values give equal text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def contains_nul(value: Any) -> bool:
    """Whether a JSON value holds U+0000 in any string or key: PostgreSQL can store it in neither text nor jsonb."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(contains_nul(k) or contains_nul(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(contains_nul(v) for v in value)
    return False


def without_nul(value: Any) -> Any:
    """The same JSON value with each U+0000 replaced by U+FFFD, for what an upstream sends back."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {without_nul(k): without_nul(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [without_nul(v) for v in value]
    return value


def arguments_hash(arguments: dict[str, Any]) -> str:
    """The hash an approval binds to: key order and whitespace do not matter, any value change does."""
    return hashlib.sha256(canonical_json(arguments).encode()).hexdigest()


def tool_fingerprint(description: str, input_schema: dict[str, Any]) -> str:
    """What a tool's mode is pinned to: any change to its description or input schema changes it."""
    body = canonical_json({"description": description, "input_schema": input_schema})
    return hashlib.sha256(body.encode()).hexdigest()


class Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Actor(Model):
    """Who did something: an API key, a human, an OAuth client acting for a human, or the system."""

    kind: Literal["api_key", "user", "oauth_client", "system"]
    id: str
    name: str
    user_id: str | None = None


SYSTEM = Actor(kind="system", id="system", name="AgentPort")


class AuthSpec(Model):
    """How the executor presents the credential upstream."""

    type: Literal["none", "bearer", "header", "query", "basic"] = "none"
    header_name: str | None = None
    scheme: str | None = None
    param_name: str | None = None


class ToolDef(Model):
    """One upstream tool as discovered."""

    name: str
    description: str = ""
    input_schema: dict[str, Any] = Field(default_factory=lambda: {"type": "object"})
    title: str | None = None


class OpenApiSource(Model):
    """Where an HTTP API's tools come from: its OpenAPI document (inline or at a URL) and what to expose."""

    document: dict[str, Any] | None = None
    document_url: str | None = None
    base_url: str | None = None
    operations: tuple[str, ...] | None = None


class CallSpec(Model):
    """What an agent asked for, carried along so each step can act without reading another's tables."""

    integration_id: str
    tool_name: str
    arguments: dict[str, Any]
    args_hash: str
    additional_info: str | None = None
    actor: Actor
    client_ip: str | None = None
    channel: Literal["mcp", "rest", "cli"] = "mcp"
    # Left out when absent, so a call without a key is encoded exactly as before keys existed.
    idempotency_key: str | None = Field(default=None, exclude_if=lambda key: key is None)


class Event(Model):
    event_id: str = Field(default_factory=new_id)
    type: str
    version: int = 1
    occurred_at: datetime = Field(default_factory=utcnow)
    org_id: str
    call_id: str | None = None


# --- calls -----------------------------------------------------------------------------------


class CallRequested(Event):
    type: Literal["call.requested"] = "call.requested"
    call_id: str
    spec: CallSpec


class CallRuled(Event):
    type: Literal["call.ruled"] = "call.ruled"
    call_id: str
    verdict: Verdict
    rule: str
    spec: CallSpec


class CallReleased(Event):
    type: Literal["call.released"] = "call.released"
    call_id: str
    request_id: str
    decision: Literal["approve_once", "allow_tool"]
    approved_args_hash: str
    spec: CallSpec


class CallStarted(Event):
    type: Literal["call.started"] = "call.started"
    call_id: str
    executor_id: str


class CallCompleted(Event):
    type: Literal["call.completed"] = "call.completed"
    call_id: str
    result: dict[str, Any]
    is_error: bool = False
    duration_ms: float


class CallFailed(Event):
    type: Literal["call.failed"] = "call.failed"
    call_id: str
    error_code: str
    message: str
    duration_ms: float | None = None


class CallDenied(Event):
    type: Literal["call.denied"] = "call.denied"
    call_id: str
    by: Literal["policy", "human"]
    rule: str | None = None
    request_id: str | None = None
    decided_by: Actor | None = None
    reason: str | None = None


class CallExpired(Event):
    type: Literal["call.expired"] = "call.expired"
    call_id: str
    request_id: str


class CallCoalesced(Event):
    type: Literal["call.coalesced"] = "call.coalesced"
    call_id: str
    request_id: str
    into_call_id: str


# --- approvals -------------------------------------------------------------------------------


class ApprovalRequested(Event):
    type: Literal["approval.requested"] = "approval.requested"
    call_id: str
    request_id: str
    expires_at: datetime
    coalesced: bool = False
    spec: CallSpec


class ApprovalDecided(Event):
    type: Literal["approval.decided"] = "approval.decided"
    call_id: str
    request_id: str
    decision: Decision
    decided_by: Actor | None = None
    decided_ip: str | None = None
    reason: str | None = None
    integration_id: str
    tool_name: str


# --- integrations ----------------------------------------------------------------------------


class IntegrationDefined(Event):
    """A custom integration an org defined (not yet installed)."""

    type: Literal["integration.defined"] = "integration.defined"
    integration_id: str
    name: str
    kind: IntegrationKind = "mcp"
    mcp_url: str = ""
    description: str = ""
    auth: AuthSpec
    actor: Actor
    openapi: OpenApiSource | None = None
    timeout_seconds: float | None = Field(default=None, gt=0)


class IntegrationInstalled(Event):
    """An integration installed for an org; the credential is sealed to the executor's key."""

    type: Literal["integration.installed"] = "integration.installed"
    integration_id: str
    name: str
    mcp_url: str = ""
    auth: AuthSpec
    auth_method: Literal["none", "token", "oauth"]
    sealed_credential: str | None = None
    actor: Actor
    kind: IntegrationKind = "mcp"
    openapi: OpenApiSource | None = None
    timeout_seconds: float | None = Field(default=None, gt=0)


class IntegrationToolsRefreshed(Event):
    type: Literal["integration.tools_refreshed"] = "integration.tools_refreshed"
    integration_id: str
    tools: tuple[ToolDef, ...]
    request_id: str | None = None
    trigger: RefreshTrigger = "install"


class IntegrationRefreshFailed(Event):
    type: Literal["integration.refresh_failed"] = "integration.refresh_failed"
    integration_id: str
    message: str
    request_id: str | None = None
    trigger: RefreshTrigger = "install"


class IntegrationRemoved(Event):
    type: Literal["integration.removed"] = "integration.removed"
    integration_id: str
    actor: Actor


# --- policy, accounts, settings --------------------------------------------------------------


class PolicyModeSet(Event):
    type: Literal["policy.mode_set"] = "policy.mode_set"
    integration_id: str
    tool_name: str
    mode: ToolMode
    actor: Actor
    source: Literal["human", "approval"] = "human"
    request_id: str | None = None
    pinned: ToolDef | None = None


class PolicyToolChanged(Event):
    """An upstream changed a tool whose mode a human had set; an `allow` falls back to `require_approval`."""

    type: Literal["policy.tool_changed"] = "policy.tool_changed"
    integration_id: str
    tool_name: str
    before: ToolDef
    after: ToolDef
    mode_before: ToolMode
    mode_after: ToolMode


class OrgCreated(Event):
    type: Literal["org.created"] = "org.created"
    name: str


class OrgSettingsUpdated(Event):
    type: Literal["org.settings_updated"] = "org.settings_updated"
    approval_expiry_seconds: int = Field(gt=0)
    actor: Actor


class UserCreated(Event):
    type: Literal["user.created"] = "user.created"
    user_id: str
    email: str
    role: Role
    password_hash: str


class KeyCreated(Event):
    type: Literal["key.created"] = "key.created"
    key_id: str
    name: str
    prefix: str
    key_hash: str
    user_id: str
    actor: Actor


class KeyRevoked(Event):
    type: Literal["key.revoked"] = "key.revoked"
    key_id: str
    actor: Actor


class UserInvited(Event):
    """Someone was invited into an org with a role (the invitation link itself is never published)."""

    type: Literal["user.invited"] = "user.invited"
    invitation_id: str
    email: str
    role: Role
    expires_at: datetime
    actor: Actor


class UserRoleChanged(Event):
    type: Literal["user.role_changed"] = "user.role_changed"
    user_id: str
    role: Role
    actor: Actor


class UserPasswordChanged(Event):
    type: Literal["user.password_changed"] = "user.password_changed"
    user_id: str
    password_hash: str
    actor: Actor


class UserTotpEnabled(Event):
    """A human turned two-factor on (the secret stays encrypted in the gateway, never on the bus)."""

    type: Literal["user.totp_enabled"] = "user.totp_enabled"
    user_id: str
    actor: Actor


class UserTotpDisabled(Event):
    type: Literal["user.totp_disabled"] = "user.totp_disabled"
    user_id: str
    actor: Actor


# --- OAuth -----------------------------------------------------------------------------------

OAuthRevocationReason = Literal["revoked_by_human", "revoked_by_client", "refresh_token_reused", "code_reused"]


class OAuthGrantCreated(Event):
    """A human allowed an OAuth client to act for them on `/mcp` (it holds no secret)."""

    type: Literal["oauth.grant_created"] = "oauth.grant_created"
    grant_id: str
    client_id: str
    client_name: str
    redirect_uri: str
    resource: str
    scope: str = ""
    user_id: str
    actor: Actor


class OAuthGrantRevoked(Event):
    """An OAuth grant ended: every token issued under it stops working."""

    type: Literal["oauth.grant_revoked"] = "oauth.grant_revoked"
    grant_id: str
    client_id: str
    reason: OAuthRevocationReason
    actor: Actor


class IntegrationAuthExpired(Event):
    """An upstream refused to renew an OAuth sign-in: a human must sign in again."""

    type: Literal["integration.auth_expired"] = "integration.auth_expired"
    integration_id: str
    message: str


AnyEvent = Annotated[
    CallRequested
    | CallRuled
    | CallReleased
    | CallStarted
    | CallCompleted
    | CallFailed
    | CallDenied
    | CallExpired
    | CallCoalesced
    | ApprovalRequested
    | ApprovalDecided
    | IntegrationDefined
    | IntegrationInstalled
    | IntegrationToolsRefreshed
    | IntegrationRefreshFailed
    | IntegrationRemoved
    | PolicyModeSet
    | PolicyToolChanged
    | OrgCreated
    | OrgSettingsUpdated
    | UserCreated
    | KeyCreated
    | KeyRevoked
    | UserInvited
    | UserRoleChanged
    | UserPasswordChanged
    | UserTotpEnabled
    | UserTotpDisabled
    | OAuthGrantCreated
    | OAuthGrantRevoked
    | IntegrationAuthExpired,
    Field(discriminator="type"),
]

_ADAPTER: TypeAdapter[AnyEvent] = TypeAdapter(AnyEvent)

TERMINAL_TYPES = frozenset({"call.completed", "call.failed", "call.denied", "call.expired", "call.coalesced"})


def parse_event(data: bytes | str) -> AnyEvent:
    """Decode an event from its JSON form, choosing the model by `type`."""
    return _ADAPTER.validate_json(data)


def encode_event(event: Event) -> bytes:
    """The JSON form of an event as it travels on the bus."""
    return event.model_dump_json().encode()
