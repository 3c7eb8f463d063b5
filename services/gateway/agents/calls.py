"""An agent's tool call: validated, recorded, published, and waited on until it runs, is held or ends."""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

import asyncpg
import jsonschema
import structlog

from services.gateway.agents.call_answers import CallAnswers
from services.gateway.agents.call_records import CallRecord, CallRecords
from services.gateway.identity.principals import Principal
from services.gateway.waiters import Waiters, Watch
from shared.bus import Bus
from shared.errors import BadRequest, Conflict, InvalidArguments, NotFound, PayloadTooLarge
from shared.events import (
    TERMINAL_TYPES,
    AnyEvent,
    ApprovalRequested,
    CallRequested,
    CallSpec,
    arguments_hash,
    canonical_json,
    derived_id,
    encode_event,
    new_id,
    parse_event,
)

log = structlog.get_logger("gateway.calls")

Progress = Callable[[float, float, str], Awaitable[None]]
Channel = Literal["mcp", "rest", "cli"]
# Room for what the events that carry a call's spec further (ruled, held, released) add to `call.requested`.
CARRIED_ALLOWANCE = 1024
MAX_IDEMPOTENCY_KEY = 200


@dataclass(frozen=True)
class Wait:
    """How long an answer may wait: its budget in seconds and the moment that budget ends."""

    seconds: float
    deadline: float

    @classmethod
    def starting_now(cls, seconds: float) -> Wait:
        return cls(seconds, time.monotonic() + seconds)

    def left(self) -> float:
        return self.deadline - time.monotonic()


class Calls:
    def __init__(self, bus: Bus, pool: asyncpg.Pool, waiters: Waiters, base_url: str, keepalive_seconds: float) -> None:
        self.bus = bus
        self.pool = pool
        self.waiters = waiters
        self.records = CallRecords(pool)
        self.answers = CallAnswers(base_url)
        self.keepalive = keepalive_seconds

    def approval_url(self, request_id: str) -> str:
        return self.answers.approval_url(request_id)

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
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Submit a call and wait until it is executed, held for approval, or ends otherwise.

        With an idempotency key, asking again answers about the first call (even if the tool has gone since)
        and never runs it again."""
        wait = Wait.starting_now(wait_seconds)
        event = requested_event(who, integration_id, tool_name, arguments, additional_info, channel, idempotency_key)
        with self.waiters.watch(who.org_id, "call", event.call_id) as watch:
            earlier = await self.records.find(who.org_id, event.call_id) if idempotency_key else None
            if earlier is None:
                schema = await self._tool_schema(who.org_id, integration_id, tool_name)
                validate_arguments(schema, arguments, tool_name)
                self._check_size(event)
                earlier = await self.records.record(event)
            if earlier is None:
                answer = await self._submit(event, watch, wait, progress)
            else:
                answer = {**await self._asked_again(who, earlier, event, watch, wait, progress), "replayed": True}
        return {**answer, "idempotency_key": idempotency_key} if idempotency_key else answer

    async def _submit(
        self, event: CallRequested, watch: Watch, wait: Wait, progress: Progress | None
    ) -> dict[str, Any]:
        """Publish a recorded call and wait for it; from here on the agent is never told to start over."""
        call_id = event.call_id
        try:
            if not await self._publish(event, wait):
                return self.answers.unconfirmed(call_id, event.spec.idempotency_key)
            await self._tell(progress, wait, f"call {call_id} accepted; waiting for it to run")
            return await self._until_settled(call_id, watch, wait, progress)
        except PayloadTooLarge:
            raise
        except Exception:
            log.exception("call.wait_failed", call_id=call_id)
            return self.answers.interrupted(call_id)

    async def _asked_again(
        self,
        who: Principal,
        earlier: CallRecord,
        event: CallRequested,
        watch: Watch,
        wait: Wait,
        progress: Progress | None,
    ) -> dict[str, Any]:
        """The same idempotency key again: the first call's outcome or state; the call is never run twice."""
        key = event.spec.idempotency_key
        if not earlier.asks_for(event):
            raise Conflict(
                f"idempotency key {key!r} was already used for a different call (another tool or other "
                "arguments); use a new key for a new call, or the same arguments to get the first call's outcome",
                idempotency_key=key,
                call_id=earlier.call_id,
            )
        call_id = earlier.call_id
        try:
            done = await self._known_outcome(who.org_id, call_id)
            if done is not None:
                return self.answers.render(done)
            unpublished = earlier.unpublished()
            if unpublished is not None and not await self._publish(unpublished, wait):
                return self.answers.unconfirmed(call_id, key)
            if earlier.request_id:
                held = await self._still_held(who, call_id, earlier.request_id)
                return held or await self._await_terminal(who, call_id, earlier.request_id, wait, progress)
            await self._tell(progress, wait, f"call {call_id} was accepted before; waiting for it to run")
            return await self._until_settled(call_id, watch, wait, progress)
        except Exception:
            log.exception("call.wait_failed", call_id=call_id)
            return self.answers.interrupted(call_id)

    async def _still_held(self, who: Principal, call_id: str, request_id: str) -> dict[str, Any] | None:
        """`approval_required` again while the call's approval request still awaits a human."""
        request = await self.bus.request("approvals.get", {"org_id": who.org_id, "request_id": request_id})
        if request.get("status") != "pending":
            return None
        return self.answers.approval_required(call_id, request_id, str(request["expires_at"]))

    async def _until_settled(self, call_id: str, watch: Watch, wait: Wait, progress: Progress | None) -> dict[str, Any]:
        """Wait until the call is executed, held for approval or ends; `pending` when the wait runs out."""
        while True:
            event = await self._next(watch, wait, progress, f"call {call_id}: waiting for it to run")
            if event is None:
                return self.answers.pending(call_id, None, "The call is still running")
            if isinstance(event, ApprovalRequested):
                return self.answers.approval_required(event.call_id, event.request_id, event.expires_at)
            if event.type in TERMINAL_TYPES:
                return self.answers.render(event)

    async def _publish(self, event: CallRequested, wait: Wait) -> bool:
        """Hand the recorded call on; False if the bus did not confirm it within the wait (it may still run)."""
        try:
            await self.bus.publish(event, retry_seconds=max(wait.left(), 0.0))
        except PayloadTooLarge:
            await self.records.forget(event)
            raise
        except Exception as exc:
            log.warning("call.publish_unconfirmed", call_id=event.call_id, error=str(exc) or type(exc).__name__)
            return False
        try:
            await self.records.confirm(event)
        except Exception as exc:
            # Harmless: the projection marks the call published when it sees the event; a resend is deduplicated.
            log.warning("call.confirm_failed", call_id=event.call_id, error=str(exc) or type(exc).__name__)
        return True

    def _check_size(self, event: CallRequested) -> None:
        """Refuse a call whose events the bus could not carry, before anything of it is recorded."""
        size = len(encode_event(event))
        limit = self.bus.max_event_bytes() - CARRIED_ALLOWANCE
        if size > limit:
            raise PayloadTooLarge(
                f"this call is too large to run: with its arguments it takes {size} bytes, and AgentPort carries "
                f"calls of at most {limit} bytes. Send less data (for example a link or an id instead of the "
                "content); nothing was recorded or run."
            )

    # --- waiting for a call that already exists -------------------------------------------------

    async def await_any(self, who: Principal, ident: str, budget: float, progress: Progress | None) -> dict[str, Any]:
        """`await_approval`: wait on an approval request, or on a call by its id (allowed calls too)."""
        if await self.records.find(who.org_id, ident) is not None:
            return await self.await_call(who, ident, budget, progress)
        try:
            return await self.await_request(who, ident, budget, progress)
        except NotFound:
            raise NotFound(
                f"no approval request or call {ident!r} in your organization; pass the approval_request_id or the "
                "call_id that agentport__call_tool answered"
            ) from None

    async def await_request(
        self, who: Principal, request_id: str, budget: float, progress: Progress | None = None
    ) -> dict[str, Any]:
        """Wait (up to `budget` seconds) for the outcome of the call behind an approval request."""
        wait = Wait.starting_now(budget)
        request = await self.bus.request("approvals.get", {"org_id": who.org_id, "request_id": request_id})
        return await self._await_terminal(who, str(request["call_id"]), request_id, wait, progress)

    async def await_call(
        self, who: Principal, call_id: str, budget: float, progress: Progress | None
    ) -> dict[str, Any]:
        """Wait for the org's call (allowed or held) until it ends; a call the org never made is a 404."""
        wait = Wait.starting_now(budget)
        record = await self.records.find(who.org_id, call_id)
        if record is None:
            raise NotFound(f"no call {call_id!r} in your organization")
        unpublished = record.unpublished()
        if unpublished is not None and not await self._publish(unpublished, wait):
            return self.answers.unconfirmed(call_id, record.idempotency_key)
        if record.request_id:
            return await self.await_request(who, record.request_id, max(wait.left(), 0.0), progress)
        return await self._await_terminal(who, call_id, None, wait, progress)

    async def _await_terminal(
        self, who: Principal, call_id: str, request_id: str | None, wait: Wait, progress: Progress | None
    ) -> dict[str, Any]:
        """The call's outcome if known, else wait for it; `pending` when the wait runs out."""
        with self.waiters.watch(who.org_id, "call", call_id) as watch:
            done = await self._known_outcome(who.org_id, call_id)
            if done is not None:
                return self.answers.render(done)
            while True:
                waiting = "waiting for a human to decide" if request_id else "waiting for it to finish"
                event = await self._next(watch, wait, progress, f"call {call_id}: {waiting}")
                if event is None:
                    why = "No decision yet" if request_id else "The call is still running"
                    return self.answers.pending(call_id, request_id, why)
                if isinstance(event, ApprovalRequested):
                    request_id = request_id or event.request_id
                elif event.type in TERMINAL_TYPES:
                    return self.answers.render(event)

    async def _next(self, watch: Watch, wait: Wait, progress: Progress | None, message: str) -> AnyEvent | None:
        """The next event, sending a progress tick every keep-alive interval while waiting."""
        while True:
            left = wait.left()
            if left <= 0:
                return None
            event: AnyEvent | None = await watch.next(min(left, self.keepalive))
            if event is not None:
                return event
            await self._tell(progress, wait, message)

    async def _tell(self, progress: Progress | None, wait: Wait, message: str) -> None:
        """One progress notification; a client that cannot take it still gets its answer."""
        left = wait.left()
        if progress is None or left <= 0:
            return
        try:
            await progress(max(wait.seconds - left, 0.0), wait.seconds, message)
        except Exception as exc:
            log.debug("call.progress_failed", error=str(exc) or type(exc).__name__)

    async def _known_outcome(self, org_id: str, call_id: str) -> AnyEvent | None:
        """A terminal event already seen for the org's call, from the recent cache or the read model."""
        for event in reversed(self.waiters.recent(org_id, "call", call_id)):
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


def requested_event(
    who: Principal,
    integration_id: str,
    tool_name: str,
    arguments: dict[str, Any],
    additional_info: str | None,
    channel: Channel,
    idempotency_key: str | None,
) -> CallRequested:
    """The `call.requested` event of a new call. With an idempotency key its call id and event id derive from
    (org, key), so asking again names the same call and a resent event is stored once."""
    call_id = derived_id("call", who.org_id, idempotency_key) if idempotency_key is not None else new_id()
    spec = CallSpec(
        integration_id=integration_id,
        tool_name=tool_name,
        arguments=arguments,
        args_hash=arguments_hash(arguments),
        additional_info=additional_info,
        actor=who.actor,
        client_ip=who.client_ip,
        channel=channel,
        idempotency_key=idempotency_key,
    )
    return CallRequested(event_id=derived_id(call_id, "requested"), org_id=who.org_id, call_id=call_id, spec=spec)


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
