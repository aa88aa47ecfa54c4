"""The console's settings (env prefix ``KUMKM_CONSOLE_``)."""

from __future__ import annotations

import secrets

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class ConsoleSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KUMKM_CONSOLE_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8000
    public_url: str | None = Field(
        default=None, description="where browsers reach the console (default http://<host>:<port>)"
    )
    issuer: str = Field(default="http://127.0.0.1:8099", description="the OpenID issuer people sign in at")
    client_id: str = "kumkm-console"
    client_secret: SecretStr | None = Field(default=None, description="unset: a public client (PKCE only)")
    audience: str = Field(default="kumkm", description="the audience of the platform's access tokens")
    scope: str = "openid profile email"
    loans_url: str = "http://127.0.0.1:8081"
    catalog_url: str = "http://127.0.0.1:8082"
    notifications_url: str = "http://127.0.0.1:8083"
    monitoring_url: str = "http://127.0.0.1:8084"
    session_secret: SecretStr = Field(
        default_factory=lambda: SecretStr(secrets.token_urlsafe(32)),
        description="signs the session cookie; random per process when unset (sessions end on restart)",
    )
    session_idle_seconds: int = Field(default=1800, ge=60)
    secure_cookies: bool = Field(default=False, description="mark cookies Secure (behind HTTPS)")
    api_timeout: float = Field(default=10.0, gt=0)

    @property
    def base_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    def service_urls(self) -> dict[str, str]:
        return {
            "loans": self.loans_url.rstrip("/"),
            "catalog": self.catalog_url.rstrip("/"),
            "notifications": self.notifications_url.rstrip("/"),
            "monitoring": self.monitoring_url.rstrip("/"),
        }
