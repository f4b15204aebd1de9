"""A simulated ComfyUI node: the same HTTP, WebSocket and file behaviour as a real node, without a GPU.

A development and test tool only: it validates graphs against a recorded `object_info`, runs them with fake
sampler steps, writes real (synthetic) images and can inject faults through `POST /sim/control`.
"""

from comfyws.simnode.config import SimConfig

__all__ = ["SimConfig"]
