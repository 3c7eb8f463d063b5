"""`agentport tools list|describe|call|set-mode`: discover tools and call them through the gateway's policy."""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

from agentport.cli import outcomes, output
from agentport.cli.client import Gateway
from agentport.cli.context import Context, Subcommands, leaf
from agentport.cli.exits import OK, CliError, UsageError

MODES = ("allow", "require_approval", "deny")
# Failures where the call may or may not have reached the gateway: asked again under the same key.
TRANSPORT_ERRORS = frozenset({"unavailable", "timeout"})
RETRY_PAUSES = (0.5, 1.5)


def register(sub: Subcommands) -> None:
    group = sub.add_parser("tools", help="list, describe and call the tools of installed integrations")
    tools = group.add_subparsers(dest="tools_command", required=True, metavar="COMMAND")
    lst = leaf(tools, "list", list_tools, "the tools of installed integrations, with their approval mode")
    lst.add_argument("--integration", help="only this integration's tools")
    lst.add_argument("--query", help="words that must all appear in the tool's name or description")
    desc = leaf(tools, "describe", describe, "one tool: what it does, its parameters and its approval mode")
    desc.add_argument("integration", metavar="INTEGRATION")
    desc.add_argument("tool", metavar="TOOL")
    call = leaf(tools, "call", call_tool, "call a tool; gated calls need a human's approval")
    call.add_argument("integration", metavar="INTEGRATION")
    call.add_argument("tool", metavar="TOOL")
    call.add_argument("--args", metavar="JSON", help="the arguments as a JSON object, @FILE, or - for stdin")
    call.add_argument(
        "--arg",
        action="append",
        default=[],
        metavar="K=V",
        help="one argument (repeatable): K=TEXT (a number, boolean or list if the tool's schema says so), "
        "or K:=JSON for any JSON value",
    )
    call.add_argument(
        "--info", metavar="TEXT", help="why you make this call, in a sentence the approver can check (additional_info)"
    )
    call.add_argument(
        "--wait", action="store_true", help="if a human must approve, wait for the decision and print the real result"
    )
    call.add_argument(
        "--timeout",
        type=float,
        metavar="SECONDS",
        help="stop waiting after this long (exit 3 if a human has not decided yet)",
    )
    call.add_argument(
        "--idempotency-key",
        metavar="KEY",
        help="the same KEY again gives the first call's outcome instead of calling twice (up to 200 characters; "
        "default: a new key for this run, reused when the CLI retries after a network error)",
    )
    mode = leaf(tools, "set-mode", set_mode, "set a tool's approval mode (humans with the owner or admin role)")
    mode.add_argument("integration", metavar="INTEGRATION")
    mode.add_argument("tool", metavar="TOOL")
    mode.add_argument("mode", choices=MODES)
    mode.add_argument("--totp", metavar="CODE", help="a fresh two-factor code, needed to allow a tool when it is on")


def tool_path(integration: str, tool: str) -> str:
    return f"/api/tools/{quote(integration, safe='')}/{quote(tool, safe='')}"


def list_tools(args: argparse.Namespace, ctx: Context) -> int:
    data = ctx.gateway().get("/api/tools", integration_id=args.integration, query=args.query)
    if ctx.json:
        output.emit_json(data)
        return OK
    rows = [(t["integration_id"], t["name"], t["mode"], t.get("description")) for t in data]
    output.table(rows, ("INTEGRATION", "TOOL", "MODE", "DESCRIPTION"), "No tools found.")
    return OK


def describe(args: argparse.Namespace, ctx: Context) -> int:
    tool = ctx.gateway().get(tool_path(args.integration, args.tool))
    if ctx.json:
        output.emit_json(tool)
        return OK
    print(f"{tool['integration_id']} / {tool['name']}   mode: {tool['mode']}")
    if tool.get("description"):
        print(f"\n{tool['description'].strip()}")
    schema = tool.get("input_schema") or {}
    required = set(schema.get("required") or [])
    props: dict[str, Any] = schema.get("properties") or {}
    print()
    rows = [(name, _type(p), "yes" if name in required else "no", p.get("description")) for name, p in props.items()]
    output.table(rows, ("PARAMETER", "TYPE", "REQUIRED", "DESCRIPTION"), "No parameters.")
    if tool.get("changed"):
        print("\nThe upstream changed this tool since its mode was set; a human should review it.")
    words = ["agentport tools call", tool["integration_id"], tool["name"]]
    words += [_example(name, props[name]) for name in props if name in required]
    print("\nCall it: " + " ".join(words) + ' --info "<why, in words the approver can check>"')
    return OK


def _type(prop: dict[str, Any]) -> str:
    kind = prop.get("type") or ("one of" if "anyOf" in prop or "oneOf" in prop else "any")
    return "|".join(kind) if isinstance(kind, list) else str(kind)


def _example(name: str, prop: dict[str, Any]) -> str:
    return f"--arg {name}=…" if prop.get("type") == "string" else f"--arg {name}:=…"


def call_tool(args: argparse.Namespace, ctx: Context) -> int:
    arguments = build_arguments(args.args, args.arg)
    if args.timeout is not None and args.timeout <= 0:
        raise UsageError("--timeout must be a positive number of seconds")
    gateway = ctx.gateway()
    loose = typed_looking(args.arg)
    if loose:
        schema = gateway.get(tool_path(args.integration, args.tool)).get("input_schema") or {}
        arguments.update(typed_by_schema(schema, loose))
    body: dict[str, Any] = {"arguments": arguments}
    if args.info:
        body["additional_info"] = args.info
    key = args.idempotency_key or "cli-" + secrets.token_hex(12)
    until = outcomes.deadline(args.timeout)
    try:
        first = send_call(gateway, f"{tool_path(args.integration, args.tool)}/call", body, key, until)
        result = outcomes.follow(gateway, first, args.wait, until)
    except CliError as exc:
        if exc.error_code not in TRANSPORT_ERRORS:
            raise
        raise CliError(
            f"{exc.message}; the call may have been made: run the same command with --idempotency-key {key} "
            "to get its outcome without calling twice",
            exc.code,
            exc.error_code,
        ) from exc
    return outcomes.show(result, ctx.json)


def send_call(gateway: Gateway, path: str, body: dict[str, Any], key: str, until: float | None) -> dict[str, Any]:
    """POST the call under its idempotency key, asking again (same key: never a second call) after a network
    error or an unavailable gateway."""
    pauses = iter(RETRY_PAUSES)
    while True:
        try:
            answer: dict[str, Any] = gateway.long_poll(
                path, outcomes.first_poll(until), body, headers={"Idempotency-Key": key}
            )
            return answer
        except CliError as exc:
            pause = next(pauses, None)
            if exc.error_code not in TRANSPORT_ERRORS or pause is None:
                raise
        time.sleep(pause)


def build_arguments(raw: str | None, pairs: list[str]) -> dict[str, Any]:
    """`--args` (JSON, @FILE or -) with each `--arg` laid over it; bad input is a usage error."""
    arguments: dict[str, Any] = {}
    if raw is not None:
        text = _read_args(raw)
        try:
            parsed = json.loads(text)
        except ValueError as exc:
            raise UsageError(f"--args is not valid JSON: {exc}") from exc
        if not isinstance(parsed, dict):
            raise UsageError('--args must be a JSON object, like \'{"name": "value"}\'')
        arguments.update(parsed)
    for pair in pairs:
        key, value = parse_pair(pair)
        arguments[key] = value
    return arguments


def _read_args(raw: str) -> str:
    if raw == "-":
        return sys.stdin.read()
    if raw.startswith("@"):
        try:
            return Path(raw[1:]).read_text()
        except OSError as exc:
            raise UsageError(f"cannot read --args file {raw[1:]}: {exc.strerror}") from exc
    return raw


def parse_pair(pair: str) -> tuple[str, Any]:
    """`key=text` gives a string (typed later if the schema says so); `key:=json` gives any JSON value."""
    key, sep, value = pair.partition("=")
    if not sep or not key or key == ":":
        raise UsageError(f"--arg takes KEY=TEXT or KEY:=JSON, not {pair!r}")
    if not key.endswith(":"):
        return key, value
    try:
        return key[:-1], json.loads(value)
    except ValueError as exc:
        raise UsageError(f"--arg {key}= is not valid JSON: {exc}") from exc


def typed_looking(pairs: list[str]) -> dict[str, Any]:
    """`key=text` values that read as a JSON number, boolean, null, list or object (the last --arg wins)."""
    found: dict[str, Any] = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        found.pop(key.removesuffix(":"), None)
        if key.endswith(":"):
            continue
        try:
            parsed = json.loads(value)
        except ValueError:
            continue
        if not isinstance(parsed, str):
            found[key] = parsed
    return found


def typed_by_schema(schema: dict[str, Any], loose: dict[str, Any]) -> dict[str, Any]:
    """The typed value of each `key=text` whose parameter cannot be a string, so `--arg n=3` sends 3."""
    props: dict[str, Any] = schema.get("properties") or {}
    typed: dict[str, Any] = {}
    for key, value in loose.items():
        kind = (props.get(key) or {}).get("type")
        kinds = {kind} if isinstance(kind, str) else set(kind or [])
        if kinds and "string" not in kinds:
            typed[key] = value
    return typed


def set_mode(args: argparse.Namespace, ctx: Context) -> int:
    integration = quote(args.integration, safe="")
    body = {"mode": args.mode, **({"totp_code": args.totp.strip()} if args.totp else {})}
    tool = ctx.gateway().put(f"/api/tool-settings/{integration}/{quote(args.tool, safe='')}", body)
    if ctx.json:
        output.emit_json(tool)
    else:
        print(f"{tool['integration_id']} / {tool['tool_name']} is now {tool['mode']}")
    return OK
