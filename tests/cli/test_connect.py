"""`agentport connect`: the MCP entry for each app, printed or merged into its settings without losing the rest."""

from __future__ import annotations

import json
import shlex
from typing import Any

from tests.cli.conftest import Shell

KEY = "ap_test_connect_key"


async def test_write_merges_into_claude_desktops_settings_keeping_the_rest(offline: Shell) -> None:
    path = offline.home / ".config" / "Claude" / "claude_desktop_config.json"
    path.parent.mkdir(parents=True)
    original: dict[str, Any] = {
        "mcpServers": {"files": {"command": "npx", "args": ["files-server"]}},
        "globalShortcut": "Ctrl+Space",
    }
    path.write_text(json.dumps(original))

    ran = await offline.run("connect", "claude-desktop", "--write", "--key", KEY)
    assert ran.code == 0, ran
    merged = json.loads(path.read_text())
    assert merged["globalShortcut"] == "Ctrl+Space"
    assert merged["mcpServers"]["files"] == original["mcpServers"]["files"]
    entry = merged["mcpServers"]["agentport"]
    assert entry["command"] == "npx"
    assert f"{offline.env['AGENTPORT_URL']}/mcp" in entry["args"]
    assert entry["env"] == {"AGENTPORT_API_KEY": KEY}
    assert json.loads(path.with_name(path.name + ".bak").read_text()) == original


async def test_write_replaces_only_its_own_entry_in_cursor_settings(offline: Shell) -> None:
    path = offline.home / "cursor.json"
    path.write_text(json.dumps({"mcpServers": {"agentport": {"url": "http://old/mcp"}, "other": {"url": "http://o"}}}))

    ran = await offline.run("connect", "cursor", "--write", "--config", str(path), "--key", KEY, "--json")
    assert ran.code == 0, ran
    assert ran.json()["replaced"] is True
    servers = json.loads(path.read_text())["mcpServers"]
    assert servers["other"] == {"url": "http://o"}
    assert servers["agentport"] == {"url": f"{offline.env['AGENTPORT_URL']}/mcp", "headers": {"X-API-Key": KEY}}


async def test_vscode_entry_goes_under_servers_with_the_http_type(offline: Shell) -> None:
    ran = await offline.run("connect", "vscode", "--write", env={"AGENTPORT_API_KEY": KEY})
    assert ran.code == 0, ran
    settings = json.loads((offline.home / ".vscode" / "mcp.json").read_text())
    assert settings == {
        "servers": {
            "agentport": {"type": "http", "url": f"{offline.env['AGENTPORT_URL']}/mcp", "headers": {"X-API-Key": KEY}}
        }
    }


async def test_claude_code_prints_the_mcp_add_command(offline: Shell) -> None:
    ran = await offline.run("connect", "claude-code", "--key", KEY)
    assert ran.code == 0, ran
    assert shlex.split(ran.stdout) == [
        "claude",
        "mcp",
        "add",
        "--transport",
        "http",
        "agentport",
        f"{offline.env['AGENTPORT_URL']}/mcp",
        "--header",
        f"X-API-Key: {KEY}",
    ]


async def test_claude_code_write_keeps_the_rest_of_claude_json(offline: Shell) -> None:
    path = offline.home / ".claude.json"
    path.write_text(json.dumps({"numStartups": 7, "projects": {"/src": {"mcpServers": {}}}}))
    ran = await offline.run("connect", "claude-code", "--write", "--key", KEY)
    assert ran.code == 0, ran
    settings = json.loads(path.read_text())
    assert (settings["numStartups"], settings["projects"]) == (7, {"/src": {"mcpServers": {}}})
    assert settings["mcpServers"]["agentport"]["type"] == "http"


async def test_settings_that_are_not_plain_json_are_left_untouched(offline: Shell) -> None:
    path = offline.home / "mcp.json"
    text = '{\n  // my servers\n  "servers": {}\n}\n'
    path.write_text(text)
    ran = await offline.run("connect", "vscode", "--write", "--config", str(path), "--key", KEY)
    assert ran.code == 1
    assert ran.stderr.startswith(f"agentport: {path} is not plain JSON")
    assert path.read_text() == text
    assert not path.with_name("mcp.json.bak").exists()


async def test_connect_without_any_api_key_says_how_to_get_one(offline: Shell) -> None:
    ran = await offline.run("connect", "cursor")
    assert ran.code == 1
    assert ran.stderr.startswith("agentport: connect needs an API key")
