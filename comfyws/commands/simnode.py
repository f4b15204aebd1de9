"""`comfyws simnode`: start a simulated ComfyUI node (a development and test tool)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from comfyws.simnode.config import DEFAULT_CHECKPOINTS, DEFAULT_OBJECT_INFO, PreviewMethod, SimConfig


def simnode(
    port: Annotated[int, typer.Option(help="TCP port for HTTP and WebSocket")] = 8188,
    host: Annotated[str, typer.Option(help="Interface to bind")] = "127.0.0.1",
    step_delay: Annotated[float, typer.Option(help="Seconds per sampler step")] = 0.05,
    checkpoints: Annotated[str, typer.Option(help="Comma-separated checkpoint names")] = ",".join(DEFAULT_CHECKPOINTS),
    object_info: Annotated[Path, typer.Option(help="Recorded object_info.json")] = DEFAULT_OBJECT_INFO,
    data_dir: Annotated[Path | None, typer.Option(help="Holds input/, output/, temp/ (default: a temp dir)")] = None,
    output_dir: Annotated[Path | None, typer.Option(help="Where outputs go (default: <data-dir>/output)")] = None,
    fail_rate: Annotated[float, typer.Option(help="Probability that a prompt fails mid-run")] = 0.0,
    name: Annotated[str, typer.Option(help="Name reported in /system_stats")] = "simnode",
    vram_gb: Annotated[float, typer.Option(help="VRAM the fake device reports")] = 24.0,
    preview_method: Annotated[
        PreviewMethod, typer.Option(help="Sampler preview frames, as ComfyUI's flag: none (its default), auto, latent2rgb")
    ] = PreviewMethod.NONE,
    node_delay: Annotated[float, typer.Option(help="Seconds every node without sampler steps takes")] = 0.0,
) -> None:
    """Start a SIMULATED ComfyUI node: real HTTP/WebSocket protocol, synthetic images, fault injection."""
    from comfyws.simnode.server import serve  # uvicorn and the app load only when the command runs

    config = SimConfig(
        host=host, port=port, step_delay=step_delay,
        checkpoints=[c.strip() for c in checkpoints.split(",") if c.strip()],
        object_info_path=object_info, data_dir=data_dir, output_dir=output_dir, fail_rate=fail_rate,
        name=name, vram_gb=vram_gb, preview_method=preview_method, node_delay=node_delay,
    )
    serve(config)


def register(app: typer.Typer) -> None:
    app.command("simnode")(simnode)
