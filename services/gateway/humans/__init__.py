"""The human side: browser sign-in, the people API, the proxy to the approvals web UI and approval
decisions made by people."""
