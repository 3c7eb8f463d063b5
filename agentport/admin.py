"""`agentport admin …`: scriptable bootstrap against the running bus and database."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from agentport.infra import discovered
from services.gateway import main as gateway_main
from services.gateway.accounts import Accounts
from services.gateway.projection import Projection
from shared.bus import Bus
from shared.db import connect
from shared.errors import Unavailable
from shared.events import SYSTEM, Role
from shared.settings import GatewaySettings


async def _open(data_dir: Path) -> tuple[Bus, Any, GatewaySettings]:
    os.environ.update({k: v for k, v in discovered(data_dir).items() if k not in os.environ})
    settings = GatewaySettings()
    if not settings.nats_url or not settings.database_url:
        raise Unavailable("no NATS/PostgreSQL found: start AgentPort with `make run`, or set NATS_URL and DATABASE_URL")
    bus = await Bus.connect(settings.nats_url, settings.namespace, "agentport-admin", wait_seconds=5)
    spec = gateway_main.spec()
    pool = await connect(settings.database_url, f"{settings.namespace}_{spec.schema}", spec.ddl, wait_seconds=5)
    return bus, pool, settings


async def create_user(data_dir: Path, email: str, password: str, org: str | None, role: Role | None) -> str:
    bus, pool, _ = await _open(data_dir)
    try:
        return await Accounts(bus, pool, Projection(pool)).create_user(email, password, org, role)
    finally:
        await bus.close()
        await pool.close()


async def create_api_key(data_dir: Path, email: str, name: str) -> str:
    bus, pool, _ = await _open(data_dir)
    try:
        accounts = Accounts(bus, pool, Projection(pool))
        user = await accounts.user_by_email(email)
        return (await accounts.create_key(user["user_id"], name, SYSTEM)).key
    finally:
        await bus.close()
        await pool.close()


async def verify_audit(data_dir: Path) -> tuple[bool, str]:
    bus, pool, _ = await _open(data_dir)
    try:
        report = await bus.request("audit.verify", {}, timeout=120)
        return bool(report["ok"]), json.dumps(report, indent=2)
    finally:
        await bus.close()
        await pool.close()
