"""The services `agentport serve` can run, by name."""

from __future__ import annotations

import importlib
from types import ModuleType

SERVICE_NAMES = ("gateway", "policy", "approvals", "executor", "audit")


def service_module(name: str) -> ModuleType:
    """The `main` module of a service, which offers `spec()` and `settings()`."""
    if name not in SERVICE_NAMES:
        raise ValueError(f"unknown service {name!r}; choose one of {', '.join(SERVICE_NAMES)} or all")
    return importlib.import_module(f"services.{name}.main")
