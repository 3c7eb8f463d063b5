"""Faults under load, shared by `tests/faults/` and `make chaos` (bench/chaos.py): a stack on servers of its
own (`rig`), agents that retry as the contract says (`agents`), and the tally of a round (`tally`)."""

from __future__ import annotations

import asyncio
import secrets
import time
from datetime import UTC, datetime, timedelta

from tests.support.faults.agents import Agents, Call
from tests.support.faults.rig import Fault, OwnServer, Rig, fault_rig, kill_and_restart, outage
from tests.support.faults.tally import RoundResult, Row, recheck, tally

__all__ = [
    "Call",
    "Fault",
    "OwnServer",
    "Rig",
    "RoundResult",
    "Row",
    "fault_rig",
    "kill_and_restart",
    "outage",
    "recheck",
    "under_load",
]


async def under_load(
    rig: Rig,
    name: str,
    fault: Fault,
    *,
    agents: int = 8,
    warmup: float = 3.0,
    after: float = 2.0,
    recover_timeout: float = 40.0,
    grace: float = 40.0,
    settle: float = 40.0,
) -> RoundResult:
    """One round: agents call, the fault strikes, the agents go on until the stack has recovered (and `after`
    seconds more), then end their calls in flight (giving up after `grace` seconds); the tally follows, once the
    audit log has settled (within `settle` seconds). Both bounds exceed the services' 30 s redelivery window."""
    rig.revive()
    await rig.healthy()
    since = datetime.now(UTC) - timedelta(seconds=2)
    prefix = f"{name}-{secrets.token_hex(3)}"  # the round's keys; a round run twice is told apart
    load = Agents(rig.stack.base_url, rig.tenant.agent, prefix, agents)
    load.start()
    recover_s = None
    fault_start = fault_end = 0.0
    try:
        await asyncio.sleep(warmup)
        fault_start = time.monotonic()
        fault_end = await fault()
        recovered = await load.wait_recovered(fault_end, recover_timeout)
        recover_s = None if recovered is None else recovered - fault_end
        await asyncio.sleep(after)
    finally:
        await load.stop(grace)
    revived = rig.revive()
    result = await tally(rig, name, prefix, load.calls, since, recover_s, settle)
    result.fault = (fault_start, fault_end)
    if revived:
        result.row.notes.insert(0, f"exited by itself during the round, then restarted: {', '.join(revived)}")
    return result
