"""A small MCP server over stdio, run by the executor as an operator-configured local server."""

from __future__ import annotations

import os
import sys

from mcp.server.mcpserver import Context, MCPServer

server = MCPServer("stdio-test-server")
# Where `crash` appends one line per invocation, when set (`stdio_config.CRASH_RECORD_ENV`).
CRASH_RECORD_ENV = "STDIO_TEST_CRASH_RECORD"


@server.tool(description="Echo the text back, with the id of the process that answered.")
def echo(text: str) -> dict[str, object]:
    return {"text": text, "pid": os.getpid()}


@server.tool(description="Tell which environment variables this process can see (names only).")
def environment() -> dict[str, object]:
    return {"names": sorted(os.environ), "token": os.environ.get("STDIO_TEST_TOKEN")}


@server.tool(description="Exit the process at once, as a crash would.")
def crash() -> str:
    # Each invocation leaves a line where a test can count it: a resent call would leave two.
    record = os.environ.get(CRASH_RECORD_ENV)
    if record:
        with open(record, "a", encoding="utf-8") as f:
            f.write(f"{os.getpid()}\n")
    os._exit(3)


@server.tool(description="Add a tool named `extra` and announce that the tool list changed.")
async def grow(ctx: Context) -> str:
    server.add_tool(lambda: "extra tool here", name="extra", description="A tool that appeared later.")
    await ctx.notify_tools_changed()
    return "grown"


if __name__ == "__main__":
    print("stdio test server starting", file=sys.stderr)
    server.run("stdio")
