"""The hash chain: each entry commits to the one before it, so edits and deletions show."""

from __future__ import annotations

import hashlib
from typing import Any

from shared.events import canonical_json

GENESIS = "0" * 64


def entry_hash(prev_hash: str, org_id: str, org_seq: int, event_id: str, entry: dict[str, Any]) -> str:
    """The hash of one log entry, chained to its predecessor."""
    body = canonical_json({"org_id": org_id, "org_seq": org_seq, "event_id": event_id, "entry": entry})
    return hashlib.sha256(f"{prev_hash}\n{body}".encode()).hexdigest()


def verify_rows(rows: list[dict[str, Any]], head: dict[str, Any] | None) -> list[str]:
    """Problems found in one org's entries (in org_seq order); empty means intact."""
    problems: list[str] = []
    prev = GENESIS
    expected_seq = 1
    for row in rows:
        if row["org_seq"] != expected_seq:
            problems.append(f"entry {expected_seq} is missing (found {row['org_seq']} next)")
        if row["prev_hash"] != prev:
            problems.append(f"entry {row['org_seq']} does not follow its predecessor")
        recomputed = entry_hash(row["prev_hash"], row["org_id"], row["org_seq"], row["event_id"], row["entry"])
        if recomputed != row["hash"]:
            problems.append(f"entry {row['org_seq']} ({row['type']}) was altered")
        prev = row["hash"]
        expected_seq = row["org_seq"] + 1
    if head is not None and (head["org_seq"] != expected_seq - 1 or head["hash"] != prev):
        problems.append(f"the log ends at entry {expected_seq - 1} but the chain head says {head['org_seq']}")
    return problems
