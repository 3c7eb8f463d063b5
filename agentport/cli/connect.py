"""`agentport connect CLIENT`: the MCP server entry for an agent app, printed or merged into its settings."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from agentport.cli import output
from agentport.cli.config import CliSettings
from agentport.cli.context import Context, Subcommands, leaf
from agentport.cli.exits import OK, CliError

LOOPBACK = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class Target:
    """Where an app keeps its MCP servers: the file and the key that holds them."""

    client: str
    path: Path
    container: str


def register(sub: Subcommands) -> None:
    connect = leaf(sub, "connect", connect_client, "set up an agent app to use AgentPort over MCP")
    connect.add_argument("client", choices=("claude-desktop", "claude-code", "cursor", "vscode"))
    connect.add_argument(
        "--write",
        action="store_true",
        help="merge the entry into the app's settings file (keeps the rest; saves a .bak)",
    )
    connect.add_argument("--config", type=Path, metavar="PATH", help="the settings file to write instead")
    connect.add_argument("--key", help="the API key to put in the entry (default: the logged-in API key)")
    connect.add_argument(
        "--new-key", action="store_true", help="create a fresh API key for this app (needs a human login)"
    )
    connect.add_argument("--name", default="agentport", help="the server's name in the app (default: agentport)")


def connect_client(args: argparse.Namespace, ctx: Context) -> int:
    target = Target(
        args.client,
        args.config or default_path(args.client, ctx.settings),
        "servers" if args.client == "vscode" else "mcpServers",
    )
    # Refuse an unreadable settings file before a new key is created for it.
    settings = read_settings(target) if args.write else None
    key = _api_key(args, ctx)
    endpoint = f"{ctx.url}/mcp"
    entry = server_entry(args.client, endpoint, key)
    if settings is None:
        return _print(args, ctx, target, entry, endpoint, key)
    backup, replaced = merge(target, settings, args.name, entry)
    if ctx.json:
        output.emit_json(
            {
                "client": args.client,
                "path": str(target.path),
                "name": args.name,
                "written": True,
                "replaced": replaced,
                "backup": str(backup) if backup else None,
            }
        )
        return OK
    action = "Replaced" if replaced else "Added"
    kept = f" (previous file: {backup})" if backup else ""
    print(f"{action} the {args.name!r} MCP server in {target.path}{kept}.")
    print("Restart the app (or reload its MCP servers) to pick it up.")
    return OK


def _api_key(args: argparse.Namespace, ctx: Context) -> str:
    """The key the app will send: --key, a new one (--new-key), or the logged-in one."""
    if args.key:
        return str(args.key).strip()
    found = ctx.credential()
    if args.new_key:
        created = ctx.gateway().post("/api/api-keys", {"name": args.client})
        output.note(f"Created API key {created['name']!r} ({created['id']}) for {args.client}.")
        return str(created["key"])
    if found is not None and found.kind == "api_key":
        return found.value
    raise CliError(
        "connect needs an API key: pass --key ap_…, log in with one, or add --new-key while logged in as a human"
    )


def default_path(client: str, settings: CliSettings) -> Path:
    """Where each app reads its MCP servers on this platform."""
    home = Path.home()
    if client == "claude-code":
        return home / ".claude.json"
    if client == "cursor":
        return home / ".cursor" / "mcp.json"
    if client == "vscode":
        return Path.cwd() / ".vscode" / "mcp.json"
    if sys.platform == "darwin":
        base = home / "Library" / "Application Support"
    elif sys.platform == "win32":
        base = settings.appdata or home / "AppData" / "Roaming"
    else:
        base = settings.config_home or home / ".config"
    return base / "Claude" / "claude_desktop_config.json"


def server_entry(client: str, endpoint: str, key: str) -> dict[str, Any]:
    """The well-known entry shape of each app for a Streamable HTTP server with an API key header."""
    headers = {"X-API-Key": key}
    if client == "claude-desktop":
        # Claude Desktop's settings file only starts local (stdio) servers; mcp-remote bridges to HTTP.
        bridge = ["-y", "mcp-remote", endpoint, "--header", "X-API-Key:${AGENTPORT_API_KEY}"]
        if urlsplit(endpoint).scheme == "http" and urlsplit(endpoint).hostname not in LOOPBACK:
            bridge.append("--allow-http")
        return {"command": "npx", "args": bridge, "env": {"AGENTPORT_API_KEY": key}}
    if client == "cursor":
        return {"url": endpoint, "headers": headers}
    return {"type": "http", "url": endpoint, "headers": headers}


def _print(
    args: argparse.Namespace, ctx: Context, target: Target, entry: dict[str, Any], endpoint: str, key: str
) -> int:
    snippet = {target.container: {args.name: entry}}
    command = None
    if args.client == "claude-code":
        command = shlex.join(
            ["claude", "mcp", "add", "--transport", "http", args.name, endpoint, "--header", f"X-API-Key: {key}"]
        )
    if ctx.json:
        output.emit_json(
            {
                "client": args.client,
                "path": str(target.path),
                "name": args.name,
                "written": False,
                "entry": snippet,
                "command": command,
            }
        )
        return OK
    if command:
        print(command)
        output.note(f"Or run `agentport connect {args.client} --write` to add it to {target.path}.")
    else:
        print(json.dumps(snippet, indent=2))
        output.note(f"Add this to {target.path}, or run `agentport connect {args.client} --write`.")
    return OK


def merge(target: Target, settings: dict[str, Any], name: str, entry: dict[str, Any]) -> tuple[Path | None, bool]:
    """Write `settings` with the entry set under its container, atomically, keeping the old file as .bak."""
    servers = settings[target.container]
    replaced = name in servers
    servers[name] = entry
    path = target.path
    path.parent.mkdir(parents=True, exist_ok=True)
    backup = None
    mode = 0o600
    if path.exists():
        backup = path.with_name(path.name + ".bak")
        shutil.copy2(path, backup)
        mode = path.stat().st_mode & 0o777
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as out:
            os.fchmod(out.fileno(), mode)
            out.write(json.dumps(settings, indent=2) + "\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return backup, replaced


def read_settings(target: Target) -> dict[str, Any]:
    """The app's settings as a JSON object with a servers object in it; anything else is left alone."""
    path = target.path
    try:
        text = path.read_text()
    except FileNotFoundError:
        text = ""
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror}") from exc
    try:
        settings = json.loads(text) if text.strip() else {}
    except ValueError as exc:
        raise CliError(
            f"{path} is not plain JSON ({exc}); not touching it: add the entry by hand "
            "(run the same command without --write to print it)"
        ) from exc
    if not isinstance(settings, dict) or not isinstance(settings.setdefault(target.container, {}), dict):
        raise CliError(f"{path} does not hold a JSON object with a {target.container!r} object; not touching it")
    return settings
