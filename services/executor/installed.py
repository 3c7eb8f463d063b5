"""The executor's read model of installed integrations, rebuilt from `integration.installed` / `.removed`.

A row keeps the credential sealed; `load` opens it in memory for the one call or refresh that needs it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from shared.events import AuthSpec, IntegrationInstalled, IntegrationKind, IntegrationRemoved, OpenApiSource
from shared.sealing import open_sealed, seal_context


@dataclass(frozen=True)
class Installed:
    """One installed integration with its credential opened (never logged, never sent anywhere but upstream)."""

    org_id: str
    integration_id: str
    kind: IntegrationKind
    url: str
    auth: AuthSpec
    credential: str | None = field(repr=False)
    openapi: OpenApiSource | None
    document: dict[str, Any] | None = field(repr=False)
    timeout: float | None
    updated_at: datetime

    @property
    def key(self) -> tuple[str, str]:
        return (self.org_id, self.integration_id)

    @property
    def version(self) -> str:
        """Changes whenever the integration is installed again (new URL, credential or document)."""
        return f"{self.kind}|{self.url}|{self.updated_at.isoformat()}"


async def store(pool: asyncpg.Pool, event: IntegrationInstalled) -> None:
    """Record an installation; an older event replayed later does not override a newer one."""
    await pool.execute(
        """INSERT INTO integrations (org_id, integration_id, name, mcp_url, auth, auth_method, sealed_credential,
                                     installed, updated_at, kind, openapi, document, timeout_seconds, tools_hash)
           VALUES ($1, $2, $3, $4, $5, $6, $7, true, $8, $9, $10, NULL, $11, NULL)
           ON CONFLICT (org_id, integration_id) DO UPDATE SET name=EXCLUDED.name, mcp_url=EXCLUDED.mcp_url,
             auth=EXCLUDED.auth, auth_method=EXCLUDED.auth_method, sealed_credential=EXCLUDED.sealed_credential,
             installed=true, updated_at=EXCLUDED.updated_at, kind=EXCLUDED.kind, openapi=EXCLUDED.openapi,
             document=NULL, timeout_seconds=EXCLUDED.timeout_seconds, tools_hash=NULL
           WHERE integrations.updated_at <= EXCLUDED.updated_at""",
        event.org_id,
        event.integration_id,
        event.name,
        event.mcp_url,
        event.auth.model_dump(),
        event.auth_method,
        event.sealed_credential,
        event.occurred_at,
        event.kind,
        event.openapi.model_dump(mode="json") if event.openapi else None,
        event.timeout_seconds,
    )


async def remove(pool: asyncpg.Pool, event: IntegrationRemoved) -> None:
    """Forget the credential of a removed integration."""
    await pool.execute(
        "UPDATE integrations SET installed=false, sealed_credential=NULL, document=NULL, tools_hash=NULL, "
        "updated_at=$3 WHERE org_id=$1 AND integration_id=$2 AND updated_at <= $3",
        event.org_id,
        event.integration_id,
        event.occurred_at,
    )


async def load(pool: asyncpg.Pool, key: X25519PrivateKey, org_id: str, integration_id: str) -> Installed | None:
    """An installed integration with its credential opened, or None when it is not installed."""
    row = await pool.fetchrow(
        "SELECT * FROM integrations WHERE org_id=$1 AND integration_id=$2 AND installed", org_id, integration_id
    )
    if row is None:
        return None
    credential = None
    if row["sealed_credential"]:
        credential = open_sealed(key, row["sealed_credential"], seal_context(org_id, integration_id))
    return Installed(
        org_id=org_id,
        integration_id=integration_id,
        kind=row["kind"],
        url=row["mcp_url"],
        auth=AuthSpec.model_validate(row["auth"]),
        credential=credential,
        openapi=OpenApiSource.model_validate(row["openapi"]) if row["openapi"] else None,
        document=row["document"],
        timeout=row["timeout_seconds"],
        updated_at=row["updated_at"],
    )


async def save_document(pool: asyncpg.Pool, installed: Installed, document: dict[str, Any]) -> None:
    """Keep the OpenAPI document fetched for this installation, so calls need not fetch it again."""
    await pool.execute(
        "UPDATE integrations SET document=$3 WHERE org_id=$1 AND integration_id=$2 AND updated_at=$4",
        installed.org_id,
        installed.integration_id,
        document,
        installed.updated_at,
    )


async def note_tools(pool: asyncpg.Pool, installed: Installed, tools_hash: str) -> bool:
    """Record the tool list's hash; True if it differs from the last one recorded (by any executor replica)."""
    changed = await pool.fetchval(
        """UPDATE integrations SET tools_hash=$3 WHERE org_id=$1 AND integration_id=$2 AND installed
             AND tools_hash IS DISTINCT FROM $3 RETURNING true""",
        installed.org_id,
        installed.integration_id,
        tools_hash,
    )
    return bool(changed)
