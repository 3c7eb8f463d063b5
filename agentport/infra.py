"""Finding NATS and PostgreSQL: the environment, else the servers `make run` started, else start them."""

from __future__ import annotations

import os
from pathlib import Path

from shared.embedded import EmbeddedInfra, read_runtime, start_embedded


def discovered(data_dir: Path) -> dict[str, str]:
    """NATS_URL and DATABASE_URL from the environment, filled in from a running `make run` if unset."""
    found: dict[str, str] = {}
    runtime = read_runtime(data_dir) or {}
    for env, key in (("NATS_URL", "nats_url"), ("DATABASE_URL", "database_url")):
        value = os.environ.get(env) or os.environ.get(f"AGENTPORT_{env}") or runtime.get(key)
        if value:
            found[env] = value
    return found


def ensure_infra(data_dir: Path) -> tuple[dict[str, str], EmbeddedInfra | None]:
    """What is configured, plus embedded servers started for whatever is not."""
    found = discovered(data_dir)
    need_nats, need_pg = "NATS_URL" not in found, "DATABASE_URL" not in found
    if not (need_nats or need_pg):
        return found, None
    infra = start_embedded(data_dir, nats=need_nats, postgres=need_pg)
    if infra.nats_url:
        found["NATS_URL"] = infra.nats_url
    if infra.database_url:
        found["DATABASE_URL"] = infra.database_url
    return found, infra
