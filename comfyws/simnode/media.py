"""Synthetic pixels: deterministic images for outputs, step-coloured preview JPEGs and their binary WS frames."""

from __future__ import annotations

import colorsys
import hashlib
import io
import json
import shutil
import struct
import subprocess
from enum import IntEnum
from pathlib import Path
from typing import Any

from PIL import Image

PREVIEW_SIZE = 64
_SEED_GRID = 8


class BinaryEvent(IntEnum):
    PREVIEW_IMAGE = 1
    PREVIEW_IMAGE_WITH_METADATA = 4


def render(material: str, size: tuple[int, int], index: int = 0) -> Image.Image:
    """An image whose pixels depend only on `material` and `index`: a smooth blend of a random colour grid."""
    digest = hashlib.shake_256(f"{material}#{index}".encode()).digest(_SEED_GRID * _SEED_GRID * 3)
    grid = Image.frombytes("RGB", (_SEED_GRID, _SEED_GRID), digest)
    return grid.resize(size, Image.Resampling.BICUBIC)


def preview_jpeg(step: int, total: int) -> bytes:
    """A small JPEG whose hue walks with the step, so a viewer sees the run progress."""
    hue = (step / max(total, 1)) * 0.8
    red, green, blue = (int(c * 255) for c in colorsys.hsv_to_rgb(hue, 0.8, 0.9))
    buffer = io.BytesIO()
    Image.new("RGB", (PREVIEW_SIZE, PREVIEW_SIZE), (red, green, blue)).save(buffer, format="JPEG", quality=80)
    return buffer.getvalue()


def preview_frame(image: bytes, metadata: dict[str, Any] | None) -> bytes:
    """The binary WS frame a real node sends: type 1 (format + JPEG) or type 4 (JSON metadata + JPEG)."""
    if metadata is None:
        return struct.pack(">I", BinaryEvent.PREVIEW_IMAGE) + struct.pack(">I", 1) + image
    encoded = json.dumps(metadata).encode("utf-8")
    return struct.pack(">I", BinaryEvent.PREVIEW_IMAGE_WITH_METADATA) + struct.pack(">I", len(encoded)) + encoded + image


def save_png(image: Image.Image, path: Path) -> None:
    image.save(path, format="PNG", compress_level=1)


def save_animated(frames: list[Image.Image], path: Path, *, fmt: str, fps: float) -> None:
    """Animated WEBP or APNG with every frame kept."""
    duration = int(1000 / max(fps, 0.01))
    options: dict[str, Any] = {"save_all": True, "append_images": frames[1:], "duration": duration, "loop": 0}
    if fmt == "WEBP":
        options.update(quality=60, method=0)
    frames[0].save(path, format=fmt, **options)


def ffmpeg_available() -> bool:
    return shutil.which("ffmpeg") is not None


def save_mp4(frames: list[Image.Image], path: Path, *, fps: float) -> bool:
    """H.264 MP4 through the ffmpeg binary; False when ffmpeg is missing or fails (callers fall back to WEBP)."""
    if not ffmpeg_available():
        return False
    payload = b"".join(_png_bytes(frame) for frame in frames)
    command = ["ffmpeg", "-loglevel", "error", "-y", "-f", "image2pipe", "-framerate", str(fps), "-i", "-",
               "-c:v", "libx264", "-pix_fmt", "yuv420p", "-vf", "scale=trunc(iw/2)*2:trunc(ih/2)*2", str(path)]
    try:
        done = subprocess.run(command, input=payload, capture_output=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0 and path.exists()


def _png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()
