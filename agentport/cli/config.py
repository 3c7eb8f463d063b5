"""Where the CLI talks to and who it is: flags, environment, and the 0600 config file `login` writes."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from agentport.cli.exits import CliError

DEFAULT_URL = "http://127.0.0.1:4747"
LOGGING_IN = "login"  # the source of a credential `agentport login` is checking before it stores it


class CliSettings(BaseSettings):
    """The CLI's environment, read once: AGENTPORT_URL, AGENTPORT_API_KEY, XDG_CONFIG_HOME (APPDATA on Windows)."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    url: str | None = Field(default=None, validation_alias="AGENTPORT_URL")
    api_key: str | None = Field(default=None, validation_alias="AGENTPORT_API_KEY")
    config_home: Path | None = Field(default=None, validation_alias="XDG_CONFIG_HOME")
    appdata: Path | None = Field(default=None, validation_alias="APPDATA")

    def config_path(self) -> Path:
        """`$XDG_CONFIG_HOME/agentport/config.json`, defaulting to `~/.config`."""
        home = self.config_home if self.config_home and self.config_home.is_absolute() else None
        return (home or Path.home() / ".config") / "agentport" / "config.json"


@dataclass(frozen=True)
class Credential:
    """How requests authenticate: an agent's API key or a human's bearer token."""

    kind: str  # "api_key" or "token"
    value: str
    source: str  # "environment", the config file's path, or LOGGING_IN

    def headers(self) -> dict[str, str]:
        if self.kind == "api_key":
            return {"X-API-Key": self.value}
        return {"Authorization": f"Bearer {self.value}"}


def load(path: Path) -> dict[str, Any]:
    """The stored config, or `{}` when there is none."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise CliError(f"cannot read {path}: {exc}; fix it or run `agentport login` again") from exc
    if not isinstance(data, dict):
        raise CliError(f"{path} is not a JSON object; run `agentport login` again")
    return data


def save(path: Path, data: dict[str, Any]) -> None:
    """Write the config atomically, readable by its owner only (directory 0700, file 0600)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    fd, tmp = tempfile.mkstemp(prefix=".config-", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as out:
            os.fchmod(out.fileno(), 0o600)
            json.dump(data, out, indent=2)
            out.write("\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def gateway_url(flag: str | None, settings: CliSettings, stored: dict[str, Any]) -> str:
    """`--url`, else AGENTPORT_URL, else the URL used at login, else the local default."""
    url = flag or settings.url or stored.get("url") or DEFAULT_URL
    if not str(url).startswith(("http://", "https://")):
        raise CliError(f"the gateway URL must start with http:// or https://, not {url!r}")
    return str(url).rstrip("/")


def credential(settings: CliSettings, stored: dict[str, Any], path: Path) -> Credential | None:
    """AGENTPORT_API_KEY if set, else what `agentport login` stored."""
    if settings.api_key:
        return Credential("api_key", settings.api_key.strip(), "environment")
    for kind in ("api_key", "token"):
        value = stored.get(kind)
        if isinstance(value, str) and value:
            return Credential(kind, value, str(path))
    return None
