"""`agentport integrations …`: find, define, install and remove the services agents can use."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

from agentport.cli import output
from agentport.cli.context import Context, Subcommands, leaf
from agentport.cli.exits import ERROR, OK, CliError, UsageError

AUTH_TYPES = ("none", "bearer", "basic", "header", "query")
# The gateway's install reports `installed.status`; agents think in terms of auth status.
AUTH_STATUS = {"ready": "connected", "installing": "pending"}


def register(sub: Subcommands) -> None:
    group = sub.add_parser("integrations", help="find, define, install and remove integrations")
    cmds = group.add_subparsers(dest="integrations_command", required=True, metavar="COMMAND")
    leaf(cmds, "list", list_installed, "the integrations installed for your organization")
    available = leaf(cmds, "available", list_available, "integrations you can install (catalog and custom)")
    available.add_argument("--query", help="words that must all appear in the id, name or description")
    available.add_argument("--type", choices=("mcp", "api"), help="only MCP servers or only HTTP APIs")
    show = leaf(cmds, "show", show_one, "one integration: how it authenticates and whether it is installed")
    show.add_argument("integration", metavar="INTEGRATION")
    install = leaf(cmds, "install", install_one, "install an integration (the token is sealed for the executor)")
    install.add_argument("integration", metavar="INTEGRATION")
    token = install.add_mutually_exclusive_group()
    token.add_argument("--token", help="the credential to present upstream (visible in `ps`: prefer --token-stdin)")
    token.add_argument("--token-stdin", action="store_true", help="read the credential from stdin")
    install.add_argument(
        "--auth-method", choices=("none", "token", "oauth"), help="default: token when a token is given, else none"
    )
    remove = leaf(cmds, "remove", remove_one, "uninstall an integration")
    remove.add_argument("integration", metavar="INTEGRATION")
    status = leaf(cmds, "status", status_one, "whether an installed integration is connected")
    status.add_argument("integration", metavar="INTEGRATION")
    refresh = leaf(cmds, "refresh", refresh_one, "read an installed integration's tools from the upstream now")
    refresh.add_argument("integration", metavar="INTEGRATION")
    mcp = leaf(cmds, "add-mcp", add_mcp, "define your own remote MCP server (then `integrations install` it)")
    mcp.add_argument("id", help="lowercase id, e.g. my-tracker")
    mcp.add_argument("server_url", metavar="URL", help="the server's Streamable HTTP endpoint")
    _definition_options(mcp)
    api = leaf(cmds, "add-api", add_api, "define your own HTTP API from its OpenAPI document")
    api.add_argument("id", help="lowercase id, e.g. pets")
    source = api.add_mutually_exclusive_group(required=True)
    source.add_argument("--openapi", metavar="FILE", help="the OpenAPI document (JSON or YAML)")
    source.add_argument("--document-url", metavar="URL", help="where the gateway can fetch the document")
    api.add_argument("--base-url", help="the API's base URL, when the document names none")
    api.add_argument("--operations", help="comma-separated operation ids or 'METHOD /path' to expose")
    _definition_options(api)


def _definition_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--name", help="display name (default: the id)")
    parser.add_argument("--description", default="")
    parser.add_argument("--auth", choices=AUTH_TYPES, default="none", help="how the credential is presented")
    parser.add_argument("--auth-name", metavar="NAME", help="the header (or query parameter) carrying it")


def _path(integration: str) -> str:
    return quote(integration, safe="")


def list_installed(args: argparse.Namespace, ctx: Context) -> int:
    data = ctx.gateway().get("/api/installed")
    if ctx.json:
        output.emit_json(data)
        return OK
    rows = [
        (i["integration_id"], i["name"], i["status"], i["tool_count"], i["auth_method"], i.get("error")) for i in data
    ]
    output.table(
        rows,
        ("INTEGRATION", "NAME", "STATUS", "TOOLS", "AUTH", "ERROR"),
        "No integrations installed. Find one with `agentport integrations available`.",
    )
    return OK


def list_available(args: argparse.Namespace, ctx: Context) -> int:
    data = ctx.gateway().get("/api/integrations", query=args.query, type=args.type)
    if ctx.json:
        output.emit_json(data)
        return OK
    rows = [
        (i["id"], i.get("name"), i.get("type"), i.get("auth_methods"), i.get("installed"), i.get("description"))
        for i in data
    ]
    output.table(rows, ("INTEGRATION", "NAME", "TYPE", "AUTH", "INSTALLED", "DESCRIPTION"), "No integrations match.")
    return OK


def show_one(args: argparse.Namespace, ctx: Context) -> int:
    view = ctx.gateway().get(f"/api/integrations/{_path(args.integration)}")
    if ctx.json:
        output.emit_json(view)
        return OK
    output.fields(
        (
            ("id", view.get("id")),
            ("name", view.get("name")),
            ("type", view.get("type")),
            ("source", view.get("source")),
            ("description", view.get("description")),
            ("url", view.get("mcp_url") or view.get("base_url")),
            ("auth methods", ", ".join(view.get("auth_methods", []))),
            ("token help", view.get("token_help_url")),
            ("installed", "yes" if view.get("installed") else "no"),
        )
    )
    return OK


def install_one(args: argparse.Namespace, ctx: Context) -> int:
    token = sys.stdin.readline().strip() if args.token_stdin else args.token
    if args.token_stdin and not token:
        raise UsageError("--token-stdin read an empty line")
    body: dict[str, Any] = {
        "integration_id": args.integration,
        "auth_method": args.auth_method or ("token" if token else "none"),
    }
    if token:
        body["token"] = token
    installed = ctx.gateway().post("/api/installed", body)
    if ctx.json:
        output.emit_json(installed)
    elif installed["status"] == "ready":
        print(
            f"Installed {installed['integration_id']} with {installed['tool_count']} tools. "
            f"See them with `agentport tools list --integration {installed['integration_id']}`."
        )
    elif installed["status"] == "installing":
        print(
            f"Installing {installed['integration_id']}; its tools are still being read. "
            f"Check with `agentport integrations status {installed['integration_id']}`."
        )
    if installed["status"] not in ("ready", "installing"):
        raise CliError(f"{installed['integration_id']} was installed but cannot be reached: {installed.get('error')}")
    return OK


def remove_one(args: argparse.Namespace, ctx: Context) -> int:
    data = ctx.gateway().delete(f"/api/installed/{_path(args.integration)}")
    if ctx.json:
        output.emit_json({"integration_id": args.integration, **data})
    else:
        print(f"Removed {args.integration}.")
    return OK


def status_one(args: argparse.Namespace, ctx: Context) -> int:
    items = ctx.gateway().get("/api/installed")
    found = [i for i in items if i["integration_id"] == args.integration]
    if not found:
        raise CliError(f"integration {args.integration!r} is not installed; see `agentport integrations list`")
    row = found[0]
    status = {
        "integration_id": row["integration_id"],
        "auth_status": AUTH_STATUS.get(row["status"], "needs_reauth"),
        "auth_method": row["auth_method"],
        "status": row["status"],
        "tool_count": row["tool_count"],
        "detail": row.get("error"),
    }
    if ctx.json:
        output.emit_json(status)
    else:
        output.fields((k.replace("_", " "), v) for k, v in status.items())
    return OK if status["auth_status"] != "needs_reauth" else ERROR


def refresh_one(args: argparse.Namespace, ctx: Context) -> int:
    data = ctx.gateway().post(f"/api/installed/{_path(args.integration)}/refresh")
    if ctx.json:
        output.emit_json(data)
    else:
        changed = "changed" if data.get("changed") else "unchanged"
        print(f"{data['integration_id']}: {data['tool_count']} tools ({changed}).")
    return OK


def _auth(args: argparse.Namespace, *, api: bool) -> dict[str, Any]:
    if args.auth in ("header", "query") and not args.auth_name:
        raise UsageError(f"--auth {args.auth} needs --auth-name (the header or parameter that carries the credential)")
    if args.auth == "query" and not api:
        raise UsageError("an MCP server takes its credential in a header: use --auth bearer, basic or header")
    auth: dict[str, Any] = {"type": args.auth}
    if args.auth_name:
        auth["name" if api else "header_name"] = args.auth_name
    return auth


def add_mcp(args: argparse.Namespace, ctx: Context) -> int:
    body = {
        "id": args.id,
        "name": args.name or args.id,
        "url": args.server_url,
        "description": args.description,
        "auth": _auth(args, api=False),
    }
    return _defined(ctx, ctx.gateway().post("/api/integrations/custom-mcp", body))


def add_api(args: argparse.Namespace, ctx: Context) -> int:
    body: dict[str, Any] = {
        "id": args.id,
        "name": args.name or args.id,
        "description": args.description,
        "auth": _auth(args, api=True),
    }
    if args.openapi:
        try:
            body["document"] = Path(args.openapi).read_text()
        except OSError as exc:
            raise UsageError(f"cannot read {args.openapi}: {exc.strerror}") from exc
    else:
        body["document_url"] = args.document_url
    if args.base_url:
        body["base_url"] = args.base_url
    if args.operations:
        body["operations"] = [op.strip() for op in args.operations.split(",") if op.strip()]
    return _defined(ctx, ctx.gateway().post("/api/integrations/custom-api", body))


def _defined(ctx: Context, view: dict[str, Any]) -> int:
    if ctx.json:
        output.emit_json(view)
        return OK
    methods = view.get("auth_methods") or ["none"]
    command = f"agentport integrations install {view['id']}" + (" --token-stdin" if "token" in methods else "")
    print(f"Defined {view['id']}. Install it with `{command}`.")
    return OK
