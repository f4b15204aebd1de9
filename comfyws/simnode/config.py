"""Start-up options of the simulated node (one immutable object built by the CLI)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, Field

PACKAGE_DIR = Path(__file__).resolve().parent
DEFAULT_OBJECT_INFO = PACKAGE_DIR / "object_info.json"
# The service's shipped workflows use the first three; the recordings (tests/data/comfyui) used the last, so their
# graphs validate on a simulated node started with its defaults.
DEFAULT_CHECKPOINTS = (
    "sd15-tiny.safetensors", "sdxl-base.safetensors", "svd.safetensors", "tiny-random-sd15.safetensors",
)
# The ComfyUI release whose behaviour the simulator reproduces (tests/data/comfyui); /system_stats reports it as
# `comfyui_version` like a real node, and says `"simulated": true` beside it.
SIM_VERSION = "0.3.64"


class PreviewMethod(StrEnum):
    """ComfyUI's `--preview-method` choices the simulator honours; every one but `none` sends preview frames."""

    NONE = "none"
    AUTO = "auto"
    LATENT2RGB = "latent2rgb"


class SimConfig(BaseModel):
    """Everything the simulated node needs to start; mirrors the `comfyws simnode` flags."""

    host: str = Field("127.0.0.1", description="Interface to bind")
    port: int = Field(8188, description="TCP port for HTTP and WebSocket")
    step_delay: float = Field(0.05, ge=0, description="Seconds per sampler step (changeable at run time)")
    checkpoints: list[str] = Field(default_factory=lambda: list(DEFAULT_CHECKPOINTS), description="ckpt_name choices")
    object_info_path: Path = Field(DEFAULT_OBJECT_INFO, description="Recorded GET /object_info of a real node")
    data_dir: Path | None = Field(None, description="Holds input/, output/, temp/; a temp dir when unset")
    output_dir: Path | None = Field(None, description="Overrides <data_dir>/output")
    fail_rate: float = Field(0.0, ge=0, le=1, description="Probability that a prompt fails mid-run")
    name: str = Field("simnode", description="Name shown in /system_stats")
    vram_gb: float = Field(24.0, gt=0, description="Reported VRAM of the fake device")
    preview_method: PreviewMethod = Field(
        PreviewMethod.NONE, description="Sampler preview frames: none (a real node's default), auto or latent2rgb"
    )
    node_delay: float = Field(0.0, ge=0, description="Seconds every node without sampler steps takes")
