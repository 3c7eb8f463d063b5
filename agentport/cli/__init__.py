"""The `agentport` client commands: the gateway's second front door for shells, scripts and CI."""
