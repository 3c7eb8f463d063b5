"""Local stdio MCP servers, configured by the operator only (never by an agent or an API key).

The executor reads them from `AGENTPORT_STDIO_SERVERS` (JSON) or a JSON file (`AGENTPORT_STDIO_SERVERS_FILE`,
default `<data dir>/stdio_servers.json`) and announces what gateways may show (never command, arguments or
environment) in the bus's key-value store. Each org that installs one gets its own process, started with a
clean environment: the server's own `env`, the org's token under `token_env`, and only the basic variables
(PATH, HOME, ...) of the executor, so nothing of the executor's secrets leaks into it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mcp.client.stdio import StdioServerParameters
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.bus import Bus
from shared.settings import ExecutorSettings

ANNOUNCE_BUCKET, ANNOUNCE_KEY = "keys", "stdio_servers"
DEFAULT_FILE_NAME = "stdio_servers.json"


class StdioConfigError(ValueError):
    """The operator's stdio server configuration is invalid; the executor refuses to start with it."""


class StdioServer(BaseModel):
    """One operator-configured local MCP server."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")
    name: str = Field(min_length=1, max_length=80)
    description: str = ""
    command: str = Field(min_length=1)
    args: tuple[str, ...] = ()
    env: dict[str, str] = Field(default_factory=dict)
    cwd: str | None = None
    token_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    timeout_seconds: float | None = Field(default=None, gt=0)
    orgs: tuple[str, ...] | None = None

    def announcement(self) -> dict[str, Any]:
        """What gateways may show about it: never its command, arguments or environment."""
        return {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "orgs": self.orgs,
            "auth_methods": ["token"] if self.token_env else ["none"],
            "timeout_seconds": self.timeout_seconds,
        }

    def parameters(self, token: str | None) -> StdioServerParameters:
        """How to start this server for one org; the SDK adds only the basic variables of our environment."""
        env = dict(self.env)
        if self.token_env and token is not None:
            env[self.token_env] = token
        return StdioServerParameters(command=self.command, args=list(self.args), env=env, cwd=self.cwd)


def load_stdio_servers(settings: ExecutorSettings) -> dict[str, StdioServer]:
    """The configured servers by id (none when nothing is configured)."""
    text = settings.stdio_servers.strip()
    source = "AGENTPORT_STDIO_SERVERS"
    if not text:
        path = settings.stdio_servers_file or settings.data_dir / DEFAULT_FILE_NAME
        if not path.exists():
            if settings.stdio_servers_file is not None:
                raise StdioConfigError(f"AGENTPORT_STDIO_SERVERS_FILE {path} does not exist")
            return {}
        text, source = Path(path).read_text(encoding="utf-8"), str(path)
    return parse_stdio_servers(text, source)


def parse_stdio_servers(text: str, source: str) -> dict[str, StdioServer]:
    """Servers from JSON: a list of objects, or an object mapping each id to its settings."""
    try:
        raw: Any = json.loads(text)
    except ValueError as exc:
        raise StdioConfigError(f"{source} is not valid JSON: {exc}") from exc
    if isinstance(raw, dict):
        raw = [{"id": key, **value} if isinstance(value, dict) else value for key, value in raw.items()]
    if not isinstance(raw, list):
        raise StdioConfigError(f"{source} must be a JSON list of servers or an object of them by id")
    servers: dict[str, StdioServer] = {}
    for index, item in enumerate(raw):
        try:
            server = StdioServer.model_validate(item)
        except ValidationError as exc:
            raise StdioConfigError(f"{source}: server #{index + 1} is invalid: {exc}") from exc
        if server.id in servers:
            raise StdioConfigError(f"{source}: server id {server.id!r} appears twice")
        servers[server.id] = server
    return servers


async def announce(bus: Bus, servers: dict[str, StdioServer]) -> None:
    """Tell gateways which local servers orgs may install (all executors should share one configuration)."""
    kv = await bus.kv(ANNOUNCE_BUCKET)
    body = [s.announcement() for s in servers.values()]
    await kv.put(ANNOUNCE_KEY, json.dumps(body).encode())
