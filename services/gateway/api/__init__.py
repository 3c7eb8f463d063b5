"""The REST API under /api for agents, scripts and the web UI: its routes, the JSON views they answer
with, and reading query strings."""
