"""Helpers for simulated-node tests: graphs, a WebSocket recorder and binary frame parsing."""

from __future__ import annotations

import asyncio
import json
import struct
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import websockets

TRACES = Path(__file__).resolve().parents[1] / "data" / "comfyui" / "traces"


def sd_graph(*, text: str = "a photo of a cat", seed: int = 42, steps: int = 6, width: int = 64,
             height: int = 48, ckpt: str = "sd15-tiny.safetensors", prefix: str = "sim_sd") -> dict[str, Any]:
    return {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": ckpt}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"text": text, "clip": ["1", 1]}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["1", 1]}},
        "4": {"class_type": "EmptyLatentImage", "inputs": {"width": width, "height": height, "batch_size": 1}},
        "5": {"class_type": "KSampler", "inputs": {
            "model": ["1", 0], "seed": seed, "steps": steps, "cfg": 7.0, "sampler_name": "euler",
            "scheduler": "normal", "positive": ["2", 0], "negative": ["3", 0], "latent_image": ["4", 0],
            "denoise": 1.0}},
        "6": {"class_type": "VAEDecode", "inputs": {"samples": ["5", 0], "vae": ["1", 2]}},
        "7": {"class_type": "SaveImage", "inputs": {"images": ["6", 0], "filename_prefix": prefix}},
    }


@dataclass
class Recorder:
    """Every frame one socket received: text frames parsed, binary frames raw."""

    frames: list[Any] = field(default_factory=list)

    def events(self) -> list[str]:
        return [f["type"] if isinstance(f, dict) else "BINARY" for f in self.frames]

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [f["data"] for f in self.frames if isinstance(f, dict) and f["type"] == kind]

    def binaries(self) -> list[bytes]:
        return [f for f in self.frames if isinstance(f, bytes)]


async def record_until_done(ws: Any, prompt_id: str, *, timeout: float = 20.0) -> Recorder:
    """Read frames until `executing {node: null}` for the prompt (the end of a run)."""
    recorder = Recorder()
    async with asyncio.timeout(timeout):
        while True:
            raw = await ws.recv()
            frame = raw if isinstance(raw, bytes) else json.loads(raw)
            recorder.frames.append(frame)
            if isinstance(frame, dict) and frame["type"] == "executing":
                data = frame["data"]
                if data["node"] is None and data["prompt_id"] == prompt_id:
                    return recorder


async def connect(ws_url: str, client_id: str, *, metadata: bool) -> Any:
    ws = await websockets.connect(f"{ws_url}?clientId={client_id}", max_size=None)
    if metadata:
        await ws.send(json.dumps({"type": "feature_flags", "data": {"supports_preview_metadata": True}}))
    first = json.loads(await ws.recv())
    assert first["type"] == "status" and first["data"]["sid"] == client_id
    if metadata:
        assert json.loads(await ws.recv())["type"] == "feature_flags"
    return ws


def new_client_id() -> str:
    return uuid.uuid4().hex


def parse_preview(frame: bytes) -> tuple[int, dict[str, Any] | None, bytes]:
    """(event type, metadata or None, image bytes) per PROTOCOL.md's binary layout."""
    (event,) = struct.unpack(">I", frame[:4])
    if event == 4:
        (length,) = struct.unpack(">I", frame[4:8])
        return event, json.loads(frame[8:8 + length]), frame[8 + length:]
    (image_format,) = struct.unpack(">I", frame[4:8])
    assert image_format == 1
    return event, None, frame[8:]


async def wait_history(client: httpx.AsyncClient, prompt_id: str, *, timeout: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = (await client.get(f"/history/{prompt_id}")).json()
        if body:
            return body[prompt_id]
        await asyncio.sleep(0.02)  # polling interval
    raise AssertionError(f"{prompt_id} never reached history")


async def wait_for(predicate: Any, *, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await predicate():
            return
        await asyncio.sleep(0.02)  # polling interval
    raise AssertionError("condition not met before the deadline")
