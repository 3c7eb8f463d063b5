"""The `agentport` command: client commands for agents, scripts and people, plus `serve` and `admin`."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Callable
from typing import Any, NoReturn, cast

from agentport.cli import approvals, connect, integrations, keys, login, logs, output, tools
from agentport.cli.context import Context, Subcommands, common_options
from agentport.cli.exits import ERROR, USAGE, CliError
from agentport.services import SERVICE_NAMES
from shared.errors import AgentPortError

CLIENT_GROUPS: tuple[Callable[[Subcommands], None], ...] = (
    login.register,
    integrations.register,
    tools.register,
    approvals.register,
    logs.register,
    keys.register,
    connect.register,
)


class Parser(argparse.ArgumentParser):
    """Usage errors as one line and exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(USAGE, f"{self.prog}: {message} (see `{self.prog} --help`)\n")


def parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="agentport",
        description="AgentPort: a gateway between AI agents and real services. "
        "Exit codes: 0 ok, 1 error, 2 usage, 3 approval required, 4 denied, 5 expired.",
    )
    common_options(p)
    sub = cast(Subcommands, p.add_subparsers(dest="command", required=True, metavar="COMMAND"))
    for register in CLIENT_GROUPS:
        register(sub)
    _operator_commands(sub)
    return p


def _operator_commands(sub: Subcommands) -> None:
    serve = sub.add_parser("serve", help="run a service, or all of them")
    serve.add_argument("name", choices=[*SERVICE_NAMES, "all"])
    adm = sub.add_parser("admin", help="operator commands (talk to NATS and PostgreSQL directly)")
    adm_sub = adm.add_subparsers(dest="admin_command", required=True, metavar="COMMAND")
    cu = adm_sub.add_parser("create-user", help="create a human account (the first of an org is its owner)")
    cu.add_argument("--email", required=True)
    cu.add_argument("--password", required=True)
    cu.add_argument("--org", default=None)
    cu.add_argument("--role", choices=["owner", "admin", "approver", "viewer"], default=None)
    ck = adm_sub.add_parser("create-api-key", help="create an API key for a user; prints it once")
    ck.add_argument("--email", required=True)
    ck.add_argument("--name", required=True)
    va = adm_sub.add_parser("verify-audit", help="check the audit log's hash chain")
    rc = adm_sub.add_parser(
        "reconcile", help="end calls left open (e.g. after NATS lost its store) from what the executor recorded"
    )
    rc.add_argument(
        "--older-than", type=float, default=300.0, metavar="SECONDS", help="only calls requested this long ago"
    )
    rc.add_argument("--dry-run", action="store_true", help="report the open calls, change nothing")
    for leaf in (cu, ck, va, rc):
        leaf.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print JSON")


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        code = _operate(args) if args.command in ("serve", "admin") else _client(args)
        sys.stdout.flush()
        return code
    except CliError as exc:
        return _failed(args, exc)
    except AgentPortError as exc:
        return _failed(args, CliError(exc.message, ERROR, exc.code))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`agentport … | head`); keep Python from complaining at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return ERROR
    except Exception as exc:
        if args.command == "serve":
            raise
        return _failed(args, CliError(f"unexpected error: {type(exc).__name__}: {exc}", ERROR, "internal"))


def _failed(args: argparse.Namespace, exc: CliError) -> int:
    """One line on stderr; with `--json`, the same failure as JSON on stdout for scripts."""
    print(f"agentport: {exc.message}", file=sys.stderr)
    if getattr(args, "json", False):
        print(json.dumps(exc.as_json()))
    return exc.code


def _client(args: argparse.Namespace) -> int:
    from agentport.cli.config import CliSettings

    ctx = Context(CliSettings(), json=getattr(args, "json", False), url_flag=getattr(args, "url", None))
    try:
        code: int = args.handler(args, ctx)
        return code
    finally:
        ctx.close()


def _operate(args: argparse.Namespace) -> int:
    """`serve` and `admin`, which run next to NATS and PostgreSQL rather than through the gateway."""
    from agentport import admin
    from shared.settings import CommonSettings

    data_dir = CommonSettings().data_dir
    as_json = getattr(args, "json", False)
    if args.command == "serve":
        from agentport.serve import serve_all, serve_one

        return serve_all(data_dir) if args.name == "all" else serve_one(args.name, data_dir)
    if args.admin_command == "create-user":
        user_id = asyncio.run(admin.create_user(data_dir, args.email, args.password, args.org, args.role))
        _say({"user_id": user_id}, user_id, as_json)
    elif args.admin_command == "create-api-key":
        key = asyncio.run(admin.create_api_key(data_dir, args.email, args.name))
        _say({"key": key}, key, as_json)
    elif args.admin_command == "verify-audit":
        ok, report = asyncio.run(admin.verify_audit(data_dir))
        print(report)
        return 0 if ok else ERROR
    elif args.admin_command == "reconcile":
        result = asyncio.run(admin.reconcile(data_dir, args.older_than, args.dry_run))
        summary = ", ".join(f"{n} {action}" for action, n in sorted(result["actions"].items())) or "nothing to do"
        _say(result, f"{result['open']} open call(s): {summary}", as_json)
    return 0


def _say(data: dict[str, Any], text: str, as_json: bool) -> None:
    if as_json:
        output.emit_json(data)
    else:
        print(text)


if __name__ == "__main__":
    sys.exit(main())
