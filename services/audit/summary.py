"""A call's story folded into one summary: who, what, from where, the verdict, the approver, the outcome."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from shared.events import (
    AnyEvent,
    ApprovalDecided,
    ApprovalRequested,
    CallCoalesced,
    CallCompleted,
    CallDenied,
    CallExpired,
    CallFailed,
    CallReleased,
    CallRequested,
    CallRuled,
    CallStarted,
)

STATUS_AFTER: dict[str, str] = {
    "call.completed": "completed",
    "call.failed": "failed",
    "call.denied": "denied",
    "call.expired": "expired",
    "call.coalesced": "coalesced",
}
# The states a call goes through before its ending, in order. Events can arrive out of order (a handler
# retried after a PostgreSQL outage, a redelivery): a state never moves back, and an ending is never undone.
PROGRESS = ("requested", "allowed", "held", "pending_approval", "released", "running")
ENDINGS = frozenset(STATUS_AFTER.values())


def _advance(s: dict[str, Any], status: str) -> None:
    current = s.get("status")
    if current in ENDINGS:
        return
    if current in PROGRESS and status in PROGRESS and PROGRESS.index(status) < PROGRESS.index(current):
        return
    s["status"] = status


def fold(summary: dict[str, Any], event: AnyEvent) -> dict[str, Any]:
    """The summary after one more event of the call (a pure function)."""
    s = dict(summary)
    at = event.occurred_at.isoformat()
    if isinstance(event, CallRequested):
        spec = event.spec
        s.update(
            call_id=event.call_id,
            org_id=event.org_id,
            integration_id=spec.integration_id,
            tool_name=spec.tool_name,
            arguments=spec.arguments,
            args_hash=spec.args_hash,
            additional_info=spec.additional_info,
            actor=spec.actor.model_dump(),
            client_ip=spec.client_ip,
            channel=spec.channel,
            requested_at=at,
        )
        _advance(s, "requested")
    elif isinstance(event, CallRuled):
        s.update(verdict=event.verdict, rule=event.rule, ruled_at=at)
        _advance(s, {"allow": "allowed", "hold": "held", "deny": "denied"}[event.verdict])
    elif isinstance(event, ApprovalRequested):
        s.update(
            approval_request_id=event.request_id,
            expires_at=event.expires_at.isoformat(),
            coalesced=event.coalesced,
        )
        _advance(s, "pending_approval")
    elif isinstance(event, ApprovalDecided):
        s.update(
            decision=event.decision,
            approver=event.decided_by.model_dump() if event.decided_by else None,
            approver_ip=event.decided_ip,
            decision_reason=event.reason,
            decided_at=at,
        )
    elif isinstance(event, CallReleased):
        s.update(released_at=at)
        _advance(s, "released")
    elif isinstance(event, CallStarted):
        s.update(started_at=at, executor_id=event.executor_id)
        _advance(s, "running")
    elif isinstance(event, CallCompleted):
        s.update(outcome={"result": event.result, "is_error": event.is_error}, upstream_ms=event.duration_ms)
    elif isinstance(event, CallFailed):
        s.update(outcome={"error_code": event.error_code, "message": event.message}, upstream_ms=event.duration_ms)
    elif isinstance(event, CallDenied):
        s.update(
            outcome={
                "denied_by": event.by,
                "rule": event.rule,
                "reason": event.reason,
                "decided_by": event.decided_by.model_dump() if event.decided_by else None,
            }
        )
    elif isinstance(event, CallExpired):
        s.update(outcome={"expired_request": event.request_id})
    elif isinstance(event, CallCoalesced):
        s.update(outcome={"coalesced_into": event.into_call_id, "approval_request_id": event.request_id})
    if event.type in STATUS_AFTER:
        s["status"] = STATUS_AFTER[event.type]
        s["finished_at"] = at
    if s.get("finished_at") and s.get("requested_at"):
        start, end = datetime.fromisoformat(s["requested_at"]), datetime.fromisoformat(s["finished_at"])
        s["total_ms"] = round((end - start).total_seconds() * 1000, 3)
    return s
