"""The operator's stdio server configuration: validated strictly, and announced without its secrets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from services.executor.stdio import StdioConfigError, load_stdio_servers, parse_stdio_servers
from shared.settings import ExecutorSettings


def test_servers_are_read_from_a_list_or_an_object_by_id() -> None:
    listed = parse_stdio_servers(json.dumps([{"id": "files", "name": "Files", "command": "files-mcp"}]), "env")
    by_id = parse_stdio_servers(json.dumps({"files": {"name": "Files", "command": "files-mcp"}}), "env")
    assert listed == by_id
    assert listed["files"].args == ()


def test_the_announcement_never_carries_command_arguments_or_environment() -> None:
    servers = parse_stdio_servers(
        json.dumps(
            [
                {
                    "id": "db",
                    "name": "DB",
                    "command": "db-mcp",
                    "args": ["--password", "hunter2"],
                    "env": {"DB_PASSWORD": "hunter2"},
                    "token_env": "DB_TOKEN",
                }
            ]
        ),
        "env",
    )
    announced = json.dumps(servers["db"].announcement())
    assert "hunter2" not in announced and "db-mcp" not in announced
    assert servers["db"].announcement()["auth_methods"] == ["token"]


def test_the_org_token_reaches_the_process_only_under_token_env() -> None:
    server = parse_stdio_servers(
        json.dumps([{"id": "a", "name": "A", "command": "a", "env": {"X": "1"}, "token_env": "A_TOKEN"}]), "env"
    )["a"]
    assert server.parameters("t0k").env == {"X": "1", "A_TOKEN": "t0k"}
    assert server.parameters(None).env == {"X": "1"}


@pytest.mark.parametrize(
    "raw",
    [
        "not json",
        json.dumps([{"id": "Bad Id", "name": "x", "command": "x"}]),
        json.dumps([{"id": "a", "name": "x"}]),
        json.dumps([{"id": "a", "name": "x", "command": "x", "unknown": 1}]),
        json.dumps([{"id": "a", "name": "x", "command": "x"}, {"id": "a", "name": "y", "command": "y"}]),
    ],
)
def test_invalid_configuration_is_refused_at_start(raw: str) -> None:
    with pytest.raises(StdioConfigError):
        parse_stdio_servers(raw, "AGENTPORT_STDIO_SERVERS")


def test_servers_come_from_the_environment_or_the_operators_file(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setenv("AGENTPORT_DATA_DIR", str(tmp_path))
    assert load_stdio_servers(ExecutorSettings()) == {}
    (tmp_path / "stdio_servers.json").write_text(json.dumps([{"id": "f", "name": "F", "command": "f"}]))
    assert set(load_stdio_servers(ExecutorSettings())) == {"f"}
    monkeypatch.setenv("AGENTPORT_STDIO_SERVERS", json.dumps([{"id": "e", "name": "E", "command": "e"}]))
    assert set(load_stdio_servers(ExecutorSettings())) == {"e"}
    monkeypatch.delenv("AGENTPORT_STDIO_SERVERS")
    monkeypatch.setenv("AGENTPORT_STDIO_SERVERS_FILE", str(tmp_path / "missing.json"))
    with pytest.raises(StdioConfigError, match="does not exist"):
        load_stdio_servers(ExecutorSettings())
