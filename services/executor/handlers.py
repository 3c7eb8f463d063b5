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
from shared.bus import Bus, RetryLater
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
    parse_event,
    without_nul,
)
from shared.netguard import UpstreamRefused
from shared.sealing import SealError

HEARTBEAT_SECONDS = 2.0
LIVENESS_SECONDS = 3 * HEARTBEAT_SECONDS


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
    ) -> None:
        self.bus = bus
        self.pool = pool
        self.integrations = integrations
        self.tool_lists = tool_lists
        self.executor_id = executor_id
        self.log = log
        self.oauth_tokens = oauth_tokens
        self._running: set[str] = set()

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
        # Marked before the claim, so a redelivery racing this one in this process is simply dropped.
        self._running.add(call_id)
        try:
            if arguments_hash(spec.arguments) != spec.args_hash or (
                isinstance(event, CallReleased) and event.approved_args_hash != spec.args_hash
            ):
                mismatch = _failed(call_id, org_id, "binding_mismatch", "the arguments do not match what was approved")
                await self._finish(call_id, mismatch)
                return
            existing = await claims.claim(self.pool, call_id, org_id, self.executor_id)
            if existing is not None:
                await self._settle_existing(existing)
                return
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
        recorded = parse_event(_json(await claims.record_outcome(self.pool, call_id, outcome.model_dump(mode="json"))))
        if started is not None:
            try:
                await started
            except Exception:
                self.log.warning("call.started_not_published", call_id=call_id)
        await self.bus.publish(recorded)
        self.log.info("call.finished", call_id=call_id, outcome=recorded.type)

    async def _settle_existing(self, row: asyncpg.Record) -> None:
        """A call seen again: republish its outcome, wait for a live claimant, or end it as lost."""
        if row["outcome"] is not None:
            await self.bus.publish(parse_event(_json(row["outcome"])))
            return
        claimant = row["claimed_by"]
        if claimant != self.executor_id and await claims.is_alive(self.pool, claimant, LIVENESS_SECONDS):
            raise RetryLater(f"call {row['call_id']} is still running on executor {claimant}")
        failed = _failed(
            row["call_id"],
            row["org_id"],
            "outcome_unknown",
            "outcome unknown: the executor stopped while this call was running; it was not retried",
        )
        await self._finish(row["call_id"], failed)


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
