"""`make chaos`: fault rounds under load against every service as its own process, on a nats-server and a
PostgreSQL of its own; one row per round; exit 1 if a call was doubled, lost or left stuck.

    .venv/bin/python -m bench.chaos [ROUND ...] [--agents N] [--keep]

Rounds: kill -9 of each service (restarted 2 s later), a 15 s NATS outage, a 10 s PostgreSQL outage, NATS
store loss (the store directory deleted while nats-server is stopped). The agents, the servers and the tally
live in tests/support/faults/, shared with tests/faults/. docs/DEVELOPING.md explains the columns.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import shutil
import sys
import tempfile
import time
from pathlib import Path

from tests.support.faults import Fault, Rig, RoundResult, Row, fault_rig, kill_and_restart, outage, recheck, under_load
from tests.support.stack import SERVICES

NATS_OUTAGE_S = 15.0
POSTGRES_OUTAGE_S = 10.0
STORE_LOSS_DOWN_S = 1.0
ROUNDS = (*(f"kill-{s}" for s in SERVICES), "nats-outage", "postgres-outage", "nats-store-loss")
COLUMNS = (("sent", 6), ("executed", 9), ("doubled", 8), ("lost", 5), ("stuck", 6), ("outcome_unknown", 16))


def fault(rig: Rig, name: str) -> Fault:
    """What the round called `name` does to the stack."""
    if name.startswith("kill-"):
        return lambda: kill_and_restart(rig.stack, name.removeprefix("kill-"))
    postgres = rig.postgres
    assert postgres is not None, "the PostgreSQL rounds need a PostgreSQL of their own"
    return {
        "nats-outage": lambda: outage(rig.nats, NATS_OUTAGE_S),
        "postgres-outage": lambda: outage(postgres, POSTGRES_OUTAGE_S),
        "nats-store-loss": lambda: outage(rig.nats, STORE_LOSS_DOWN_S, lose_store=True),
    }[name]


def header() -> str:
    cells = "".join(f"{title:>{width}}" for title, width in COLUMNS)
    return f"{'round':18}{cells}{'recover_s':>11}{'round_s':>9}"


def line(row: Row, took: float) -> str:
    recover = "never" if row.recover_s is None else f"{row.recover_s:.1f}"
    cells = "".join(f"{getattr(row, title):>{width}}" for title, width in COLUMNS)
    return f"{row.name:18}{cells}{recover:>11}{took:>9.0f}" + ("" if row.ok else "   <- FAIL")


async def chaos(names: list[str], agents: int, keep: bool) -> bool:
    workdir = Path(tempfile.mkdtemp(prefix="agentport-chaos-"))
    started = time.monotonic()
    print(f"{agents} agents (REST and MCP, retrying with their idempotency keys); work dir {workdir}", flush=True)
    results: list[RoundResult] = []
    took: list[float] = []
    async with fault_rig(workdir) as rig:
        print(f"stack ready in {time.monotonic() - started:.0f} s\n{header()}", flush=True)
        for name in names:
            began = time.monotonic()
            try:
                results.append(await under_load(rig, name, fault(rig, name), agents=agents))
            except Exception as exc:  # the stack did not come back: later rounds would say nothing
                print(f"{name}: the round could not run to its end, stopping here: {exc!r}"[:2000], flush=True)
                break
            took.append(time.monotonic() - began)
            row = results[-1].row
            print("\n".join([line(row, took[-1]), *(f"    {note}" for note in row.notes)]), flush=True)
        await late_changes(rig, results)
    rows = [result.row for result in results]
    ok = len(rows) == len(names) and all(row.ok for row in rows)
    print("\n".join(["", header(), *(line(row, t) for row, t in zip(rows, took, strict=True))]))
    print(f"{len(rows)} rounds in {time.monotonic() - started:.0f} s: " + ("all clean" if ok else "FAILED"))
    if ok and not keep:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        print(f"service logs: {workdir}/stack/*.log, nats-server: {workdir}/nats-server/nats.log")
    return ok


async def late_changes(rig: Rig, results: list[RoundResult]) -> None:
    """Re-read every round's calls in the audit log once all rounds are over: a call a late (redelivered) event
    moved back from its ending counts as stuck in its round."""
    for result in results:
        check = await recheck(rig, result)
        if check is not None:
            result.row.stuck = check.stuck
            print(f"late: {result.row.name} has {check.stuck} stuck calls now, e.g. {'; '.join(check.examples)}")


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__.splitlines()[0])
    parser.add_argument("rounds", nargs="*", metavar="ROUND", help="any of " + ", ".join(ROUNDS) + " (default: all)")
    parser.add_argument("--agents", type=int, default=8, help="concurrent agents (default 8)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs) after a clean run too")
    args = parser.parse_args()
    if unknown := set(args.rounds) - set(ROUNDS):
        parser.error(f"unknown round(s) {', '.join(sorted(unknown))}; choose from {', '.join(ROUNDS)}")
    for noisy in ("httpx", "httpx2", "mcp", "uvicorn", "uvicorn.access", "uvicorn.error"):
        logging.getLogger(noisy).setLevel(logging.CRITICAL)
    return 0 if asyncio.run(chaos(args.rounds or list(ROUNDS), args.agents, args.keep)) else 1


if __name__ == "__main__":
    sys.exit(main())
