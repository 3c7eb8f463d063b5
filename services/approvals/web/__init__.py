"""The approvals web UI: server-rendered pages reached through the gateway's origin."""
