"""The gateway's read model: accounts, integrations, tools and call outcomes, rebuilt from events."""

from __future__ import annotations

from typing import Any

import asyncpg

from shared.events import (
    AnyEvent,
    ApprovalRequested,
    CallCoalesced,
    CallCompleted,
    CallDenied,
    CallExpired,
    CallFailed,
    CallRequested,
    IntegrationAuthExpired,
    IntegrationDefined,
    IntegrationInstalled,
    IntegrationRefreshFailed,
    IntegrationRemoved,
    IntegrationToolsRefreshed,
    KeyCreated,
    KeyRevoked,
    OAuthGrantCreated,
    OAuthGrantRevoked,
    OrgCreated,
    OrgSettingsUpdated,
    UserCreated,
    UserPasswordChanged,
    UserRoleChanged,
    encode_event,
)

PROJECTED = (
    "org.created",
    "org.settings_updated",
    "user.created",
    "key.created",
    "key.revoked",
    "integration.defined",
    "integration.installed",
    "integration.tools_refreshed",
    "integration.refresh_failed",
    "integration.removed",
    "call.requested",
    "approval.requested",
    "call.completed",
    "call.failed",
    "call.denied",
    "call.expired",
    "call.coalesced",
    "oauth.grant_created",
    "oauth.grant_revoked",
    "integration.auth_expired",
    "user.role_changed",
    "user.password_changed",
)


def _shown_url(e: IntegrationInstalled) -> str:
    """Where an installed integration lives, as listed: its MCP URL, or an HTTP API's base or document URL."""
    if e.openapi is not None:
        return e.openapi.base_url or e.openapi.document_url or ""
    return e.mcp_url


def outcome_of(event: AnyEvent) -> dict[str, Any]:
    """The part of a terminal event an agent is shown."""
    data = event.model_dump(mode="json", exclude={"event_id", "version", "org_id"})
    return data


class Projection:
    """Applies events idempotently: applying one twice changes nothing."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def apply(self, event: AnyEvent) -> None:
        handler = getattr(self, "_" + event.type.replace(".", "_"), None)
        if handler is not None:
            await handler(event)

    async def _org_created(self, e: OrgCreated) -> None:
        await self.pool.execute(
            "INSERT INTO orgs (org_id, name, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            e.org_id,
            e.name,
            e.occurred_at,
        )

    async def _org_settings_updated(self, e: OrgSettingsUpdated) -> None:
        await self.pool.execute(
            """INSERT INTO org_settings (org_id, approval_expiry_seconds) VALUES ($1, $2)
               ON CONFLICT (org_id) DO UPDATE SET approval_expiry_seconds = EXCLUDED.approval_expiry_seconds""",
            e.org_id,
            e.approval_expiry_seconds,
        )

    async def _user_created(self, e: UserCreated) -> None:
        await self.pool.execute(
            """INSERT INTO users (user_id, org_id, email, role, password_hash, created_at)
               VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING""",
            e.user_id,
            e.org_id,
            e.email,
            e.role,
            e.password_hash,
            e.occurred_at,
        )

    async def _user_role_changed(self, e: UserRoleChanged) -> None:
        await self.pool.execute("UPDATE users SET role=$3 WHERE user_id=$1 AND org_id=$2", e.user_id, e.org_id, e.role)

    async def _user_password_changed(self, e: UserPasswordChanged) -> None:
        await self.pool.execute(
            "UPDATE users SET password_hash=$3 WHERE user_id=$1 AND org_id=$2", e.user_id, e.org_id, e.password_hash
        )

    async def _key_created(self, e: KeyCreated) -> None:
        await self.pool.execute(
            """INSERT INTO api_keys (key_id, org_id, user_id, name, prefix, key_hash, created_at)
               VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING""",
            e.key_id,
            e.org_id,
            e.user_id,
            e.name,
            e.prefix,
            e.key_hash,
            e.occurred_at,
        )

    async def _key_revoked(self, e: KeyRevoked) -> None:
        await self.pool.execute(
            "UPDATE api_keys SET revoked_at=$3 WHERE key_id=$1 AND org_id=$2 AND revoked_at IS NULL",
            e.key_id,
            e.org_id,
            e.occurred_at,
        )

    async def _integration_defined(self, e: IntegrationDefined) -> None:
        await self.pool.execute(
            """INSERT INTO custom_integrations (org_id, integration_id, name, description, mcp_url, auth, created_at,
                                               kind, openapi, timeout_seconds)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
               ON CONFLICT (org_id, integration_id) DO UPDATE SET name=EXCLUDED.name,
                 description=EXCLUDED.description, mcp_url=EXCLUDED.mcp_url, auth=EXCLUDED.auth, kind=EXCLUDED.kind,
                 openapi=EXCLUDED.openapi, timeout_seconds=EXCLUDED.timeout_seconds""",
            e.org_id,
            e.integration_id,
            e.name,
            e.description,
            e.mcp_url,
            e.auth.model_dump(),
            e.occurred_at,
            e.kind,
            e.openapi.model_dump(mode="json") if e.openapi else None,
            e.timeout_seconds,
        )

    async def _integration_installed(self, e: IntegrationInstalled) -> None:
        await self.pool.execute(
            """INSERT INTO installed (org_id, integration_id, name, mcp_url, auth_method, status, install_event_id,
                                      installed_at, kind)
               VALUES ($1, $2, $3, $4, $5, 'installing', $6, $7, $8)
               ON CONFLICT (org_id, integration_id) DO UPDATE SET name=EXCLUDED.name, mcp_url=EXCLUDED.mcp_url,
                 auth_method=EXCLUDED.auth_method, status='installing', error=NULL,
                 install_event_id=EXCLUDED.install_event_id, installed_at=EXCLUDED.installed_at, kind=EXCLUDED.kind
               WHERE installed.installed_at <= EXCLUDED.installed_at""",
            e.org_id,
            e.integration_id,
            e.name,
            _shown_url(e),
            e.auth_method,
            e.event_id,
            e.occurred_at,
            e.kind,
        )

    async def _integration_tools_refreshed(self, e: IntegrationToolsRefreshed) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            # The row lock serialises this replica's inline apply with the shared projector's.
            current = await conn.fetchval(
                "SELECT install_event_id FROM installed WHERE org_id=$1 AND integration_id=$2 FOR UPDATE",
                e.org_id,
                e.integration_id,
            )
            if current is None or (e.request_id is not None and current != e.request_id):
                return
            await conn.execute(
                "DELETE FROM tools WHERE org_id=$1 AND integration_id=$2 AND NOT (name = ANY($3::text[]))",
                e.org_id,
                e.integration_id,
                [t.name for t in e.tools],
            )
            await conn.executemany(
                """INSERT INTO tools (org_id, integration_id, name, title, description, input_schema)
                   VALUES ($1, $2, $3, $4, $5, $6)
                   ON CONFLICT (org_id, integration_id, name) DO UPDATE SET title=EXCLUDED.title,
                     description=EXCLUDED.description, input_schema=EXCLUDED.input_schema""",
                [(e.org_id, e.integration_id, t.name, t.title, t.description, t.input_schema) for t in e.tools],
            )
            await conn.execute(
                "UPDATE installed SET status='ready', error=NULL WHERE org_id=$1 AND integration_id=$2",
                e.org_id,
                e.integration_id,
            )

    async def _integration_refresh_failed(self, e: IntegrationRefreshFailed) -> None:
        await self.pool.execute(
            """UPDATE installed SET status='error', error=$3 WHERE org_id=$1 AND integration_id=$2
               AND ($4::text IS NULL OR install_event_id=$4)""",
            e.org_id,
            e.integration_id,
            e.message,
            e.request_id,
        )

    async def _integration_auth_expired(self, e: IntegrationAuthExpired) -> None:
        await self.pool.execute(
            """UPDATE installed SET status='needs_reauth', error=$3 WHERE org_id=$1 AND integration_id=$2
               AND installed_at <= $4""",
            e.org_id,
            e.integration_id,
            e.message,
            e.occurred_at,
        )

    async def _oauth_grant_created(self, e: OAuthGrantCreated) -> None:
        await self.pool.execute(
            """INSERT INTO oauth_grants (grant_id, org_id, user_id, client_id, client_name, redirect_uri, resource,
                                         scope, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
               ON CONFLICT DO NOTHING""",
            e.grant_id,
            e.org_id,
            e.user_id,
            e.client_id,
            e.client_name,
            e.redirect_uri,
            e.resource,
            e.scope,
            e.occurred_at,
        )

    async def _oauth_grant_revoked(self, e: OAuthGrantRevoked) -> None:
        await self.pool.execute(
            """UPDATE oauth_grants SET revoked_at=$3, revoked_reason=$4 WHERE grant_id=$1 AND org_id=$2
               AND revoked_at IS NULL""",
            e.grant_id,
            e.org_id,
            e.occurred_at,
            e.reason,
        )

    async def _integration_removed(self, e: IntegrationRemoved) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "DELETE FROM installed WHERE org_id=$1 AND integration_id=$2 AND installed_at <= $3",
                e.org_id,
                e.integration_id,
                e.occurred_at,
            )
            await conn.execute("DELETE FROM tools WHERE org_id=$1 AND integration_id=$2", e.org_id, e.integration_id)

    async def _call_requested(self, e: CallRequested) -> None:
        """Every replica, and a rebuild, knows each call the gateway accepted; seeing it proves it was published.

        The event is kept until the call is held or ends, as the gateway that accepted the call keeps it."""
        spec = e.spec
        await self.pool.execute(
            """INSERT INTO calls (call_id, org_id, status, integration_id, tool_name, args_hash, idempotency_key,
                                  created_at, pending_event)
               VALUES ($1, $2, 'requested', $3, $4, $5, $6, $7, $8)
               ON CONFLICT (call_id) DO UPDATE SET published=true
               WHERE calls.org_id = EXCLUDED.org_id AND NOT calls.published""",
            e.call_id,
            e.org_id,
            spec.integration_id,
            spec.tool_name,
            spec.args_hash,
            spec.idempotency_key,
            e.occurred_at,
            encode_event(e).decode(),
        )

    async def _approval_requested(self, e: ApprovalRequested) -> None:
        await self.pool.execute(
            """INSERT INTO calls (call_id, org_id, request_id, coalesced, status) VALUES ($1, $2, $3, $4, 'pending')
               ON CONFLICT (call_id) DO UPDATE SET request_id=EXCLUDED.request_id, coalesced=EXCLUDED.coalesced,
                 published=true, pending_event=NULL""",
            e.call_id,
            e.org_id,
            e.request_id,
            e.coalesced,
        )

    async def _terminal(self, e: CallCompleted | CallFailed | CallDenied | CallExpired | CallCoalesced) -> None:
        await self.pool.execute(
            """INSERT INTO calls (call_id, org_id, status, outcome) VALUES ($1, $2, $3, $4)
               ON CONFLICT (call_id) DO UPDATE SET status=EXCLUDED.status, outcome=EXCLUDED.outcome, updated_at=now(),
                 published=true, pending_event=NULL
               WHERE calls.status NOT IN ('completed', 'failed', 'denied', 'expired', 'coalesced')""",
            e.call_id,
            e.org_id,
            e.type.removeprefix("call."),
            outcome_of(e),
        )

    _call_completed = _terminal
    _call_failed = _terminal
    _call_denied = _terminal
    _call_expired = _terminal
    _call_coalesced = _terminal
