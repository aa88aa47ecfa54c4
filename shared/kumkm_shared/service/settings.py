"""Infrastructure settings every service shares (env prefix ``KUMKM_``).

Domain settings of one service live in that service, with the prefix ``KUMKM_<SERVICE>_``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class InfraSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KUMKM_", extra="ignore")

    nats_url: str = Field(default="nats://127.0.0.1:4222", description="NATS URL(s), comma-separated")
    nats_creds: Path | None = Field(
        default=None, description="the service's NATS .creds file (operator mode, JWT + nkey seed)"
    )
    # User and password: only for a server configured with plain users (none of deploy/ is).
    nats_user: str | None = None
    nats_password: SecretStr | None = None
    nats_inbox_prefix: str | None = Field(default=None, description="private inbox prefix, e.g. _INBOX_loans")
    database_url: SecretStr = Field(default=SecretStr("postgresql://postgres@127.0.0.1:5432/postgres"))
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    http_max_body_bytes: int = Field(
        default=1024 * 1024,
        ge=1024,
        le=64 * 1024 * 1024,
        description="the largest request body the HTTP API reads (bytes); a larger one answers 413",
    )
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: str = "INFO"
    stream_replicas: int = Field(default=1, ge=1, le=5)
    consumer_batch: int = Field(default=64, ge=1, le=1000, description="messages fetched per pull request")
    consumer_workers: int = Field(
        default=1, ge=1, le=256, description="messages a durable handles concurrently (1 = one at a time)"
    )
    # Batch durables (``ConsumerDecl.batch``, every declared one): one transaction per batch of up to this
    # many messages. The pull returns the first message the moment it is there, then waits at most
    # ``batch_max_wait`` seconds for the rest of a batch (none when a backlog fills it at once).
    batch_size: int = Field(
        default=500, ge=1, le=5000, description="messages applied in one transaction by a batch durable"
    )
    batch_max_wait: float = Field(
        default=0.005,
        gt=0,
        le=30,
        description="seconds a batch durable waits, after the first message, for the rest of a batch",
    )
    db_pool_max: int = Field(default=10, ge=2, le=200)
    drain_timeout: float = Field(default=10.0, ge=0)
    # Sign-in (``docs/rules/access.md``). There is no switch that turns it off: a service without an issuer
    # does not start.
    auth_issuer: str | None = Field(
        default=None, description="the OpenID issuer whose access tokens are accepted"
    )
    auth_audience: str = Field(default="kumkm", description="the audience every access token must name")
    auth_jwks_url: str | None = Field(
        default=None, description="the issuer's JWKS; default: from its discovery"
    )
    auth_roles_claim: str = "kumkm_roles"
    auth_regions_claim: str = "kumkm_regions"
    auth_org_claim: str = "kumkm_org"
    auth_kind_claim: str = "kumkm_kind"
    auth_leeway_seconds: float = Field(
        default=30.0, ge=0, le=300, description="clock skew allowed on exp/nbf"
    )
    auth_algorithms: list[str] = Field(default=["RS256", "PS256", "ES256"])

    def nats_servers(self) -> list[str]:
        return [u.strip() for u in self.nats_url.split(",") if u.strip()]
