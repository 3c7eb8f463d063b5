"""The gateway as an OAuth 2.1 authorization server for MCP clients (authlib behind an aiohttp adapter)."""
