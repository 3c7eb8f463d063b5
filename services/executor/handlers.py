"""Which events the executor consumes: installed integrations and calls cleared to run."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncpg
from mcp.shared.exceptions import MCPError

from services.executor import claims, installed
from services.executor.http_api import DocumentUnavailable
from services.executor.integrations import Integrations, NotConfigured
from services.executor.limits import LimitExceeded
from services.executor.openapi import OpenApiError
from services.executor.token_refresh import UpstreamTokens
from services.executor.tool_lists import ToolLists
from shared.bus import Bus
from shared.consumers import RetryLater, is_transient
from shared.events import (
    AnyEvent,
    CallCompleted,
    CallFailed,
    CallReleased,
    CallRuled,
    CallStarted,
    Event,
    IntegrationInstalled,
    IntegrationRemoved,
    arguments_hash,
    derived_id,
    encode_event,
    parse_event,
    without_nul,
)
from shared.netguard import UpstreamRefused
from shared.sealing import SealError

HEARTBEAT_SECONDS = 2.0
LIVENESS_SECONDS = 3 * HEARTBEAT_SECONDS
# How long an outcome is kept trying to be recorded while PostgreSQL is unreachable, before the message is
# handed back (this process still holds the outcome in memory for the redelivery).
RECORD_PATIENCE_SECONDS = 120.0


class ExecutorHandlers:
    def __init__(
        self,
        bus: Bus,
        pool: asyncpg.Pool,
        integrations: Integrations,
        tool_lists: ToolLists,
        executor_id: str,
        log: Any,
        oauth_tokens: UpstreamTokens | None = None,
        max_calls_per_org: int = 8,
    ) -> None:
        self.bus = bus
        self.pool = pool
        self.integrations = integrations
        self.tool_lists = tool_lists
        self.executor_id = executor_id
        self.log = log
        self.oauth_tokens = oauth_tokens
        self.max_calls_per_org = max_calls_per_org
        self._running: set[str] = set()
        self._per_org: dict[str, int] = {}
        # Outcomes this process knows but has not recorded yet (PostgreSQL unreachable): never lost, never guessed.
        self._held: dict[str, Event] = {}
        # Calls this process has sent (or is sending) upstream and not yet recorded an outcome for.
        self._dispatched: set[str] = set()
        # Since when this executor's heartbeats have been getting through: others are judged dead only once
        # PostgreSQL has been reachable long enough for them to have said they are alive.
        self.beating_since: float | None = None

    async def on_config(self, event: AnyEvent) -> None:
        if isinstance(event, IntegrationInstalled):
            if event.auth_method != "oauth" and self.oauth_tokens is not None:
                await self.oauth_tokens.forget((event.org_id, event.integration_id), event.occurred_at)
            await installed.store(self.pool, event)
            await self.tool_lists.on_install(event.org_id, event.integration_id, event.event_id)
        elif isinstance(event, IntegrationRemoved):
            await installed.remove(self.pool, event)
            if self.oauth_tokens is not None:
                await self.oauth_tokens.forget((event.org_id, event.integration_id), event.occurred_at)
            await self.integrations.mcp.drop((event.org_id, event.integration_id))

    async def on_call(self, event: AnyEvent) -> None:
        if (isinstance(event, CallRuled) and event.verdict == "allow") or isinstance(event, CallReleased):
            await self.execute(event)

    async def execute(self, event: CallRuled | CallReleased) -> None:
        """Claim the call, run it upstream once, and publish its outcome."""
        call_id, org_id, spec = event.call_id, event.org_id, event.spec
        if call_id in self._running:
            return
        held = self._held.get(call_id)
        if held is not None:
            await self._finish(call_id, held)
            return
        running_for_org = self._per_org.get(org_id, 0)
        if running_for_org >= self.max_calls_per_org:
            # One org's slow calls must not take every slot: its next call waits its turn off the window.
            raise RetryLater(f"org {org_id} already has {running_for_org} calls running on this executor")
        # Marked before the claim, so a redelivery racing this one in this process is simply dropped.
        self._running.add(call_id)
        self._per_org[org_id] = running_for_org + 1
        try:
            if arguments_hash(spec.arguments) != spec.args_hash or (
                isinstance(event, CallReleased) and event.approved_args_hash != spec.args_hash
            ):
                mismatch = _failed(call_id, org_id, "binding_mismatch", "the arguments do not match what was approved")
                await self._finish(call_id, mismatch)
                return
            existing = await claims.claim(self.pool, call_id, org_id, self.executor_id)
            if existing is not None and not self._never_sent(existing):
                await self._settle_existing(existing)
                return
            self._dispatched.add(call_id)
            # The claim row is the durable at-most-once marker; `call.started` only informs, so it need not
            # delay the upstream call (it is published before the outcome all the same).
            started = asyncio.create_task(
                self.bus.publish(
                    CallStarted(
                        event_id=derived_id(call_id, "started"),
                        org_id=org_id,
                        call_id=call_id,
                        executor_id=self.executor_id,
                    )
                )
            )
            try:
                await self._finish(call_id, await self._run_upstream(event), started)
            finally:
                if not started.done():
                    started.cancel()
        finally:
            self._running.discard(call_id)
            left = self._per_org.get(org_id, 1) - 1
            if left > 0:
                self._per_org[org_id] = left
            else:
                self._per_org.pop(org_id, None)

    async def _run_upstream(self, event: CallRuled | CallReleased) -> Event:
        call_id, org_id, spec = event.call_id, event.org_id, event.spec
        started = time.perf_counter()
        try:
            integration = await installed.load(self.pool, self.tool_lists.key, org_id, spec.integration_id)
            if integration is None:
                return _failed(call_id, org_id, "not_installed", f"integration {spec.integration_id} is not installed")
            result = await self.integrations.call(integration, spec.tool_name, spec.arguments, call_id)
        except Exception as exc:
            elapsed = (time.perf_counter() - started) * 1000
            self.log.warning("call.upstream_failed", call_id=call_id, error=type(exc).__name__)
            problem = await self._sign_in_problem(org_id, spec.integration_id)
            if problem is not None:
                return _failed(call_id, org_id, "needs_reauth", problem, elapsed)
            code = exc.code if isinstance(exc, LimitExceeded) else "upstream_error"
            return _failed(call_id, org_id, code, describe_failure(exc), elapsed)
        elapsed = (time.perf_counter() - started) * 1000
        return CallCompleted(
            event_id=derived_id(call_id, "outcome"),
            org_id=org_id,
            call_id=call_id,
            # PostgreSQL stores no U+0000, so an upstream's NUL would make the outcome unrecordable.
            result=without_nul(result.model_dump(mode="json", by_alias=True, exclude_none=True)),
            is_error=bool(result.is_error),
            duration_ms=round(elapsed, 3),
        )

    async def _sign_in_problem(self, org_id: str, integration_id: str) -> str | None:
        """Why a failed call's upstream needs a human to sign in again (OAuth renewal refused), if it does."""
        if self.oauth_tokens is None:
            return None
        try:
            return await self.oauth_tokens.problem((org_id, integration_id))
        except Exception:
            return None

    async def _finish(self, call_id: str, outcome: Event, started: asyncio.Task[int] | None = None) -> None:
        """Record the outcome (the first one recorded wins), then publish the recorded one."""
        outcome = self._fit(outcome)
        self._held[call_id] = outcome
        recorded = parse_event(_json(await self._record(call_id, outcome)))
        self._held.pop(call_id, None)
        self._dispatched.discard(call_id)
        if started is not None:
            try:
                await started
            except Exception:
                self.log.warning("call.started_not_published", call_id=call_id)
        await self.bus.publish(recorded)
        self.log.info("call.finished", call_id=call_id, outcome=recorded.type)

    async def _republish(self, recorded: dict[str, Any]) -> None:
        """Publish again an outcome a claim holds (same event id, so stored once within the duplicate window)."""
        await self.bus.publish(parse_event(_json(recorded)))

    def _never_sent(self, claim: asyncpg.Record) -> bool:
        """A claim of this process's with no outcome, for a call it never sent upstream: a claim whose answer
        PostgreSQL lost (the insert committed, the reply did not arrive). The call may still run, once."""
        return (
            claim["claimed_by"] == self.executor_id
            and claim["outcome"] is None
            and claim["call_id"] not in self._dispatched
        )

    def _fit(self, outcome: Event) -> Event:
        """An outcome the bus can carry: one too large to publish becomes a clear `response_too_large` failure."""
        size = len(encode_event(outcome))
        if size <= self.bus.max_event_bytes():
            return outcome
        self.log.warning("call.outcome_too_large", call_id=outcome.call_id, bytes=size)
        return _failed(
            str(outcome.call_id),
            outcome.org_id,
            "response_too_large",
            f"the upstream's response is {size} bytes once encoded, more than the {self.bus.max_event_bytes()} "
            "bytes AgentPort can carry; ask it for less data",
        )

    async def _record(self, call_id: str, outcome: Event) -> dict[str, Any]:
        """Record the outcome, waiting out a PostgreSQL outage (with backoff) rather than losing it."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + RECORD_PATIENCE_SECONDS
        attempt = 0
        while True:
            attempt += 1
            try:
                return await claims.record_outcome(self.pool, call_id, outcome.model_dump(mode="json"))
            except Exception as exc:
                if not is_transient(exc) or loop.time() >= deadline:
                    raise
                if attempt == 1:
                    self.log.warning("call.outcome_waiting_for_database", call_id=call_id, error=type(exc).__name__)
                await asyncio.sleep(min(0.2 * attempt, 2.0))

    async def _settle_existing(self, row: asyncpg.Record) -> None:
        """A call seen again: republish its outcome, wait for a live claimant, or end it as lost."""
        if row["outcome"] is not None:
            await self._republish(row["outcome"])
            return
        claimant = row["claimed_by"]
        if claimant != self.executor_id and not await self._is_dead(claimant):
            raise RetryLater(f"call {row['call_id']} is still running on executor {claimant}")
        await self._finish(row["call_id"], _unknown(row["call_id"], row["org_id"]))

    async def _is_dead(self, executor_id: str) -> bool:
        """Whether an executor stopped beating, judged only once this one's heartbeats get through."""
        if not self.heartbeat_trusted():
            return False
        return not await claims.is_alive(self.pool, executor_id, LIVENESS_SECONDS)

    def heartbeat_trusted(self) -> bool:
        """PostgreSQL has taken this executor's heartbeats for long enough that a silent peer really is gone."""
        return self.beating_since is not None and time.monotonic() - self.beating_since > LIVENESS_SECONDS

    async def sweep_orphans(self) -> int:
        """End the calls claimed by executors that died mid-call (seconds after, not at the next redelivery)."""
        if not self.heartbeat_trusted():
            return 0
        ended = 0
        for row in await claims.orphaned(self.pool, self.executor_id, LIVENESS_SECONDS):
            self.log.warning("call.claimant_died", call_id=row["call_id"], executor_id=row["claimed_by"])
            await self._finish(row["call_id"], _unknown(row["call_id"], row["org_id"]))
            ended += 1
        return ended

    async def republish_outcomes(self, within_seconds: float) -> int:
        """Publish again every outcome recorded within the window: after a lost NATS store, no call stays open."""
        after, count = "", 0
        while True:
            rows = await claims.recent_outcomes(self.pool, within_seconds, after)
            if not rows:
                break
            for row in rows:
                await self._republish(row["outcome"])
            after, count = rows[-1]["call_id"], count + len(rows)
        self.log.warning("executor.outcomes_republished", count=count)
        return count

    async def on_poison(self, event: AnyEvent, exc: BaseException) -> None:
        """A call whose handling failed again and again ends visibly, never silently and never twice."""
        if not isinstance(event, CallRuled | CallReleased):
            return
        call_id, org_id = event.call_id, event.org_id
        held = self._held.get(call_id)
        if held is not None:
            await self._finish(call_id, held)
            return
        existing = await claims.claim(self.pool, call_id, org_id, self.executor_id)
        if existing is not None and existing["outcome"] is not None:
            await self._republish(existing["outcome"])
            return
        if existing is not None and not self._never_sent(existing):
            await self._finish(call_id, _unknown(call_id, org_id))
            return
        # The claim is ours and nothing reached upstream.
        failed = _failed(
            call_id,
            org_id,
            "internal",
            f"AgentPort could not run this call ({type(exc).__name__}); it did not reach the upstream. "
            "An operator can find the cause in the executor's log.",
        )
        await self._finish(call_id, failed)

    async def settle(self, payload: dict[str, Any]) -> dict[str, str]:
        """The `executor.settle` command (admin reconcile): end open calls from what the claims know.

        A call with a recorded outcome has it published again; one claimed by a dead executor ends
        `outcome_unknown`; one nobody claimed is claimed now and ends `lost` (it can no longer run)."""
        calls = [(str(c["call_id"]), str(c["org_id"])) for c in payload.get("calls", [])]
        state = await claims.settle_state(self.pool, [call_id for call_id, _ in calls])
        done: dict[str, str] = {}
        for call_id, org_id in calls:
            row = state.get(call_id)
            if row is not None and row["org_id"] != org_id:
                done[call_id] = "not_found"
            elif row is not None and row["outcome"] is not None:
                await self._republish(row["outcome"])
                done[call_id] = "republished"
            elif row is not None and (
                row["claimed_by"] == self.executor_id or not await self._is_dead(row["claimed_by"])
            ):
                done[call_id] = "running"
            elif row is not None:
                await self._finish(call_id, _unknown(call_id, org_id))
                done[call_id] = "outcome_unknown"
            elif await claims.claim(self.pool, call_id, org_id, self.executor_id) is None:
                lost = _failed(
                    call_id,
                    org_id,
                    "lost",
                    "the event bus lost this call before it ran (an operator reconciled it); it never reached "
                    "the upstream: ask again if it is still wanted",
                )
                await self._finish(call_id, lost)
                done[call_id] = "lost"
            else:
                done[call_id] = "running"  # claimed in the meantime
        return done


def _unknown(call_id: str, org_id: str) -> CallFailed:
    return _failed(
        call_id,
        org_id,
        "outcome_unknown",
        "outcome unknown: the executor stopped while this call was running; it was not retried",
    )


def _failed(call_id: str, org_id: str, code: str, message: str, elapsed: float | None = None) -> CallFailed:
    return CallFailed(
        event_id=derived_id(call_id, "outcome"),
        org_id=org_id,
        call_id=call_id,
        error_code=code,
        message=message,
        duration_ms=round(elapsed, 3) if elapsed is not None else None,
    )


def _json(value: dict[str, Any]) -> str:
    import json

    return json.dumps(value)


def describe_failure(exc: BaseException) -> str:
    """A message safe to show an agent: what failed, never a credential or a stack trace."""
    if isinstance(exc, LimitExceeded):
        return exc.message
    if isinstance(exc, UpstreamRefused | OpenApiError | NotConfigured | DocumentUnavailable):
        return str(exc)
    if isinstance(exc, SealError):
        return "the stored credential cannot be opened by this executor; reinstall the integration"
    if isinstance(exc, TimeoutError):
        return "the upstream did not answer in time"
    if isinstance(exc, ExceptionGroup):
        return describe_failure(exc.exceptions[0])
    text = str(exc) or type(exc).__name__
    if isinstance(exc, MCPError):
        return f"upstream error: {text[:300]}"
    if isinstance(exc, OSError):
        return f"the local server could not be started or reached: {text[:300]}"
    return f"upstream unreachable or failed: {text[:300]}"
