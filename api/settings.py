"""Settings of the HTTP facade (env prefix COMFYWS_API_): tokens, registration, admin bootstrap, uploads."""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from comfyws.settings import get_settings

PLACEHOLDER_SECRET = "change-me-development-only"


class ApiSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="COMFYWS_API_", extra="ignore")

    jwt_secret: SecretStr = Field(
        SecretStr(PLACEHOLDER_SECRET), description="HMAC key that signs access tokens"
    )
    token_ttl_seconds: int = Field(3600, ge=60, description="Lifetime of an access token")
    registration: Literal["open", "admin"] = Field(
        "open", description="open: anyone may register a client; admin: only with an admin token"
    )
    admin_username: str = Field("admin", description="Admin account created on first start")
    admin_password: SecretStr | None = Field(
        None, description="Password of that account; when unset a random one is generated and logged once"
    )
    node_token: SecretStr | None = Field(
        None, description="Token nodes present to register and heartbeat; unset = only admins may"
    )
    max_upload_bytes: int = Field(20 * 1024 * 1024, ge=1, description="Largest accepted upload")
    max_image_pixels: int = Field(
        50_000_000, ge=1, description="Largest accepted upload in pixels (width x height); larger is 413"
    )
    max_prompt_chars: int = Field(
        20_000, ge=1, le=200_000, description="Longest accepted string parameter (prompt, negative prompt...)"
    )
    allowed_image_types: list[str] = Field(
        default_factory=lambda: ["PNG", "JPEG", "WEBP"], description="Pillow formats accepted as uploads"
    )
    prefect_api_url: str | None = Field(
        None, description="Prefect server API, e.g. http://127.0.0.1:4200/api; default PREFECT_API_URL"
    )
    prefect_retries: int = Field(
        4, ge=0, description="Extra tries when the Prefect server answers 503/locked"
    )
    prefect_concurrency: int = Field(
        4, ge=1, description="Flow runs created at once (a SQLite Prefect server locks under a crowd)"
    )
    launch_wait_s: float = Field(
        2.0, ge=0, description="How long a submit waits for its flow run before answering with status pending"
    )
    dispatch_retry_s: float = Field(0.5, gt=0, description="First pause before retrying a busy scheduler")
    dispatch_max_retry_s: float = Field(10.0, gt=0, description="Longest pause between retries of one job")
    migrate_on_start: bool = Field(True, description="Create the databases and apply migrations at start-up")
    access_log: bool = Field(True, description="Record client requests in the client database")
    cors_origins: list[str] = Field(default_factory=lambda: ["*"], description="Origins allowed by CORS")

    @model_validator(mode="after")
    def _no_placeholder_outside_development(self) -> ApiSettings:
        environment = get_settings().environment
        if (
            environment not in ("development", "test")
            and self.jwt_secret.get_secret_value() == PLACEHOLDER_SECRET
        ):
            raise ValueError("COMFYWS_API_JWT_SECRET must be set outside development")
        return self


@lru_cache
def get_api_settings() -> ApiSettings:
    """Read once; tests call get_api_settings.cache_clear() after changing the environment."""
    return ApiSettings()
