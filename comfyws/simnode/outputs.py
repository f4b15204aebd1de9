"""What each output node class writes and reports in its `executed` message / history outputs."""

from __future__ import annotations

from typing import Any

from PIL import Image

from comfyws.simnode import media
from comfyws.simnode.graph import Shape
from comfyws.simnode.storage import FolderType, Storage

MAX_ANIMATED_SIDE = 512
MIN_FRAMES = 2


def write_outputs(storage: Storage, class_type: str, inputs: dict[str, Any], shape: Shape) -> dict[str, Any]:
    """Write the node's files; returns its UI output (`{"images": [...], "animated"?: [true]}`) or {}."""
    prefix = str(inputs.get("filename_prefix") or "ComfyUI")
    fps = float(inputs.get("fps") or inputs.get("frame_rate") or 6.0)
    if class_type == "PreviewImage":
        return _stills(storage, storage.temp_prefix(), FolderType.TEMP, shape)
    if class_type == "SaveAnimatedWEBP":
        return _animation(storage, prefix, shape, fmt="WEBP", extension="webp", fps=fps)
    if class_type == "SaveAnimatedPNG":
        return _animation(storage, prefix, shape, fmt="PNG", extension="png", fps=fps)
    if class_type in ("SaveVideo", "SaveWEBM", "VHS_VideoCombine"):
        return _video(storage, prefix, shape, fps=fps)
    if "images" in inputs:
        return _stills(storage, prefix, FolderType.OUTPUT, shape)
    return {}


def _stills(storage: Storage, prefix: str, folder: FolderType, shape: Shape) -> dict[str, Any]:
    directory, subfolder, names = storage.save_path(prefix, folder, "png", shape.count)
    images = []
    for index, name in enumerate(names):
        media.save_png(media.render(shape.material, (shape.width, shape.height), index), directory / name)
        images.append({"filename": name, "subfolder": subfolder, "type": folder.value})
    return {"images": images}


def _frames(shape: Shape) -> list[Image.Image]:
    scale = min(1.0, MAX_ANIMATED_SIDE / max(shape.width, shape.height))
    size = (max(1, int(shape.width * scale)), max(1, int(shape.height * scale)))
    return [media.render(shape.material, size, index) for index in range(max(shape.count, MIN_FRAMES))]


def _animation(storage: Storage, prefix: str, shape: Shape, *, fmt: str, extension: str, fps: float) -> dict[str, Any]:
    directory, subfolder, names = storage.save_path(prefix, FolderType.OUTPUT, extension)
    media.save_animated(_frames(shape), directory / names[0], fmt=fmt, fps=fps)
    return {"images": [{"filename": names[0], "subfolder": subfolder, "type": "output"}], "animated": [True]}


def _video(storage: Storage, prefix: str, shape: Shape, *, fps: float) -> dict[str, Any]:
    frames = _frames(shape)
    directory, subfolder, names = storage.save_path(prefix, FolderType.OUTPUT, "mp4")
    if not media.save_mp4(frames, directory / names[0], fps=fps):
        # Without ffmpeg the video becomes an animated WEBP; clients see the extension and Content-Type.
        return _animation(storage, prefix, shape, fmt="WEBP", extension="webp", fps=fps)
    return {"images": [{"filename": names[0], "subfolder": subfolder, "type": "output"}], "animated": [True]}
