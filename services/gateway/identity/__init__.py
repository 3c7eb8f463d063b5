"""Who is calling and what they may do: accounts, sessions, API keys, roles, second factor, invitations,
secrets kept as hashes or sealed, and the OAuth authorization server that issues agents their tokens."""
