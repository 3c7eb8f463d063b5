"""An agent's tool call: validated, published, and waited on until it runs, is held or ends."""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal

import asyncpg
import jsonschema

from services.gateway.principals import Principal
from services.gateway.waiters import Waiters
from shared.bus import Bus
from shared.errors import BadRequest, InvalidArguments, NotFound
from shared.events import (
    TERMINAL_TYPES,
    AnyEvent,
    ApprovalRequested,
    CallCoalesced,
    CallCompleted,
    CallDenied,
    CallExpired,
    CallFailed,
    CallRequested,
    CallSpec,
    arguments_hash,
    canonical_json,
    new_id,
    parse_event,
)

Progress = Callable[[float, float, str], Awaitable[None]]
Channel = Literal["mcp", "rest", "cli"]


class Calls:
    def __init__(self, bus: Bus, pool: asyncpg.Pool, waiters: Waiters, base_url: str, keepalive_seconds: float) -> None:
        self.bus = bus
        self.pool = pool
        self.waiters = waiters
        self.base_url = base_url.rstrip("/")
        self.keepalive = keepalive_seconds

    async def call_tool(
        self,
        who: Principal,
        integration_id: str,
        tool_name: str,
        arguments: dict[str, Any],
        additional_info: str | None,
        channel: Channel,
        wait_seconds: float,
        progress: Progress | None = None,
    ) -> dict[str, Any]:
        """Submit a call and wait until it is executed, held for approval, or ends otherwise."""
        schema = await self._tool_schema(who.org_id, integration_id, tool_name)
        validate_arguments(schema, arguments, tool_name)
        call_id = new_id()
        spec = CallSpec(
            integration_id=integration_id,
            tool_name=tool_name,
            arguments=arguments,
            args_hash=arguments_hash(arguments),
            additional_info=additional_info,
            actor=who.actor,
            client_ip=who.client_ip,
            channel=channel,
        )
        with self.waiters.watch(f"call:{call_id}") as watch:
            await self.bus.publish(CallRequested(org_id=who.org_id, call_id=call_id, spec=spec))
            deadline = time.monotonic() + wait_seconds
            while True:
                event = await self._next(watch, deadline, wait_seconds, progress, "waiting for the call to run")
                if event is None:
                    return self.pending(call_id, None, "the call is still running")
                if isinstance(event, ApprovalRequested):
                    return self.approval_required(event)
                if event.type in TERMINAL_TYPES:
                    return self.render(event)

    async def await_request(
        self, who: Principal, request_id: str, budget: float, progress: Progress | None = None
    ) -> dict[str, Any]:
        """Wait (up to `budget` seconds) for the outcome of the call behind an approval request."""
        request = await self.bus.request("approvals.get", {"org_id": who.org_id, "request_id": request_id})
        return await self._await_terminal(
            who, str(request["call_id"]), request_id, budget, progress, "waiting for a human to decide"
        )

    async def await_call(
        self, who: Principal, call_id: str, budget: float, progress: Progress | None
    ) -> dict[str, Any]:
        """Wait for a call that was still running (or held) when its first wait ended."""
        request_id = await self.pool.fetchval(
            "SELECT request_id FROM calls WHERE call_id=$1 AND org_id=$2", call_id, who.org_id
        )
        if request_id:
            return await self.await_request(who, request_id, budget, progress)
        return await self._await_terminal(who, call_id, None, budget, progress, "waiting for the call to finish")

    async def _await_terminal(
        self,
        who: Principal,
        call_id: str,
        request_id: str | None,
        budget: float,
        progress: Progress | None,
        waiting: str,
    ) -> dict[str, Any]:
        """The call's outcome if known, else wait for it; `pending` when the budget runs out."""
        with self.waiters.watch(f"call:{call_id}") as watch:
            done = await self._known_outcome(who.org_id, call_id)
            if done is not None:
                return self.render(done)
            deadline = time.monotonic() + budget
            while True:
                event = await self._next(watch, deadline, budget, progress, waiting)
                if event is None:
                    why = "no decision yet" if request_id else "the call is still running"
                    return self.pending(call_id, request_id, why)
                if event.type in TERMINAL_TYPES and event.org_id == who.org_id:
                    return self.render(event)

    async def _next(
        self, watch: Any, deadline: float, budget: float, progress: Progress | None, message: str
    ) -> AnyEvent | None:
        """The next event, sending a progress tick every keep-alive interval while waiting."""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            event: AnyEvent | None = await watch.next(min(left, self.keepalive))
            if event is not None:
                return event
            if progress is not None and deadline - time.monotonic() > 0:
                await progress(budget - (deadline - time.monotonic()), budget, message)

    async def _known_outcome(self, org_id: str, call_id: str) -> AnyEvent | None:
        """A terminal event already seen for this call, from the recent cache or the read model."""
        for event in reversed(self.waiters.recent(f"call:{call_id}")):
            if event.type in TERMINAL_TYPES:
                return event
        row = await self.pool.fetchrow(
            "SELECT status, outcome FROM calls WHERE call_id=$1 AND org_id=$2 AND outcome IS NOT NULL",
            call_id,
            org_id,
        )
        if row is None:
            return None
        return parse_event(_event_json(org_id, row["outcome"]))

    async def _tool_schema(self, org_id: str, integration_id: str, tool_name: str) -> dict[str, Any]:
        installed = await self.pool.fetchrow(
            """SELECT i.status, t.input_schema FROM installed i
               LEFT JOIN tools t ON t.org_id=i.org_id AND t.integration_id=i.integration_id AND t.name=$3
               WHERE i.org_id=$1 AND i.integration_id=$2""",
            org_id,
            integration_id,
            tool_name,
        )
        if installed is None:
            raise NotFound(
                f"integration {integration_id!r} is not installed; list the installed integrations, or install it first"
            )
        if installed["status"] == "installing":
            raise BadRequest(f"integration {integration_id!r} is still installing; try again in a moment")
        if installed["input_schema"] is None:
            raise NotFound(
                f"integration {integration_id!r} has no tool {tool_name!r}; list its tools to see what it offers"
            )
        return dict(installed["input_schema"])

    # --- what the agent is shown --------------------------------------------------------------

    def approval_url(self, request_id: str) -> str:
        return f"{self.base_url}/approve/{request_id}"

    def approval_required(self, event: ApprovalRequested) -> dict[str, Any]:
        url = self.approval_url(event.request_id)
        return {
            "status": "approval_required",
            "call_id": event.call_id,
            "approval_request_id": event.request_id,
            "approval_url": url,
            "expires_at": event.expires_at.isoformat(),
            "message": (
                f"This call needs a human's approval. Share this link with a human now: {url} — then immediately "
                f'call agentport__await_approval(request_id="{event.request_id}") to wait for the decision '
                "and get the result."
            ),
        }

    def pending(self, call_id: str, request_id: str | None, why: str) -> dict[str, Any]:
        out: dict[str, Any] = {"status": "pending", "call_id": call_id, "message": why}
        if request_id:
            out["approval_request_id"] = request_id
            out["approval_url"] = self.approval_url(request_id)
            out["message"] = f'{why}: call agentport__await_approval(request_id="{request_id}") again to keep waiting.'
        return out

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


@functools.lru_cache(maxsize=2048)
def _validator(schema_text: str) -> Any:
    schema = json.loads(schema_text)
    return jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)(schema)


def validate_arguments(schema: dict[str, Any], arguments: dict[str, Any], tool_name: str) -> None:
    """Refuse arguments that break the tool's input schema, naming where and why."""
    try:
        validator = _validator(canonical_json(schema))
        error = jsonschema.exceptions.best_match(validator.iter_errors(arguments))
    except jsonschema.exceptions.SchemaError:
        return
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(top level)"
        raise InvalidArguments(
            f"arguments for {tool_name} do not match its input schema at {where}: {error.message}",
            path=where,
        )


def _event_json(org_id: str, outcome: dict[str, Any]) -> str:
    return json.dumps({**outcome, "org_id": org_id})
