"""`agentport keys list|create|revoke`: the organization's API keys (humans who manage the org)."""

from __future__ import annotations

import argparse
from urllib.parse import quote

from agentport.cli import output
from agentport.cli.context import Context, Subcommands, leaf
from agentport.cli.exits import OK


def register(sub: Subcommands) -> None:
    group = sub.add_parser("keys", help="API keys for agents: list, create, revoke (humans)")
    cmds = group.add_subparsers(dest="keys_command", required=True, metavar="COMMAND")
    leaf(cmds, "list", list_keys, "the organization's API keys (never the keys themselves)")
    create = leaf(cmds, "create", create_key, "create an API key; it is printed once, alone on its line")
    create.add_argument("name", help="who or what will use it, e.g. ci or claude-desktop")
    revoke = leaf(cmds, "revoke", revoke_key, "revoke an API key at once")
    revoke.add_argument("key_id", metavar="KEY_ID")


def list_keys(args: argparse.Namespace, ctx: Context) -> int:
    data = ctx.gateway().get("/api/api-keys")
    if ctx.json:
        output.emit_json(data)
        return OK
    rows = [
        (
            k["id"],
            k["name"],
            f"{k['prefix']}…",
            output.when(k["created_at"]),
            output.when(k.get("revoked_at")) or "active",
        )
        for k in data
    ]
    output.table(rows, ("ID", "NAME", "PREFIX", "CREATED", "REVOKED"), "No API keys.")
    return OK


def create_key(args: argparse.Namespace, ctx: Context) -> int:
    key = ctx.gateway().post("/api/api-keys", {"name": args.name})
    if ctx.json:
        output.emit_json(key)
    else:
        print(key["key"])
        output.note(f"API key {key['name']!r} ({key['id']}): store it now, it is shown only once.")
    return OK


def revoke_key(args: argparse.Namespace, ctx: Context) -> int:
    ctx.gateway().delete(f"/api/api-keys/{quote(args.key_id, safe='')}")
    if ctx.json:
        output.emit_json({"id": args.key_id, "status": "revoked"})
    else:
        print(f"Revoked {args.key_id}.")
    return OK
