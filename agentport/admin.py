"""`agentport admin …`: scriptable bootstrap against the running bus and database."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from agentport.infra import discovered
from services.gateway import main as gateway_main
from services.gateway.agents.call_records import CallRecords
from services.gateway.identity.accounts import Accounts
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
    bus = await Bus.connect(
        settings.nats_url, settings.namespace, "agentport-admin", wait_seconds=5, policy=settings.stream_policy()
    )
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


SETTLE_BATCH = 200


async def reconcile(data_dir: Path, older_than_seconds: float, dry_run: bool) -> dict[str, Any]:
    """Find calls left without an ending (e.g. after the NATS store was lost) and end each from what the
    executor's claims know: a recorded outcome is published again, a dead executor's call ends
    `outcome_unknown`, a call nobody ran ends `lost`. A call whose publish the bus never confirmed is sent
    again (its agent was told it may still run). Calls waiting for a human are left to their request."""
    bus, pool, _ = await _open(data_dir)
    try:
        found = await bus.request("audit.open_calls", {"older_than_seconds": older_than_seconds}, timeout=60)
        calls: dict[str, dict[str, Any]] = {c["call_id"]: dict(c) for c in found}
        unconfirmed = []
        for record in await CallRecords(pool).left_open(older_than_seconds):
            if (event := record.unpublished()) is not None:
                unconfirmed.append(event)
                calls[record.call_id] = {"call_id": record.call_id, "org_id": record.org_id, "status": "unconfirmed"}
            else:
                calls.setdefault(record.call_id, {"call_id": record.call_id, "org_id": record.org_id, "status": "open"})
        actions: dict[str, str] = {}
        if not dry_run:
            for event in unconfirmed:
                await bus.publish(event)
                await CallRecords(pool).confirm(event)
                actions[str(event.call_id)] = "resent"
            settle = [c for c in calls.values() if c["call_id"] not in actions]
            for start in range(0, len(settle), SETTLE_BATCH):
                batch = [{"call_id": c["call_id"], "org_id": c["org_id"]} for c in settle[start : start + SETTLE_BATCH]]
                actions.update(await bus.request("executor.settle", {"calls": batch}, timeout=120))
        counts: dict[str, int] = {}
        for call in calls.values():
            call["action"] = actions.get(call["call_id"], "none (dry run)" if dry_run else "none")
            counts[call["action"]] = counts.get(call["action"], 0) + 1
        return {"open": len(calls), "dry_run": dry_run, "actions": counts, "calls": list(calls.values())}
    finally:
        await bus.close()
        await pool.close()
