"""The one settings object of the notifications service (env prefix ``KUMKM_NOTIFICATIONS_``)."""

from __future__ import annotations

from typing import Self

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class NotificationsSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KUMKM_NOTIFICATIONS_", extra="ignore")

    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(default=1025, ge=1, le=65535)
    smtp_sender: str = "KUMKM <noreply@kumkm.example>"
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False
    smtp_timeout: float = Field(default=15.0, gt=0, description="seconds for one SMTP conversation")
    smtp_keep_open: int = Field(
        default=16,
        ge=0,
        le=1000,
        description="idle SMTP connections kept for the next emails (0: one per email)",
    )

    officers_party_id: str = Field(default="officers", description="contact that receives referred requests")

    gateway_url: str | None = Field(default=None, description="HTTP gateway for sms and whatsapp")
    gateway_token: SecretStr | None = None
    gateway_idempotent: bool = Field(
        default=False, description="the gateway de-duplicates on the Idempotency-Key header"
    )

    webhook_timeout: float = Field(default=10.0, gt=0, description="seconds for one webhook request")

    max_attempts: int = Field(default=8, ge=1, le=100)
    backoff_base: float = Field(default=2.0, gt=0, description="seconds before the first retry")
    backoff_cap: float = Field(default=900.0, gt=0, description="longest wait between two attempts")
    backoff_jitter: float = Field(default=0.2, ge=0, lt=1)

    worker_batch: int = Field(default=100, ge=1, le=1000, description="deliveries claimed per pass")
    worker_concurrency: int = Field(default=32, ge=1, le=1000, description="sends in flight at once")
    worker_poll_interval: float = Field(default=1.0, gt=0, description="fallback poll when no NOTIFY")
    send_lease: float = Field(
        default=120.0,
        gt=0,
        description="a delivery still 'sending' this long after its claim is treated as orphaned",
    )

    @model_validator(mode="after")
    def _lease_outlives_a_send(self) -> Self:
        # A lease shorter than a send would let reconcile settle a send that is still in flight.
        longest = max(self.smtp_timeout, self.webhook_timeout)
        if self.send_lease <= longest:
            msg = f"send_lease ({self.send_lease}s) must be longer than the longest send timeout ({longest}s)"
            raise ValueError(msg)
        return self
