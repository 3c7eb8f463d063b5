"""The agent side: the /mcp endpoint and its ASGI bridge, the meta-tools agents call, and tool calls from
request to outcome (records, answers, tool-change notices)."""
