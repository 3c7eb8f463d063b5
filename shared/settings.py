"""Configuration read once from the environment and passed down explicitly."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from shared.bus import StreamPolicy


class CommonSettings(BaseSettings):
    """Settings every service shares: where the bus and database are, logging, health port."""

    model_config = SettingsConfigDict(env_prefix="AGENTPORT_", extra="ignore", populate_by_name=True)

    nats_url: str | None = Field(default=None, validation_alias=AliasChoices("NATS_URL", "AGENTPORT_NATS_URL"))
    database_url: str | None = Field(
        default=None, validation_alias=AliasChoices("DATABASE_URL", "AGENTPORT_DATABASE_URL")
    )
    data_dir: Path = Path(".agentport")
    namespace: str = Field(default="agentport", pattern=r"^[a-z][a-z0-9_]{0,40}$")
    log_level: str = "info"
    log_format: str = Field(default="console", pattern="^(console|json)$")
    health_host: str = "127.0.0.1"
    health_port: int = 0
    instance_id: str = ""
    # The event stream's retention: events older than this, or past this size, are removed (read models keep
    # their state in PostgreSQL, and configuration events are kept in a stream of their own without limits).
    stream_max_age_seconds: float = Field(default=7 * 24 * 3600, gt=0)
    stream_max_bytes: int = Field(default=1024**3, gt=0)
    stream_replicas: int = Field(default=1, ge=1, le=5)
    # How long a publish is retried (with the same message id, so it is stored once) while NATS is unreachable.
    publish_retry_seconds: float = Field(default=30.0, gt=0, le=110)

    def stream_policy(self) -> StreamPolicy:
        """What the bus creates streams with."""
        from shared.bus import StreamPolicy

        return StreamPolicy(
            max_age=self.stream_max_age_seconds,
            max_bytes=self.stream_max_bytes,
            replicas=self.stream_replicas,
            publish_retry=self.publish_retry_seconds,
        )


class GatewaySettings(CommonSettings):
    """The gateway: public HTTP endpoint, long-poll budgets."""

    host: str = "127.0.0.1"
    port: int = 4747
    # Empty: built from host and port (http://127.0.0.1:4747 by default), so links follow a moved port.
    base_url: str = ""
    await_budget_seconds: float = Field(default=240.0, gt=0)
    call_wait_seconds: float = Field(default=60.0, gt=0)
    keepalive_seconds: float = Field(default=10.0, gt=0)
    install_wait_seconds: float = Field(default=30.0, gt=0)
    upstream_allow: str = ""
    session_ttl_seconds: int = 12 * 3600
    login_max_failures: int = 5
    default_expiry_seconds: int = Field(default=600, gt=0)
    oauth_access_token_seconds: int = Field(default=3600, gt=0)
    oauth_refresh_token_seconds: int = Field(default=30 * 24 * 3600, gt=0)
    oauth_code_seconds: int = Field(default=300, gt=0, le=600)
    upstream_oauth_flow_seconds: int = Field(default=900, gt=0)
    approvals_ui_url: str = ""  # Where the approvals service serves the web UI; empty: as it announces on the bus.
    internal_url: str = ""  # How other services reach this gateway; empty: its bound address.
    secret_key: SecretStr | None = None  # Encrypts two-factor secrets at rest; empty: a key file in data_dir.
    invitation_ttl_seconds: int = Field(default=7 * 24 * 3600, gt=0)

    @model_validator(mode="after")
    def _default_base_url(self) -> GatewaySettings:
        if not self.base_url:
            # A wildcard bind is reachable on loopback; links must name an address a browser can open.
            host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
            self.base_url = f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"
        self.base_url = self.base_url.rstrip("/")
        return self


class PolicySettings(CommonSettings):
    """The policy service."""


class ApprovalsSettings(CommonSettings):
    """The approvals service: expiry defaults."""

    default_expiry_seconds: int = Field(default=600, gt=0)
    expiry_check_seconds: float = Field(default=1.0, gt=0)
    ui_url: str = ""  # The web UI's address as the gateway should reach it; empty: the bound address.


class ExecutorSettings(CommonSettings):
    """The executor: its private key, upstream guard and timeouts."""

    executor_private_key: SecretStr | None = None
    upstream_allow: str = ""
    call_timeout_seconds: float = Field(default=60.0, gt=0)
    max_response_bytes: int = Field(default=512 * 1024, gt=0)
    stdio_servers: str = ""
    stdio_servers_file: Path | None = None
    connect_timeout_seconds: float = Field(default=10.0, gt=0)
    ack_wait_seconds: float = Field(default=30.0, gt=0)
    # Calls of one org running at once in one executor process (of its 32): one org cannot take them all.
    max_calls_per_org: int = Field(default=8, gt=0)
    upstream_oauth_clients: SecretStr | None = None
    upstream_oauth_refresh_skew_seconds: float = Field(default=30.0, ge=0)


class AuditSettings(CommonSettings):
    """The audit service."""
