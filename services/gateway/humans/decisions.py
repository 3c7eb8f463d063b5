"""A human's decision on an approval request, sent to the approvals service, and what to say when its answer is late.

A timed-out `approvals.decide` does not mean nothing happened: approvals may have taken the command and recorded
(and announced) the decision after we stopped waiting. So before answering, the request is read back for a few
seconds; the human learns what was recorded, or that it may have been and to reload before deciding again.
"""

from __future__ import annotations

import asyncio
from typing import Any

import nats.errors
import structlog

from services.gateway.identity.principals import Principal
from shared.bus import Bus
from shared.errors import Conflict, Unavailable

log = structlog.get_logger("gateway.decisions")

DECIDE_TIMEOUT_SECONDS = 10.0
CHECK_SECONDS = 5.0
CHECK_EVERY_SECONDS = 0.5
MAYBE_RECORDED = (
    "the approvals service did not confirm your decision in time; it may still have been recorded. "
    "Reload the request to see its status before deciding again."
)


async def send_decision(bus: Bus, who: Principal, request_id: str, decision: str, reason: str | None) -> dict[str, Any]:
    """Record `who`'s decision through approvals and return the decided request."""
    command = {
        "org_id": who.org_id,
        "request_id": request_id,
        "decision": decision,
        "actor": who.actor.model_dump(),
        "ip": who.client_ip,
        "reason": reason,
    }
    try:
        result: dict[str, Any] = await bus.request("approvals.decide", command, timeout=DECIDE_TIMEOUT_SECONDS)
        return result
    except Unavailable as exc:
        if isinstance(exc.__cause__, nats.errors.NoRespondersError):
            raise  # no approvals replica took the command: nothing can have been recorded
        log.warning("approval.decide_unconfirmed", request_id=request_id, decision=decision)
    return await _read_back(bus, who, request_id, decision)


async def _read_back(bus: Bus, who: Principal, request_id: str, decision: str) -> dict[str, Any]:
    """After a late answer: the request if it now holds this very decision, a 409 if it holds another."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + CHECK_SECONDS
    while True:
        try:
            item: dict[str, Any] = await bus.request(
                "approvals.get", {"org_id": who.org_id, "request_id": request_id}, timeout=CHECK_EVERY_SECONDS * 4
            )
        except Unavailable:
            item = {"status": "pending"}
        if item.get("status") != "pending":
            decided_by = item.get("decided_by") or {}
            if item.get("decision") == decision and decided_by.get("id") == who.actor.id:
                log.info("approval.decide_confirmed_late", request_id=request_id, decision=decision)
                return item
            raise Conflict(f"this approval request was already decided: {item['status']}", status=item["status"])
        if loop.time() >= deadline:
            raise Unavailable(MAYBE_RECORDED, request_id=request_id)
        await asyncio.sleep(CHECK_EVERY_SECONDS)
