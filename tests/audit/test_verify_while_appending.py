"""`verify` on a log that is growing: it must never report tampering that did not happen."""

from __future__ import annotations

import asyncio
from pathlib import Path

from services.audit import log
from shared.db import connect
from shared.events import OrgCreated, new_id
from tests.support.stack import fresh_namespace

DDL = Path(log.__file__).with_name("schema.sql")
APPENDS = 150


async def test_verify_during_appends_sees_one_consistent_chain(infra: dict[str, str]) -> None:
    async with fresh_namespace(infra["NATS_URL"], infra["DATABASE_URL"], prefix="a") as (ns, db):
        pool = await connect(db, f"{ns}_audit", DDL)
        try:
            org = new_id()
            await log.append(pool, OrgCreated(org_id=org, name="first"))
            done = asyncio.Event()

            async def appending() -> None:
                for i in range(APPENDS):
                    await log.append(pool, OrgCreated(org_id=org, name=f"n{i}"))
                done.set()

            writer = asyncio.create_task(appending())
            reports = []
            while not done.is_set():
                reports.append(await log.verify(pool, org))
            await writer
            final = await log.verify(pool, org)
        finally:
            await pool.close()
    bad = [r for r in reports if not r["ok"]]
    assert not bad, bad[:3]
    assert len(reports) > 5, "verify ran while the log grew"
    assert final["ok"] and final["orgs"][org]["entries"] == APPENDS + 1
