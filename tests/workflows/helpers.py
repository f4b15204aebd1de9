"""Helpers shared by the workflows tests: the repository paths and a writer for throwaway configs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS_DIR = REPO / "workflows"
CONFIG_PATH = REPO / "config.yaml"


def object_info_path() -> Path:
    """The recorded object_info of a real ComfyUI 0.3.64, which the simulated node serves."""
    return REPO / "comfyws" / "simnode" / "object_info.json"


def load_object_info() -> dict[str, Any]:
    return json.loads(object_info_path().read_text(encoding="utf-8"))


def write_config(path: Path, task_types: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump({"task_types": task_types}), encoding="utf-8")
    return path


TINY_GRAPH: dict[str, Any] = {
    "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny.safetensors"}},
    "2": {"class_type": "CLIPTextEncode", "inputs": {"text": "graph prompt", "clip": ["1", 1]}},
    "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "graph negative", "clip": ["1", 1]}},
    "4": {"class_type": "EmptyLatentImage", "inputs": {"width": 256, "height": 256, "batch_size": 1}},
    "5": {
        "class_type": "KSampler",
        "inputs": {
            "model": ["1", 0],
            "seed": 5,
            "steps": 9,
            "cfg": 6.5,
            "sampler_name": "euler",
            "scheduler": "normal",
            "positive": ["2", 0],
            "negative": ["3", 0],
            "latent_image": ["4", 0],
            "denoise": 1.0,
        },
    },
    "6": {"class_type": "VAEDecode", "inputs": {"samples": ["5", 0], "vae": ["1", 2]}},
    "7": {"class_type": "SaveImage", "inputs": {"images": ["6", 0], "filename_prefix": "tiny"}},
}


def tiny_workflow_dir(root: Path, mapping: dict[str, Any]) -> Path:
    """A workflows folder with one graph `t2i/tiny.json` and its mapping `t2i/tiny.yaml`."""
    folder = root / "workflows" / "t2i"
    folder.mkdir(parents=True)
    (folder / "tiny.json").write_text(json.dumps(TINY_GRAPH), encoding="utf-8")
    (folder / "tiny.yaml").write_text(yaml.safe_dump({"parameter_mapping": mapping}), encoding="utf-8")
    return root / "workflows"


def tiny_task_types(**workflow_extra: Any) -> dict[str, Any]:
    entry = {"workflow_file": "t2i/tiny.json", "mapping_file": "t2i/tiny.yaml", **workflow_extra}
    return {"text_to_image": {"default_workflow": "tiny", "workflows": {"tiny": entry}}}
