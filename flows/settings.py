"""Flow settings (prefix COMFYWS_FLOW_): timeouts and pacing of a job on a node."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class FlowSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="COMFYWS_FLOW_", extra="ignore")

    idle_timeout_s: float = Field(120.0, description="No message from the node for this long = the node hangs")
    total_timeout_s: float | None = Field(None, description="Upper bound of one attempt; None = no bound")
    slot_wait_s: float = Field(3600.0, description="How long a job waits for a free node slot before failing")
    slot_poll_s: float = Field(
        1.0, description="Longest pause between claims while every node is busy (a release in this process wakes "
        "waiting jobs at once; this catches slots freed by other workers)"
    )
    waiter_stale_s: float = Field(
        5.0, description="A job waiting for a slot whose claim loop was not seen for this long holds no slots"
    )
    progress_write_interval_s: float = Field(0.5, description="Least time between progress writes to the ledger")
    artifact_thumbnail_px: int = Field(160, description="Edge of the preview shown in the Prefect artifact")


@lru_cache
def get_flow_settings() -> FlowSettings:
    return FlowSettings()
