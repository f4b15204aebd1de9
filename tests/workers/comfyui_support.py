"""Recorded ComfyUI traces and a tiny replaying node (real WebSocket server, HTTP via MockTransport) for tests."""

from __future__ import annotations

import asyncio
import json
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

import httpx
from websockets.asyncio.server import ServerConnection, serve

from workers.comfyui import ComfyUIClient

# The recordings of a real ComfyUI 0.3.64 that the repository carries (tests/data/comfyui/README.md).
TRACES = Path(__file__).resolve().parents[1] / "data" / "comfyui" / "traces"
TERMINAL_TYPES = {"execution_success", "execution_error", "execution_interrupted"}


def trace_names() -> list[str]:
    """Every recorded trace, by file stem."""
    names = sorted(p.stem for p in TRACES.glob("*.json"))
    assert names, f"no traces under {TRACES}"
    return names


@cache
def _load(name: str) -> str:
    return (TRACES / f"{name}.json").read_text()


def load_trace(name: str) -> dict[str, Any]:
    """A fresh copy of one trace."""
    trace: dict[str, Any] = json.loads(_load(name))
    return trace


def sample_frame(kind: int) -> bytes:
    """The raw recorded binary frame of type 1 or 4."""
    return (TRACES / f"sample_ws_frame_type{kind}.bin").read_bytes()


def all_ws_entries(trace: dict[str, Any]) -> list[dict[str, Any]]:
    """Every socket entry of a trace, both observers included."""
    return [*trace["ws"], *trace.get("client_b_ws", [])]


def recorded_prompt_id(trace: dict[str, Any]) -> str:
    """The prompt id the node assigned in the trace's first POST /prompt."""
    post = next(
        h for h in trace["http"] if h["request"]["method"] == "POST" and h["request"]["path"] == "/prompt"
    )
    return str(post["response"]["json"]["prompt_id"])


def type4_frame(prompt_id: str) -> bytes:
    """The recorded type-4 preview with its metadata re-pointed at `prompt_id`."""
    raw = sample_frame(4)
    (length,) = struct.unpack(">I", raw[4:8])
    metadata = json.loads(raw[8 : 8 + length])
    metadata["prompt_id"] = prompt_id
    header = json.dumps(metadata).encode()
    return struct.pack(">II", 4, len(header)) + header + raw[8 + length :]


def run_frames(trace: dict[str, Any], prompt_id: str) -> list[str | bytes]:
    """The frames a node sends for one run (greeting excluded), re-pointed at `prompt_id`."""
    old = recorded_prompt_id(trace)
    frames: list[str | bytes] = []
    for entry in trace["ws"]:
        if entry.get("dir") != "recv":
            continue
        if entry["kind"] == "binary":
            frames.append(sample_frame(1) if entry["event_type"] == 1 else type4_frame(prompt_id))
            continue
        message = entry["json"]
        if message["type"] == "feature_flags" or "sid" in message["data"]:
            continue
        frames.append(json.dumps(message).replace(old, prompt_id))
    return frames


def history_body(trace: dict[str, Any], prompt_id: str) -> dict[str, Any]:
    """The trace's recorded `/history/{id}` entry, re-pointed at `prompt_id`."""
    old = recorded_prompt_id(trace)
    entry = next(h for h in trace["http"] if h["request"]["path"] == f"/history/{old}")
    body: dict[str, Any] = json.loads(json.dumps(entry["response"]["json"]).replace(old, prompt_id))
    return body


After = Literal["finish", "resume", "lose", "hang"]


@dataclass
class ReplayNode:
    """Plays one recorded run to whoever submits; can cut the socket and then behave as `after_cut` says."""

    trace_name: str
    prompt_id: str
    cut_after: int | None = None
    drop: bool = True
    after_cut: After = "finish"
    port: int = 0
    submitted: asyncio.Event = field(default_factory=asyncio.Event)
    finished: bool = False
    lost: bool = False
    owner_client_id: str | None = None
    log: list[str] = field(default_factory=list)
    socket_client_ids: list[str] = field(default_factory=list)
    first_messages: list[dict[str, Any]] = field(default_factory=list)
    posts: list[tuple[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        trace = load_trace(self.trace_name)
        self.frames = run_frames(trace, self.prompt_id)
        self.history = history_body(trace, self.prompt_id)

    # -- WebSocket -------------------------------------------------------------------------------------

    async def handle_socket(self, ws: ServerConnection) -> None:
        client_id = parse_qs(urlsplit(ws.request.path if ws.request else "").query).get("clientId", [""])[0]
        self.socket_client_ids.append(client_id)
        self.log.append("ws_connect")
        index = len(self.socket_client_ids) - 1
        self.first_messages.append(json.loads(await ws.recv()))
        await ws.send(
            json.dumps(
                {
                    "type": "status",
                    "data": {"status": {"exec_info": {"queue_remaining": 0}}, "sid": client_id},
                }
            )
        )
        if index == 0 and not self.finished:
            await self._first_socket(ws)
        elif self.after_cut == "resume" and self.cut_after is not None:
            await self._send(ws, self.frames[self.cut_after :])
        await ws.wait_closed()

    async def _first_socket(self, ws: ServerConnection) -> None:
        await self.submitted.wait()
        await self._send(ws, self.frames if self.cut_after is None else self.frames[: self.cut_after])
        if self.cut_after is None or not self.drop:
            return
        self.finished = self.after_cut == "finish"
        self.lost = self.after_cut == "lose"
        # Abort without a close frame: what a crashed proxy or a dead node looks like to the client.
        ws.transport.abort()

    async def _send(self, ws: ServerConnection, frames: list[str | bytes]) -> None:
        for frame in frames:
            if isinstance(frame, str) and json.loads(frame)["type"] in TERMINAL_TYPES:
                self.finished = True
            await ws.send(frame)

    # -- HTTP ------------------------------------------------------------------------------------------

    def handle_http(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if request.method == "POST":
            body = json.loads(request.content) if request.content else None
            self.posts.append((path, body))
            if path == "/prompt":
                return self._submit(body or {})
            return httpx.Response(200)
        if path == f"/history/{self.prompt_id}":
            return httpx.Response(200, json=self.history if self.finished and not self.lost else {})
        if path.startswith("/history/"):
            return httpx.Response(200, json={})
        if path == "/queue":
            return httpx.Response(200, json=self._queue())
        return httpx.Response(404)

    def _submit(self, body: dict[str, Any]) -> httpx.Response:
        self.log.append("submit")
        self.owner_client_id = body["client_id"]
        self.submitted.set()
        return httpx.Response(200, json={"prompt_id": body["prompt_id"], "number": 27, "node_errors": {}})

    def _queue(self) -> dict[str, Any]:
        running = []
        if self.submitted.is_set() and not self.finished and not self.lost:
            running = [[27, self.prompt_id, {}, {"client_id": self.owner_client_id}, []]]
        return {"queue_running": running, "queue_pending": []}

    def mark_submitted_by(self, client_id: str) -> None:
        """Pretend the prompt was queued earlier by another worker under `client_id`."""
        self.owner_client_id = client_id
        self.submitted.set()


@asynccontextmanager
async def replay_node(node: ReplayNode) -> AsyncIterator[ComfyUIClient]:
    """Serve `node` on a free loopback port and yield a client wired to it."""
    async with serve(node.handle_socket, "127.0.0.1", 0) as server:
        node.port = server.sockets[0].getsockname()[1]
        http = httpx.AsyncClient(transport=httpx.MockTransport(node.handle_http))
        client = ComfyUIClient(f"http://127.0.0.1:{node.port}", http=http, client_id="worker1", timeout=5.0)
        try:
            yield client
        finally:
            await http.aclose()
