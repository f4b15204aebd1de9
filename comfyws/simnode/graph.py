"""Graph helpers: cache signatures, ComfyUI's execution order, and the picture size/count a graph asks for."""

from __future__ import annotations

import hashlib
import json
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from comfyws.simnode.validation import is_link

Graph = dict[str, Any]
MAX_SIDE = 1024
MAX_FRAMES = 32
_COUNT_KEYS = ("video_frames", "length", "batch_size", "amount")
# Nodes that join their inputs' batches (ComfyUI's ImageBatch / LatentBatch): the counts add up.
_JOINING = {"ImageBatch", "LatentBatch"}
# Pixel filters whose run time grows with radius x pixels: the recorded ImageBlur (radius 31 over 4 x 512 x 512)
# took about 1.4 s on the recording machine's CPU; the simulator takes as long, so an interrupt or a queue edit
# lands mid-run as it did there (tests/data/comfyui/traces/08, 09).
_FILTER_RADIUS = {"ImageBlur": "blur_radius", "ImageSharpen": "sharpen_radius"}
_FILTER_SECONDS_PER_UNIT = 1.4 / (31 * 4 * 512 * 512)


def signatures(graph: Graph, *, file_digest: Callable[[Graph, str], str]) -> dict[str, str]:
    """A cache key per node from its class, widget values and upstream keys (like ComfyUI's input signature)."""
    memo: dict[str, str] = {}

    def sign(node_id: str) -> str:
        if node_id not in memo:
            node = graph[node_id]
            parts: dict[str, Any] = {}
            for name, value in sorted(node.get("inputs", {}).items()):
                parts[name] = ["link", sign(value[0]), value[1]] if is_link(value) and value[0] in graph else value
            text = json.dumps([node["class_type"], parts, file_digest(graph, node_id)], sort_keys=True, default=str)
            memo[node_id] = hashlib.sha256(text.encode()).hexdigest()
        return memo[node_id]

    return {node_id: sign(node_id) for node_id in graph}


class ExecutionList:
    """ComfyUI's ExecutionList: stage from the outputs, then pick ready nodes with its UX-friendly heuristic."""

    def __init__(self, graph: Graph, *, is_output: Callable[[str], bool], cached: set[str]) -> None:
        self._graph = graph
        self._is_output = is_output
        self._cached = cached
        self.pending: dict[str, bool] = {}
        self._block_count: dict[str, int] = {}
        self._blocking: dict[str, set[str]] = {}

    def add_node(self, node_id: str) -> None:
        stack = [node_id]
        links: list[tuple[str, str]] = []
        while stack:
            current = stack.pop()
            if current in self.pending:
                continue
            self.pending[current] = True
            self._block_count[current] = 0
            self._blocking[current] = set()
            for value in self._graph[current].get("inputs", {}).values():
                if is_link(value) and value[0] not in self._cached:
                    stack.append(value[0])
                    links.append((value[0], current))
        for source, target in links:
            self._add_link(source, target)

    def _add_link(self, source: str, target: str) -> None:
        self.add_node(source)
        if target not in self._blocking[source]:
            self._blocking[source].add(target)
            self._block_count[target] += 1

    def next(self) -> str | None:
        ready = [node for node in self.pending if self._block_count[node] == 0]
        return self._pick(ready) if ready else None

    def done(self, node_id: str) -> None:
        del self.pending[node_id]
        for target in self._blocking.pop(node_id, set()):
            self._block_count[target] -= 1

    def _pick(self, ready: list[str]) -> str:
        for node in ready:
            if self._is_output(self._graph[node]["class_type"]):
                return node
        for node in ready:
            if any(self._is_output(self._graph[t]["class_type"]) for t in self._blocking[node]):
                return node
        for node in ready:
            for target in self._blocking[node]:
                if any(self._is_output(self._graph[t]["class_type"]) for t in self._blocking[target]):
                    return node
        return ready[0]


@dataclass(frozen=True)
class Shape:
    """What an output node would receive: picture size, how many pictures, and what makes them unique."""

    width: int
    height: int
    count: int
    material: str


def ancestors(graph: Graph, node_id: str) -> list[str]:
    """Upstream nodes in breadth-first order, nearest first."""
    seen: list[str] = []
    queue = deque([node_id])
    while queue:
        current = queue.popleft()
        for value in graph.get(current, {}).get("inputs", {}).values():
            if is_link(value) and value[0] in graph and value[0] not in seen:
                seen.append(value[0])
                queue.append(value[0])
    return seen


def describe(graph: Graph, node_id: str, *, image_size: Callable[[Graph, str], tuple[int, int] | None]) -> Shape:
    """Size from the nearest width/height (or loaded image), count from the batches that flow into the node."""
    upstream = ancestors(graph, node_id)
    size: tuple[int, int] | None = None
    for upstream_id in upstream:
        inputs = graph[upstream_id].get("inputs", {})
        size = size or _size_of(inputs) or image_size(graph, upstream_id)
    width, height = size or (512, 512)
    material = json.dumps(
        [node_id, [[u, graph[u]["class_type"], _widgets(graph[u])] for u in sorted(upstream)]], default=str
    )
    count = max((batch_count(graph, u) for u in _linked(graph, node_id)), default=1)
    return Shape(min(width, MAX_SIDE), min(height, MAX_SIDE), min(count, MAX_FRAMES), material)


def batch_count(graph: Graph, node_id: str, memo: dict[str, int] | None = None) -> int:
    """How many pictures a node outputs: its own batch/frames input, the sum over a batch join, else the
    largest batch among its inputs."""
    memo = {} if memo is None else memo
    if node_id not in memo:
        memo[node_id] = 1  # a cycle (rejected by validation anyway) cannot recurse forever
        node = graph[node_id]
        linked = [batch_count(graph, u, memo) for u in _linked(graph, node_id)]
        own = _count_of(node.get("inputs", {}))
        if node["class_type"] in _JOINING:
            memo[node_id] = sum(linked) or 1
        elif own is not None:
            memo[node_id] = own * (max(linked, default=1) if node["class_type"] == "RepeatImageBatch" else 1)
        else:
            memo[node_id] = max(linked, default=1)
    return memo[node_id]


def work_seconds(graph: Graph, node_id: str) -> float:
    """How long a node without sampler steps takes: only pixel filters take measurable time."""
    node = graph[node_id]
    radius = node.get("inputs", {}).get(_FILTER_RADIUS.get(node["class_type"], ""))
    if not isinstance(radius, int) or radius <= 0:
        return 0.0
    shape = describe(graph, node_id, image_size=lambda _graph, _node: None)
    return radius * shape.width * shape.height * shape.count * _FILTER_SECONDS_PER_UNIT


def _linked(graph: Graph, node_id: str) -> list[str]:
    return [v[0] for v in graph[node_id].get("inputs", {}).values() if is_link(v) and v[0] in graph]


def _size_of(inputs: dict[str, Any]) -> tuple[int, int] | None:
    width, height = inputs.get("width"), inputs.get("height")
    if isinstance(width, int) and isinstance(height, int) and width > 0 and height > 0:
        return width, height
    return None


def _count_of(inputs: dict[str, Any]) -> int | None:
    for key in _COUNT_KEYS:
        value = inputs.get(key)
        if isinstance(value, int) and value > 0:
            return value
    return None


def _widgets(node: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in sorted(node.get("inputs", {}).items()) if not is_link(v)}
