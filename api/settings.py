"""Settings of the HTTP facade (env prefix COMFYWS_API_): tokens, registration, admin bootstrap, uploads."""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from comfyws import secret_store
from comfyws.config import get_config
from comfyws.settings import get_settings

RegistrationMode = Literal["open", "token", "closed"]


class ApiSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="COMFYWS_API_", extra="ignore")

    jwt_secret: SecretStr | None = Field(
        None, description="HMAC key that signs access tokens; unset = generated into the data dir (not in production)"
    )
    token_ttl_seconds: int = Field(3600, ge=60, description="Lifetime of a client access token")
    admin_token_ttl_seconds: int = Field(900, ge=30, description="Lifetime of an admin access token")
    admin_refresh_ttl_seconds: int = Field(
        12 * 3600, ge=60, description="Lifetime of an admin refresh token (POST /admin/auth/refresh)"
    )
    registration: Literal["open", "token", "closed", "admin"] | None = Field(
        None,
        description="Overrides config.yaml auth.registration: open, token (needs the registration token) or closed "
        "(admin: the same as closed)",
    )
    registration_token: SecretStr | None = Field(
        None, description="Token partners present to register a client when registration is `token`"
    )
    login_failures_per_minute: int = Field(
        5, ge=1, description="Failed logins/token requests per minute per identity (client id, username)"
    )
    login_failures_per_minute_per_address: int = Field(
        20, ge=1, description="Failed logins/token requests per minute per source address"
    )
    registrations_per_hour: int = Field(20, ge=1, description="Client registrations per hour per source address")
    revocation_sweep_s: float = Field(
        2.0, gt=0, description="How often open WebSockets are re-checked against their identity's token version"
    )
    hash_concurrency: int = Field(2, ge=1, description="Password/secret hashes computed at once (scrypt, ~60 ms)")
    admin_username: str = Field("admin", description="Admin account created on first start")
    admin_password: SecretStr | None = Field(
        None, description="Password of that account; when unset a random one is generated and logged once"
    )
    node_token: SecretStr | None = Field(
        None, description="Token nodes present to register; unset = generated into the data dir (not in production)"
    )
    max_upload_bytes: int = Field(20 * 1024 * 1024, ge=1, description="Largest accepted upload")
    max_body_bytes: int = Field(
        4 * 1024 * 1024, ge=1024, description="Largest request body besides uploads (larger is 413, unread)"
    )
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
    cors_origins: list[str] = Field(
        default_factory=list, description="Front-end origins allowed by CORS, exactly (e.g. https://admin.example)"
    )
    cors_origin_regex: str | None = Field(
        None,
        description="Origins allowed by CORS by pattern; unset = the front ends' ports (frontend_ports) at any host "
        "and any port on loopback; empty = only cors_origins",
    )
    frontend_ports: list[int] = Field(
        default_factory=lambda: [8001, 8002],
        description="Ports the client and admin UIs are served on (`comfyws run` sets them), for the CORS default",
    )

    @model_validator(mode="after")
    def _secrets_usable(self) -> ApiSettings:
        """Production refuses to start without its secrets, naming each; a published default is refused anywhere."""
        given = [
            (secret_store.JWT_SECRET, self.jwt_secret),
            (secret_store.NODE_TOKEN, self.node_token),
            (secret_store.INTERNAL_TOKEN, get_settings().internal_token),
        ]
        if self.registration_mode() == "token":
            given.append((secret_store.REGISTRATION_TOKEN, self.registration_token))
        problems = [
            reason
            for spec, value in given
            if (reason := secret_store.problem(spec, _plain(value))) is not None
        ]
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def cors_pattern(self) -> str | None:
        """The CORS origin pattern: never a wildcard. By default the UIs' ports at any host name (a LAN address
        keeps working) and any port on this machine's loopback (where `comfyws run` and the tests serve them)."""
        if self.cors_origin_regex is not None:
            return self.cors_origin_regex or None
        ports = "|".join(str(port) for port in self.frontend_ports)
        return rf"https?://([^/:@]+:({ports})|(localhost|127\.0\.0\.1|\[::1\])(:\d+)?)"

    def signing_secret(self) -> str:
        return secret_store.resolve(secret_store.JWT_SECRET, _plain(self.jwt_secret))

    def node_secret(self) -> str:
        return secret_store.resolve(secret_store.NODE_TOKEN, _plain(self.node_token))

    def registration_secret(self) -> str:
        return secret_store.resolve(secret_store.REGISTRATION_TOKEN, _plain(self.registration_token))

    def registration_mode(self) -> RegistrationMode:
        """This setting, else config.yaml auth.registration, else closed in production and open elsewhere."""
        if self.registration is not None:
            return "closed" if self.registration == "admin" else self.registration
        configured = get_config().auth.registration
        if configured is not None:
            return configured
        return "closed" if get_settings().environment == "production" else "open"


def _plain(value: SecretStr | str | None) -> str | None:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    return value


@lru_cache
def get_api_settings() -> ApiSettings:
    """Read once; tests call get_api_settings.cache_clear() after changing the environment."""
    return ApiSettings()
