"""`agentport login|logout|whoami`: an agent's API key or a human's session, kept in a 0600 config file."""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

from agentport.cli import config, output
from agentport.cli.client import Gateway
from agentport.cli.context import Context, Subcommands, leaf
from agentport.cli.exits import OK, CliError, UsageError


def register(sub: Subcommands) -> None:
    login = leaf(sub, "login", log_in, "log in with an API key (agents) or an email and password (humans)")
    key = login.add_mutually_exclusive_group()
    key.add_argument("--api-key", metavar="KEY", help="an agent's key, ap_… (visible in `ps`: prefer --api-key-stdin)")
    key.add_argument("--api-key-stdin", action="store_true", help="read the API key from stdin")
    key.add_argument("--email", help="a human's email; the password is asked for, or read with --password-stdin")
    login.add_argument("--password", help=argparse.SUPPRESS)
    login.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    login.add_argument("--totp", metavar="CODE", help="the current two-factor code (or a recovery code), if enabled")
    leaf(sub, "logout", log_out, "forget the stored credentials (and end a human's session)")
    leaf(sub, "whoami", who_am_i, "who the gateway sees: the key or user, the organization, the role")


def log_in(args: argparse.Namespace, ctx: Context) -> int:
    url = ctx.url
    if args.email:
        token = _human_token(url, args.email, _password(args), args.totp)
        stored: dict[str, Any] = {"url": url, "token": token, "email": args.email.strip().lower()}
        found = config.Credential("token", token, config.LOGGING_IN)
    else:
        key = sys.stdin.readline().strip() if args.api_key_stdin else (args.api_key or "").strip()
        if not key:
            raise UsageError("give --api-key KEY (or --api-key-stdin) for an agent, or --email EMAIL for a human")
        stored = {"url": url, "api_key": key}
        found = config.Credential("api_key", key, config.LOGGING_IN)
    gateway = Gateway(url, found)
    try:
        me = gateway.get("/api/users/me")
    finally:
        gateway.close()
    config.save(ctx.config_path, stored)
    if ctx.settings.api_key:
        output.note("agentport: note: AGENTPORT_API_KEY is set, and it takes precedence over this login")
    return _report(ctx, me, url, str(ctx.config_path), "Logged in to ")


def _password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    elif args.password is not None:
        password = args.password
    elif sys.stdin.isatty():
        password = getpass.getpass(f"Password for {args.email}: ")
    else:
        raise UsageError("no password: use --password-stdin when not at a terminal")
    if not password:
        raise UsageError("the password is empty")
    return str(password)


def _human_token(url: str, email: str, password: str, totp: str | None) -> str:
    gateway = Gateway(url, None)
    form = {"username": email, "password": password, **({"totp_code": totp.strip()} if totp else {})}
    try:
        answer = gateway.request("POST", "/api/auth/token", data=form)
    finally:
        gateway.close()
    return str(answer["access_token"])


def log_out(args: argparse.Namespace, ctx: Context) -> int:
    stored = dict(ctx.stored)
    had = any(stored.pop(k, None) for k in ("api_key", "token", "email"))
    if not had:
        return _said(ctx, {"status": "not_logged_in"}, "Not logged in.")
    if ctx.stored.get("token"):
        gateway = Gateway(ctx.url, config.Credential("token", ctx.stored["token"], str(ctx.config_path)))
        try:
            gateway.post("/api/auth/logout")
        except CliError as exc:
            output.note(f"agentport: could not end the session on the gateway ({exc.message}); forgetting it here")
        finally:
            gateway.close()
    config.save(ctx.config_path, stored)
    return _said(ctx, {"status": "logged_out"}, f"Logged out; removed the credentials from {ctx.config_path}.")


def _said(ctx: Context, data: dict[str, Any], text: str) -> int:
    if ctx.json:
        output.emit_json(data)
    else:
        print(text)
    return OK


def who_am_i(args: argparse.Namespace, ctx: Context) -> int:
    gateway = ctx.gateway()
    assert gateway.credential is not None
    return _report(ctx, gateway.get("/api/users/me"), ctx.url, gateway.credential.source, "")


def _report(ctx: Context, me: dict[str, Any], url: str, source: str, lead: str) -> int:
    """Who the gateway sees, and where the credential came from (the config file or the environment)."""
    actor = me.get("actor") or {}
    data = {"url": url, "org_id": me.get("org_id"), "actor": actor, "role": me.get("role"), "credential": source}
    if ctx.json:
        output.emit_json(data)
        return OK
    kind = "API key" if actor.get("kind") == "api_key" else "user"
    role = f", role {me['role']}" if me.get("role") else ""
    print(f"{lead}{url} as {kind} {actor.get('name')!r} (org {me.get('org_id')}{role}); credential from {source}.")
    return OK
