"""Process-wide settings from the environment (prefix COMFYWS_): where files live and how parts find each other."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="COMFYWS_", extra="ignore")

    environment: str = Field("development", description="development, test or production")
    config_path: Path = Field(PROJECT_ROOT / "config.yaml", description="The operator's config.yaml")
    data_dir: Path = Field(PROJECT_ROOT / "data", description="SQLite files, Prefect home, logs")
    outputs_dir: Path = Field(PROJECT_ROOT / "outputs", description="Where result files are stored")
    uploads_dir: Path = Field(PROJECT_ROOT / "uploads", description="Where client uploads are stored")
    workflows_dir: Path = Field(PROJECT_ROOT / "workflows", description="Workflow graphs and mappings")
    api_url: str = Field("http://127.0.0.1:8000", description="Where workers reach the API (progress events)")
    internal_token: str | None = Field(
        None,
        repr=False,
        description="Shared secret workers use to post progress to the API; unset = generated into the data dir "
        "(required in production). Read it through comfyws.secret_store.internal_token()",
    )


@lru_cache
def get_settings() -> Settings:
    """Settings read once; tests call get_settings.cache_clear() after changing the environment."""
    return Settings()
