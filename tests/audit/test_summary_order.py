"""A call's audit summary ends in the same state whatever order its events are applied in."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from services.audit.summary import fold
from shared.events import Actor, AnyEvent, CallCompleted, CallRequested, CallRuled, CallSpec, CallStarted

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
SPEC = CallSpec(
    integration_id="up",
    tool_name="echo",
    arguments={"text": "hi"},
    args_hash="h",
    actor=Actor(kind="api_key", id="k", name="agent"),
)


def _story() -> list[AnyEvent]:
    at = [T0 + timedelta(milliseconds=10 * i) for i in range(4)]
    return [
        CallRequested(org_id="o", call_id="c", spec=SPEC, occurred_at=at[0]),
        CallRuled(org_id="o", call_id="c", verdict="allow", rule="tool_mode:allow", spec=SPEC, occurred_at=at[1]),
        CallStarted(org_id="o", call_id="c", executor_id="e", occurred_at=at[2]),
        CallCompleted(org_id="o", call_id="c", result={}, duration_ms=1.0, occurred_at=at[3]),
    ]


def _folded(events: list[AnyEvent]) -> dict[str, object]:
    summary: dict[str, object] = {"call_id": "c", "org_id": "o"}
    for event in events:
        summary = fold(summary, event)
    return summary


def test_an_ended_call_stays_ended_whatever_order_its_events_arrive_in() -> None:
    in_order = _folded(_story())
    assert in_order["status"] == "completed"
    for order in itertools.permutations(_story()):
        summary = _folded(list(order))
        assert summary["status"] == "completed", [e.type for e in order]
        assert summary["total_ms"] == in_order["total_ms"] == 30.0


def test_a_late_event_never_moves_a_running_call_back() -> None:
    requested, ruled, started, _ = _story()
    assert _folded([requested, started, ruled])["status"] == "running"
