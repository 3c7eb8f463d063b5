"""The operator configuration that runs the test's local stdio server (`AGENTPORT_STDIO_SERVERS`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

STDIO_SCRIPT = Path(__file__).with_name("stdio_server.py")
LOCAL_ID = "local-echo"
# The variable naming the file where the server's `crash` tool appends a line per invocation.
CRASH_RECORD_ENV = "STDIO_TEST_CRASH_RECORD"


def stdio_servers_config() -> list[dict[str, Any]]:
    """What an operator would configure for the test's local server."""
    return [
        {
            "id": LOCAL_ID,
            "name": "Local echo",
            "description": "A local test server run over stdio.",
            "command": sys.executable,
            "args": [str(STDIO_SCRIPT)],
            "env": {"STDIO_TEST_MODE": "1"},
            "token_env": "STDIO_TEST_TOKEN",
            "timeout_seconds": 20,
        }
    ]


def stdio_servers_env() -> str:
    """The value of AGENTPORT_STDIO_SERVERS for a test stack."""
    return json.dumps(stdio_servers_config())
