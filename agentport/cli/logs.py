"""`agentport logs`: the audit log's call summaries (humans), one call's story, or a live tail."""

from __future__ import annotations

import argparse
import time
from datetime import datetime
from typing import Any
from urllib.parse import quote

from agentport.cli import output
from agentport.cli.context import Context, Subcommands, leaf
from agentport.cli.exits import OK, UsageError

FOLLOW_BATCH = 100
FOLLOW_SECONDS = 1.0
HEADERS = ("TIME", "CALL", "TOOL", "STATUS", "ACTOR", "CHANNEL")
FOLLOW_WIDTHS = (19, 32, 28, 16, 24, 8)


def register(sub: Subcommands) -> None:
    logs = leaf(sub, "logs", show_logs, "the audit log: who called what, the verdict and the outcome (humans)")
    logs.add_argument("call_id", nargs="?", help="show one call's whole story instead")
    logs.add_argument("--integration")
    logs.add_argument("--tool")
    logs.add_argument("--status", help="e.g. completed, failed, denied, expired, pending_approval")
    logs.add_argument("--actor", metavar="ACTOR_ID", help="an API key's or user's id")
    logs.add_argument("--since", metavar="ISO_TIME")
    logs.add_argument("--until", metavar="ISO_TIME")
    logs.add_argument("--limit", type=int, default=20)
    logs.add_argument("--follow", "-f", action="store_true", help="keep printing calls as they happen (Ctrl-C stops)")


def show_logs(args: argparse.Namespace, ctx: Context) -> int:
    if not 1 <= args.limit <= 500:
        raise UsageError("--limit must be from 1 to 500")
    for flag, value in (("--since", args.since), ("--until", args.until)):
        if value is not None:
            _check_time(flag, value)
    if args.call_id:
        return _story(args.call_id, ctx)
    filters = {
        "integration_id": args.integration,
        "tool_name": args.tool,
        "status": args.status,
        "actor_id": args.actor,
        "since": args.since,
        "until": args.until,
    }
    if args.follow:
        return _follow(ctx, filters, args.limit)
    page = ctx.gateway().get("/api/logs", **filters, limit=args.limit)
    if ctx.json:
        output.emit_json(page)
        return OK
    output.table([_row(s) for s in reversed(page)], HEADERS, "No calls logged yet.")
    return OK


def _check_time(flag: str, value: str) -> None:
    try:
        datetime.fromisoformat(value)
    except ValueError as exc:
        raise UsageError(f"{flag} takes an ISO time like 2026-05-01 or 2026-05-01T09:30:00+00:00") from exc


def _row(summary: dict[str, Any]) -> tuple[Any, ...]:
    actor = summary.get("actor") or {}
    tool = f"{summary.get('integration_id')}/{summary.get('tool_name')}"
    return (
        output.when(summary.get("requested_at")),
        summary.get("call_id"),
        tool,
        summary.get("status"),
        actor.get("name"),
        summary.get("channel"),
    )


def _story(call_id: str, ctx: Context) -> int:
    story = ctx.gateway().get(f"/api/logs/{quote(call_id, safe='')}")
    if ctx.json:
        output.emit_json(story)
        return OK
    s = story["summary"]
    output.fields(
        (
            ("call", s.get("call_id")),
            ("tool", f"{s.get('integration_id')} / {s.get('tool_name')}"),
            ("status", s.get("status")),
            ("actor", (s.get("actor") or {}).get("name")),
            ("channel", s.get("channel")),
            ("from", s.get("client_ip")),
            ("additional info", s.get("additional_info")),
            ("arguments", s.get("arguments")),
            ("verdict", s.get("verdict")),
            ("decision", s.get("decision")),
            ("approver", (s.get("approver") or {}).get("name")),
            ("outcome", s.get("outcome")),
        )
    )
    print()
    rows = [(e["seq"], output.when(e["occurred_at"]), e["type"]) for e in story["events"]]
    output.table(rows, ("SEQ", "TIME", "EVENT"), "No events.")
    return OK


def _follow(ctx: Context, filters: dict[str, Any], last: int) -> int:
    """Print the `last` newest calls, then each new call or new status of a known one, until interrupted."""
    seen: set[tuple[str, str]] = set()

    def fresh(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        new = [s for s in reversed(items) if (str(s.get("call_id")), str(s.get("status"))) not in seen]
        seen.update((str(s.get("call_id")), str(s.get("status"))) for s in new)
        return new

    def emit(items: list[dict[str, Any]]) -> None:
        for s in items:
            if ctx.json:
                output.emit_json_line(s)
            else:
                _line(_row(s))

    try:
        if not ctx.json:
            _line(HEADERS)
        emit(fresh(ctx.gateway().get("/api/logs", **filters, limit=FOLLOW_BATCH))[-last:])
        while True:
            time.sleep(FOLLOW_SECONDS)
            emit(fresh(ctx.gateway().get("/api/logs", **filters, limit=FOLLOW_BATCH)))
    except KeyboardInterrupt:
        return OK


def _line(values: tuple[Any, ...]) -> None:
    """One row in fixed columns, flushed at once, since a tail cannot size columns ahead."""
    cells = [output.cell(v, w) for v, w in zip(values, FOLLOW_WIDTHS, strict=True)]
    print("  ".join(c.ljust(w) for c, w in zip(cells, FOLLOW_WIDTHS, strict=True)).rstrip(), flush=True)
