"""`agentport approvals …`: see and await approval requests; humans approve or deny them."""

from __future__ import annotations

import argparse
import json
from typing import Any
from urllib.parse import quote

from agentport.cli import outcomes, output
from agentport.cli.context import Context, Subcommands, leaf
from agentport.cli.exits import OK, UsageError

STATUSES = ("pending", "approved", "denied", "expired", "all")


def register(sub: Subcommands) -> None:
    group = sub.add_parser("approvals", help="approval requests: list, show, await; approve and deny (humans)")
    cmds = group.add_subparsers(dest="approvals_command", required=True, metavar="COMMAND")
    lst = leaf(cmds, "list", list_requests, "approval requests, newest first")
    lst.add_argument("--status", choices=STATUSES, default="pending")
    lst.add_argument("--limit", type=int, default=50)
    show = leaf(cmds, "show", show_request, "one request: the exact tool, arguments and the agent's reason")
    show.add_argument("request_id", metavar="REQUEST_ID")
    wait = leaf(cmds, "await", await_request, "wait for the decision and print the call's real result")
    wait.add_argument("request_id", metavar="REQUEST_ID")
    wait.add_argument("--timeout", type=float, metavar="SECONDS", help="stop waiting after this long (exit 3)")
    approve = leaf(cmds, "approve", approve_request, "approve a request (humans only)")
    approve.add_argument("request_id", metavar="REQUEST_ID")
    approve.add_argument("--always", action="store_true", help="also allow this tool from now on (allow-tool)")
    approve.add_argument("--reason", help="a note kept in the audit log")
    approve.add_argument("--totp", metavar="CODE", help="a fresh two-factor code, when two-factor is on")
    deny = leaf(cmds, "deny", deny_request, "deny a request (humans only); the agent must not retry")
    deny.add_argument("request_id", metavar="REQUEST_ID")
    deny.add_argument("--reason", help="told to the agent and kept in the audit log")
    deny.add_argument("--totp", metavar="CODE", help="a fresh two-factor code, when two-factor is on")


def _path(request_id: str) -> str:
    return f"/api/tool-approvals/requests/{quote(request_id, safe='')}"


def list_requests(args: argparse.Namespace, ctx: Context) -> int:
    if args.limit < 1:
        raise UsageError("--limit must be at least 1")
    status = None if args.status == "all" else args.status
    data = ctx.gateway().get("/api/tool-approvals/requests", status=status, limit=args.limit)
    if ctx.json:
        output.emit_json(data)
        return OK
    rows = [
        (
            r["id"],
            r["status"],
            f"{r['integration_id']}/{r['tool_name']}",
            (r.get("requested_by") or {}).get("name"),
            output.when(r["expires_at"] if r["status"] == "pending" else r.get("decided_at")),
            r.get("additional_info"),
        )
        for r in data
    ]
    empty = "No pending approval requests." if status == "pending" else "No approval requests."
    output.table(rows, ("REQUEST", "STATUS", "TOOL", "REQUESTED BY", "EXPIRES/DECIDED", "INFO"), empty)
    return OK


def show_request(args: argparse.Namespace, ctx: Context) -> int:
    r = ctx.gateway().get(_path(args.request_id))
    if ctx.json:
        output.emit_json(r)
        return OK
    who = r.get("requested_by") or {}
    output.fields(
        (
            ("request", r["id"]),
            ("status", r["status"]),
            ("tool", f"{r['integration_id']} / {r['tool_name']}"),
            ("arguments", json.dumps(r.get("arguments"), sort_keys=True)),
            ("additional info", r.get("additional_info")),
            ("requested by", f"{who.get('name')} ({who.get('kind')})"),
            ("from", r.get("client_ip")),
            ("created", output.when(r.get("created_at"))),
            ("expires", output.when(r.get("expires_at"))),
            ("decided", output.when(r.get("decided_at"))),
            ("decided by", (r.get("decided_by") or {}).get("name")),
            ("reason", r.get("reason")),
            ("approval url", r.get("approval_url")),
            ("tool changed", "yes: review the tool before approving" if r.get("tool_change") else None),
        )
    )
    return OK


def await_request(args: argparse.Namespace, ctx: Context) -> int:
    if args.timeout is not None and args.timeout <= 0:
        raise UsageError("--timeout must be a positive number of seconds")
    until = outcomes.deadline(args.timeout)
    gateway = ctx.gateway()
    request = gateway.get(_path(args.request_id))
    held: dict[str, Any] = {
        "status": "approval_required",
        "call_id": request["call_id"],
        "approval_request_id": request["id"],
        "approval_url": request.get("approval_url"),
    }
    return outcomes.show(outcomes.follow(gateway, held, True, until), ctx.json)


def approve_request(args: argparse.Namespace, ctx: Context) -> int:
    decision = "allow-tool" if args.always else "approve-once"
    return _decide(ctx, args.request_id, decision, args.reason, args.totp)


def deny_request(args: argparse.Namespace, ctx: Context) -> int:
    return _decide(ctx, args.request_id, "deny", args.reason, args.totp)


def _decide(ctx: Context, request_id: str, decision: str, reason: str | None, totp: str | None) -> int:
    body: dict[str, str] = {"reason": reason} if reason else {}
    if totp:
        body["totp_code"] = totp.strip()
    r = ctx.gateway().post(f"{_path(request_id)}/{decision}", body)
    if ctx.json:
        output.emit_json(r)
    else:
        verb = {
            "approve-once": "Approved once",
            "allow-tool": "Approved, and the tool is now allowed",
            "deny": "Denied",
        }[decision]
        print(f"{verb}: {r['integration_id']} / {r['tool_name']} (request {r['id']}).")
    return OK
