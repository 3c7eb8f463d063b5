"""What every client command gets: the output mode, the gateway URL, and a gateway session on demand."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeAlias

from agentport.cli import config
from agentport.cli.client import Gateway
from agentport.cli.exits import CliError

Handler = Callable[[argparse.Namespace, "Context"], int]
Subcommands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


@dataclass
class Context:
    """Settings read once, the stored login, and the `--json`/`--url` choices of this invocation."""

    settings: config.CliSettings
    json: bool
    url_flag: str | None
    config_path: Path = field(init=False)
    stored: dict[str, Any] = field(init=False)
    _gateway: Gateway | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.config_path = self.settings.config_path()
        self.stored = config.load(self.config_path)

    @property
    def url(self) -> str:
        return config.gateway_url(self.url_flag, self.settings, self.stored)

    def credential(self) -> config.Credential | None:
        return config.credential(self.settings, self.stored, self.config_path)

    def gateway(self) -> Gateway:
        """A session with the logged-in credential; one clear line when there is none."""
        if self._gateway is None:
            found = self.credential()
            if found is None:
                raise CliError(
                    "not logged in: run `agentport login --api-key KEY` (agents) or "
                    "`agentport login --email EMAIL` (humans), or set AGENTPORT_API_KEY",
                    error_code="not_logged_in",
                )
            self._gateway = Gateway(self.url, found)
        return self._gateway

    def close(self) -> None:
        if self._gateway is not None:
            self._gateway.close()


def common_options(parser: argparse.ArgumentParser) -> None:
    """`--json` and `--url`, accepted before or after the subcommand."""
    parser.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="print one JSON document instead of tables"
    )
    parser.add_argument(
        "--url",
        default=argparse.SUPPRESS,
        metavar="URL",
        help="the gateway (default: AGENTPORT_URL, the login's URL, or http://127.0.0.1:4747)",
    )


def leaf(sub: Subcommands, name: str, handler: Handler, help_text: str) -> argparse.ArgumentParser:
    """A runnable subcommand with the common options."""
    parser = sub.add_parser(name, help=help_text, description=help_text)
    common_options(parser)
    parser.set_defaults(handler=handler)
    return parser
