"""What a round did: the upstream's own record of call ids against what the agents were told, and the audit log
as a human reads it."""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx

from tests.support.faults.agents import TOOL, Call
from tests.support.faults.rig import Rig
from tests.support.upstream import Upstream

AUDIT_TERMINAL = frozenset({"completed", "failed", "denied", "expired", "coalesced"})
EXAMPLES = 3
MAX_STORIES = 100  # unlisted calls whose own story is read on each pass
# How long the log must stay settled before a round's tally trusts it (a late event may still move a call).
STABLE_SECONDS = 4.0


@dataclass
class Row:
    """One round: what the agents sent, what the upstream ran, and what went wrong."""

    name: str
    sent: int  # calls (idempotency keys) the agents made
    executed: int  # distinct call ids the upstream ran
    doubled: int  # keys the upstream ran more than once (one call id twice, or several call ids)
    lost: int  # calls the agent never got a terminal outcome for
    stuck: int  # calls not terminal in the audit log once the round settled
    outcome_unknown: int
    recover_s: float | None  # fault end to the first `executed` answer to an attempt sent after it
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.doubled == self.lost == self.stuck == 0

    def describe(self) -> str:
        recover = "never" if self.recover_s is None else f"{self.recover_s:.1f}s"
        head = (
            f"{self.name}: sent {self.sent}, executed {self.executed}, doubled {self.doubled}, lost {self.lost}, "
            f"stuck {self.stuck}, outcome_unknown {self.outcome_unknown}, recovered in {recover}"
        )
        return "\n".join([head, *(f"  {note}" for note in self.notes)])


@dataclass
class RoundResult:
    row: Row
    calls: list[Call]
    ran: dict[str, list[str | None]]  # key -> the call ids the upstream ran it under, in order
    prefix: str  # of the round's keys
    since: datetime  # when the round began
    known: set[str]  # call ids the agents were told or the upstream ran
    fault: tuple[float, float] = (0.0, 0.0)  # when the fault began and ended (monotonic)

    def caught(self) -> list[Call]:
        """The calls the fault held up: asked before it ended, answered after."""
        ended = self.fault[1]
        return [c for c in self.calls if c.first_sent and c.first_sent < ended and c.ended and c.ended > ended]


def upstream_record(upstream: Upstream, prefix: str) -> dict[str, list[str | None]]:
    """Every key of this round the upstream ran, with the call id (`_meta["io.agentport/call_id"]`) of each run."""
    ran: dict[str, list[str | None]] = defaultdict(list)
    for invocation in list(upstream.invocations):
        text = invocation.arguments.get("text")
        if invocation.tool == TOOL and isinstance(text, str) and text.startswith(prefix + "/"):
            ran[text].append(invocation.call_id)
    return dict(ran)


async def audit_rows(rig: Rig, since: datetime) -> list[dict[str, Any]]:
    """The call summaries of `/api/logs` since a moment, read as a human, every page."""
    rows: list[dict[str, Any]] = []
    while True:
        r = await rig.http.get(
            "/api/logs",
            params={"tool_name": TOOL, "since": since.isoformat(), "limit": 500, "offset": len(rows)},
            headers=rig.tenant.human,
        )
        r.raise_for_status()
        page = r.json()
        rows += page
        if len(page) < 500:
            return rows


@dataclass
class AuditCheck:
    """This round's calls as the audit log tells them."""

    open: dict[str, str] = field(default_factory=dict)  # listed but not terminal: call id -> status
    missing: set[str] = field(default_factory=set)  # known call ids not listed, and not ended in their own story
    unlisted_but_ended: int = 0  # not listed (no `call.requested` logged?) yet ended in their own story
    examples: list[str] = field(default_factory=list)

    @property
    def stuck(self) -> int:
        return len(self.open) + len(self.missing)


async def check_audit(rig: Rig, since: datetime, prefix: str, known: set[str], settle: float) -> AuditCheck:
    """Waits up to `settle` seconds for every call of the round to be terminal in the audit log (and to stay so
    for STABLE_SECONDS): listed in `/api/logs`, or else ended in its own story (`/api/logs/{call_id}`)."""
    deadline = time.monotonic() + settle
    settled_at: float | None = None
    while True:
        check, stories = await _read_audit(rig, since, prefix, known)
        now = time.monotonic()
        settled_at = (settled_at or now) if not check.stuck else None
        if (settled_at is not None and now - settled_at >= STABLE_SECONDS) or now > deadline:
            break
        await asyncio.sleep(0.5)
    for call_id in sorted(check.missing)[:EXAMPLES]:
        status, events = stories.get(call_id, ("not read", []))
        check.examples.append(f"{call_id} not listed, its story: {status} {events}")
    for call_id in sorted(check.open)[: max(0, EXAMPLES - len(check.examples))]:
        status, events = await _story(rig, call_id)
        check.examples.append(f"{call_id} {status}: {events}")
    return check


async def _read_audit(
    rig: Rig, since: datetime, prefix: str, known: set[str]
) -> tuple[AuditCheck, dict[str, tuple[str, list[str]]]]:
    check = AuditCheck()
    try:
        rows = await audit_rows(rig, since)
    except httpx.HTTPError as exc:
        rows = []
        check.examples.append(f"/api/logs unreadable: {exc!r}"[:120])
    listed = {
        str(r.get("call_id")): str(r.get("status"))
        for r in rows
        if str((r.get("arguments") or {}).get("text", "")).startswith(prefix + "/")
    }
    check.open = {call_id: status for call_id, status in listed.items() if status not in AUDIT_TERMINAL}
    unlisted = sorted(known - listed.keys())
    stories = {call_id: await _story(rig, call_id) for call_id in unlisted[:MAX_STORIES]}
    check.missing = {call_id for call_id in unlisted if stories.get(call_id, ("",))[0] not in AUDIT_TERMINAL}
    check.unlisted_but_ended = len(unlisted) - len(check.missing)
    return check, stories


async def _story(rig: Rig, call_id: str) -> tuple[str, list[str]]:
    """A call's status and event types in the audit log (`GET /api/logs/{call_id}`)."""
    try:
        r = await rig.http.get(f"/api/logs/{call_id}", headers=rig.tenant.human)
    except httpx.HTTPError as exc:
        return f"unreadable ({type(exc).__name__})", []
    if r.status_code != 200:
        return f"not in the log ({r.status_code})", []
    story = r.json()
    return str(story.get("summary", {}).get("status")), [str(e.get("type")) for e in story.get("events", [])]


async def tally(
    rig: Rig, name: str, prefix: str, calls: list[Call], since: datetime, recover_s: float | None, settle: float
) -> RoundResult:
    """The round's row, from the upstream's record, the agents' answers and the audit log (keys under `prefix`)."""
    told = {call_id for call in calls for call_id in call.call_ids}
    ran_ids = {call_id for ids in upstream_record(rig.upstream, prefix).values() for call_id in ids if call_id}
    audit = await check_audit(rig, since, prefix, told | ran_ids, settle)
    ran = upstream_record(rig.upstream, prefix)  # read again: a late run while the log settled counts too
    runs = [call_id for ids in ran.values() for call_id in ids]
    known = told | {call_id for call_id in runs if call_id}
    lost = [call for call in calls if call.answer is None]
    row = Row(
        name=name,
        sent=len(calls),
        executed=len({c for c in runs if c}) + sum(1 for c in runs if not c),
        doubled=sum(1 for ids in ran.values() if len(ids) > 1),
        lost=len(lost),
        stuck=audit.stuck,
        outcome_unknown=sum(1 for c in calls if c.answer and _code(c.answer) == "outcome_unknown"),
        recover_s=recover_s,
    )
    row.notes += _notes(row, calls, ran, lost, audit)
    return RoundResult(row, calls, ran, prefix, since, known)


async def recheck(rig: Rig, result: RoundResult) -> AuditCheck | None:
    """Read a finished round's calls in the audit log again, long after its redelivery windows have passed; the
    check if more of them are now stuck than when the round ended (a late event moved a call back), else None."""
    check = await check_audit(rig, result.since, result.prefix, result.known, settle=0.0)
    return check if check.stuck > result.row.stuck else None


def _notes(
    row: Row, calls: list[Call], ran: dict[str, list[str | None]], lost: list[Call], audit: AuditCheck
) -> list[str]:
    notes = []
    if row.doubled:
        runs = [call_id for ids in ran.values() for call_id in ids if call_id]
        same_id = sum(n - 1 for n in Counter(runs).values() if n > 1)
        several = [key for key, ids in ran.items() if len(set(ids)) > 1]
        notes.append(f"doubled: {same_id} extra runs of one call id; {len(several)} keys run as several calls")
    if lost:
        ran_anyway = sum(1 for call in lost if call.key in ran)
        why = Counter(call.refused or _gave_up(call) for call in lost)
        notes.append(f"lost: {ran_anyway} of {len(lost)} ran upstream anyway; {_top(why)}")
        notes += [f"  e.g. {call.key}, call ids {sorted(call.call_ids) or '-'}" for call in lost[:EXAMPLES]]
    if audit.open:
        notes.append(f"stuck, listed in /api/logs as: {_top(Counter(audit.open.values()))}")
    if audit.missing:
        notes.append(f"stuck: {len(audit.missing)} known call ids not listed in /api/logs (nor ended)")
    if audit.unlisted_but_ended:
        notes.append(f"{audit.unlisted_but_ended} ended calls not listed in /api/logs (call.requested not logged?)")
    notes += [f"  e.g. {example}" for example in audit.examples]
    ended_otherwise = [c for c in calls if c.answer and c.answer.get("status") != "executed"]
    if ended_otherwise:
        kinds = Counter(f"{c.answer['status']} {_code(c.answer)}".strip() for c in ended_otherwise if c.answer)
        ran_anyway = sum(1 for call in ended_otherwise if call.key in ran)
        example = next(c for c in ended_otherwise if c.answer)
        notes.append(
            f"other outcomes: {_top(kinds)} ({ran_anyway} of them ran upstream), e.g. {example.key}: "
            f"{str(example.answer.get('message') if example.answer else '')[:160]}"
        )
    problems = sum((call.problems for call in calls), Counter[str]())
    if problems:
        notes.append(f"retries: {_top(problems)}")
    return notes


def _code(answer: dict[str, Any]) -> str:
    error = answer.get("error")
    return str(error.get("code", "")) if isinstance(error, dict) else ""


def _gave_up(call: Call) -> str:
    step = "awaiting its call id" if call.call_id else "asking with its key"
    return f"gave up {step}" + (f" (last: {call.last_problem})" if call.last_problem else "")


def _top(counts: Counter[str], n: int = 5) -> str:
    return ", ".join(f"{what} x{k}" for what, k in counts.most_common(n)) or "-"
