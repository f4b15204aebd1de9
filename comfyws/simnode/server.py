"""Starts the simulated node under uvicorn and says loudly that it is not a real ComfyUI."""

from __future__ import annotations

import logging

import uvicorn

from comfyws.simnode.app import create_app
from comfyws.simnode.config import SIM_VERSION, SimConfig

logger = logging.getLogger("comfyws.simnode")


def serve(config: SimConfig) -> None:
    """Run until stopped (SIGINT/SIGTERM)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    app = create_app(config)
    storage = app.state.node.storage
    logger.warning(
        "SIMULATED ComfyUI node %r (behaves as ComfyUI %s) on http://%s:%d — no real models run here. "
        "step_delay=%.3fs preview_method=%s checkpoints=%s output=%s",
        config.name, SIM_VERSION, config.host, config.port, config.step_delay, config.preview_method.value,
        ",".join(config.checkpoints), storage.dirs["output"],
    )
    uvicorn.run(app, host=config.host, port=config.port, log_level="warning", ws="websockets-sansio")
