"""What an agent is told about its call: every answer names the call (`call_id`) and says what to do next."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from shared.errors import BadRequest
from shared.events import AnyEvent, CallCoalesced, CallCompleted, CallDenied, CallExpired, CallFailed


def await_hint(ident: str) -> str:
    return f'agentport__await_approval(request_id="{ident}")'


class CallAnswers:
    """Builds the structured results of `call_tool` and of the awaits (MCP and REST alike)."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")

    def approval_url(self, request_id: str) -> str:
        return f"{self.base_url}/approve/{request_id}"

    def approval_required(self, call_id: str, request_id: str, expires_at: datetime | str) -> dict[str, Any]:
        url = self.approval_url(request_id)
        return {
            "status": "approval_required",
            "call_id": call_id,
            "approval_request_id": request_id,
            "approval_url": url,
            "expires_at": expires_at if isinstance(expires_at, str) else expires_at.isoformat(),
            "message": (
                f"This call needs a human's approval. Share this link with a human now: {url} — then immediately "
                f"call {await_hint(request_id)} to wait for the decision and get the result."
            ),
        }

    def pending(self, call_id: str, request_id: str | None, why: str) -> dict[str, Any]:
        """Still running (or still held) when the wait ended: the agent awaits the call (or its request)."""
        out: dict[str, Any] = {"status": "pending", "call_id": call_id}
        if request_id:
            out["approval_request_id"] = request_id
            out["approval_url"] = self.approval_url(request_id)
            out["message"] = (
                f"{why}: make sure a human has the approval link {out['approval_url']}, then call "
                f"{await_hint(request_id)} again to keep waiting."
            )
        else:
            out["message"] = (
                f"{why}. The call was not cancelled: call {await_hint(call_id)} to wait for its result "
                "(do not start the call again)."
            )
        return out

    def unconfirmed(self, call_id: str, idempotency_key: str | None) -> dict[str, Any]:
        """The call is recorded, but handing it on was not confirmed (the event bus did not answer in time)."""
        again = (
            f', or call agentport__call_tool again with the same idempotency_key "{idempotency_key}"'
            if idempotency_key
            else ""
        )
        return {
            "status": "pending",
            "call_id": call_id,
            "message": (
                f"AgentPort recorded this call ({call_id}) but could not yet confirm it was handed on to run; it "
                f"may still run. Do not start a new call for it: wait for its result with {await_hint(call_id)}"
                f"{again}; either way it runs at most once."
            ),
        }

    def interrupted(self, call_id: str) -> dict[str, Any]:
        """Waiting for an accepted call failed inside AgentPort: the call itself may still run."""
        return {
            "status": "pending",
            "call_id": call_id,
            "message": (
                f"AgentPort lost track of waiting for this call ({call_id}); the call may still run. Do not start a "
                f"new call for it: wait for its result with {await_hint(call_id)}."
            ),
        }

    def render(self, event: AnyEvent) -> dict[str, Any]:
        """A terminal event as the agent sees it."""
        if isinstance(event, CallCompleted):
            return {
                "status": "executed",
                "call_id": event.call_id,
                "is_error": event.is_error,
                "result": event.result,
                "message": "The call ran upstream; its result is in `result`.",
            }
        if isinstance(event, CallFailed):
            return {
                "status": "error",
                "call_id": event.call_id,
                "error": {"code": event.error_code, "message": event.message},
                "message": event.message,
            }
        if isinstance(event, CallDenied):
            return _denied(event)
        if isinstance(event, CallExpired):
            return {
                "status": "expired",
                "call_id": event.call_id,
                "approval_request_id": event.request_id,
                "message": "Nobody decided on this approval request in time; it expired. "
                "Ask the human whether to try again.",
            }
        if isinstance(event, CallCoalesced):
            return self.pending(event.into_call_id, event.request_id, "an identical call is already waiting")
        raise BadRequest(f"unexpected event {event.type}")


def _denied(event: CallDenied) -> dict[str, Any]:
    who = event.decided_by.name if event.decided_by else None
    if event.by == "human":
        text = f"Denied by {who or 'a human'}" + (f": {event.reason}" if event.reason else ".")
    else:
        text = event.reason or "Denied by policy."
    text = text if text.endswith((".", "!", "?")) else f"{text}."
    return {
        "status": "denied",
        "call_id": event.call_id,
        "denied_by": event.by,
        "decided_by": who,
        "reason": event.reason,
        "rule": event.rule,
        "message": f"{text} Do not retry this call or try to work around the denial.",
    }
