"""How each MCP client is pointed at AgentPort with a new key (the same shapes as the README)."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass


@dataclass(frozen=True)
class ClientConfig:
    client: str
    where: str
    text: str


def client_configs(mcp_url: str, key: str) -> list[ClientConfig]:
    remote = {"url": mcp_url, "headers": {"X-API-Key": key}}
    return [
        ClientConfig(
            "Claude Desktop",
            "claude_desktop_config.json",
            json.dumps({"mcpServers": {"agentport": remote}}, indent=2),
        ),
        ClientConfig(
            "Claude Code",
            "a terminal",
            "claude mcp add --transport http agentport "
            f"{shlex.quote(mcp_url)} --header {shlex.quote('X-API-Key: ' + key)}",
        ),
        ClientConfig("Cursor", "~/.cursor/mcp.json", json.dumps({"mcpServers": {"agentport": remote}}, indent=2)),
        ClientConfig(
            "VS Code",
            ".vscode/mcp.json",
            json.dumps({"servers": {"agentport": {"type": "http", **remote}}}, indent=2),
        ),
    ]
