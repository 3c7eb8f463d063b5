"""The hash chain and the call summary, as plain functions."""

from datetime import UTC, datetime, timedelta

from services.audit.chain import GENESIS, entry_hash, verify_rows
from services.audit.summary import fold
from shared.events import (
    Actor,
    ApprovalDecided,
    CallCompleted,
    CallRequested,
    CallRuled,
    CallSpec,
)


def _chain(n: int) -> list[dict]:  # type: ignore[type-arg]
    rows, prev = [], GENESIS
    for i in range(1, n + 1):
        entry = {"n": i}
        digest = entry_hash(prev, "org", i, f"e{i}", entry)
        rows.append(
            {
                "org_id": "org",
                "org_seq": i,
                "event_id": f"e{i}",
                "type": "t",
                "entry": entry,
                "prev_hash": prev,
                "hash": digest,
            }
        )
        prev = digest
    return rows


def test_an_intact_chain_verifies() -> None:
    rows = _chain(5)
    assert verify_rows(rows, {"org_seq": 5, "hash": rows[-1]["hash"]}) == []


def test_an_edited_entry_is_detected() -> None:
    rows = _chain(5)
    rows[2]["entry"] = {"n": 99}
    assert any("entry 3" in p and "altered" in p for p in verify_rows(rows, None))


def test_a_deleted_entry_is_detected() -> None:
    rows = _chain(5)
    del rows[1]
    assert any("missing" in p for p in verify_rows(rows, None))


def test_a_truncated_tail_is_detected_against_the_head() -> None:
    rows = _chain(5)
    head = {"org_seq": 5, "hash": rows[-1]["hash"]}
    assert verify_rows(rows[:4], head)


def test_the_summary_gathers_who_what_verdict_approver_and_outcome() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    actor = Actor(kind="api_key", id="k", name="agent")
    spec = CallSpec(
        integration_id="gh",
        tool_name="delete",
        arguments={"r": 1},
        args_hash="h",
        actor=actor,
        client_ip="10.0.0.1",
        additional_info="why",
    )
    human = Actor(kind="user", id="u", name="ann@example.com")
    events = [
        CallRequested(org_id="o", call_id="c", spec=spec, occurred_at=t0),
        CallRuled(
            org_id="o",
            call_id="c",
            verdict="hold",
            rule="default:require_approval",
            spec=spec,
            occurred_at=t0 + timedelta(milliseconds=5),
        ),
        ApprovalDecided(
            org_id="o",
            call_id="c",
            request_id="r",
            decision="approve_once",
            decided_by=human,
            decided_ip="10.0.0.2",
            integration_id="gh",
            tool_name="delete",
            occurred_at=t0 + timedelta(seconds=3),
        ),
        CallCompleted(
            org_id="o",
            call_id="c",
            result={"content": []},
            duration_ms=12.5,
            occurred_at=t0 + timedelta(seconds=4),
        ),
    ]
    summary: dict = {}  # type: ignore[type-arg]
    for event in events:
        summary = fold(summary, event)
    assert summary["status"] == "completed"
    assert summary["actor"]["name"] == "agent" and summary["client_ip"] == "10.0.0.1"
    assert summary["verdict"] == "hold" and summary["approver"]["name"] == "ann@example.com"
    assert summary["approver_ip"] == "10.0.0.2" and summary["total_ms"] == 4000.0 and summary["upstream_ms"] == 12.5
