"""Replays a recorded ComfyUI scenario against a live node and records what comes back, in the traces' format.

The recording drives the replay: its HTTP requests, the frames its sockets sent and its socket openings and
closings are performed in recorded order, and before each one the replay waits (with a deadline) until every
live socket has received as many frames as the recorded one had by then. Prompt ids and output file names the
live node chose are substituted into later requests. `tests/simnode/structure.py` compares the result with the
recording. Run as a module to re-record the scenarios against a real node (tests/data/comfyui/README.md).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import io
import json
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
import websockets
from PIL import Image

from tests.workers.comfyui_support import TRACES

SYNC_TIMEOUT = 20.0
# After the last step, how long to keep listening for frames the recording does not have.
DRAIN_SECONDS = 0.3
BINARY_EVENTS = {1: "PREVIEW_IMAGE", 4: "PREVIEW_IMAGE_WITH_METADATA"}
# Scenarios recorded on a node that had run others first: those are replayed (not compared) beforehand.
PRELUDES: dict[str, list[str]] = {
    "03_run_cached_rerun": ["02_run_success_invert"],
    "03b_run_partially_cached": ["02_run_success_invert", "03_run_cached_rerun"],
    "10_history_free_misc": [
        "02_run_success_invert", "03_run_cached_rerun", "03b_run_partially_cached", "08_interrupt", "09_queue_delete",
    ],
    "13_tiny_sd_cached_rerun": ["12_tiny_sd_first_run"],
    "14_tiny_sd_interrupt_ksampler": ["12_tiny_sd_first_run"],
    "13a_tiny_sd_rerun_partially_cached": ["12_tiny_sd_first_run", "14_tiny_sd_interrupt_ksampler"],
    "16_tiny_sd_previews_legacy_no_feature_flags": ["15_tiny_sd_previews_metadata"],
}
# How the recordings were made: two server sessions, each scenario in this order (numbers and cache states follow).
SESSIONS: dict[str, list[str]] = {
    # ComfyUI started without --preview-method, before the tiny checkpoint was put in place.
    "empty": ["01_endpoints_idle"],
    # The same, with the checkpoint.
    "plain": [
        "02_run_success_invert", "03_run_cached_rerun", "03b_run_partially_cached",
        "04_upload_loadimage_scale", "05_animated_and_video_outputs", "06_validation_errors_400",
        "06b_partial_validation_failure_200", "07_execution_error", "08_interrupt", "09_queue_delete",
        "10_history_free_misc", "11_no_client_id_and_second_client", "12_tiny_sd_first_run",
        "14_tiny_sd_interrupt_ksampler", "13a_tiny_sd_rerun_partially_cached", "13_tiny_sd_cached_rerun",
    ],
    # Restarted with --preview-method latent2rgb.
    "previews": [
        "01b_endpoints_with_checkpoint", "15_tiny_sd_previews_metadata", "16_tiny_sd_previews_legacy_no_feature_flags",
    ],
}
# Uploads are recorded by name and size only; these are the ones whose content matters.
UPLOAD_CONTENT = {"trace_corrupt.png": b"this is not a png"}


def load(name: str) -> dict[str, Any]:
    trace: dict[str, Any] = json.loads((TRACES / f"{name}.json").read_text(encoding="utf-8"))
    return trace


def scenario_names() -> list[str]:
    return sorted(p.stem for p in TRACES.glob("*.json"))


@dataclass
class Substitutions:
    """Recorded values (prompt ids, output file names) mapped to what the live node chose."""

    values: dict[str, str] = field(default_factory=dict)

    def apply(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.values.get(value, value)
        if isinstance(value, list):
            return [self.apply(v) for v in value]
        if isinstance(value, dict):
            return {k: self.apply(v) for k, v in value.items()}
        return value

    def path(self, path: str) -> str:
        parts = urlsplit(path)
        segments = "/".join(self.values.get(s, s) for s in parts.path.split("/"))
        if not parts.query:
            return segments
        query = [(k, self.values.get(v, v)) for k, v in parse_qsl(parts.query, keep_blank_values=True)]
        return f"{segments}?{urlencode(query)}"

    def learn(self, recorded: Any, live: Any) -> None:
        """Pair prompt ids and file names found at the same place in a recorded and a live answer."""
        if isinstance(recorded, dict) and isinstance(live, dict):
            if isinstance(recorded.get("prompt_id"), str) and isinstance(live.get("prompt_id"), str):
                self.values[recorded["prompt_id"]] = live["prompt_id"]
            if isinstance(recorded.get("filename"), str) and isinstance(live.get("filename"), str):
                self.values[recorded["filename"]] = live["filename"]
            if len(recorded) == 1 and len(live) == 1:  # {prompt_id: entry} of /history/{id}
                (old, inner_old), (new, inner_new) = next(iter(recorded.items())), next(iter(live.items()))
                if old not in ("images",) and isinstance(inner_old, dict):
                    self.values.setdefault(old, new)
                self.learn(inner_old, inner_new)
                return
            for key in recorded.keys() & live.keys():
                self.learn(recorded[key], live[key])
        elif isinstance(recorded, list) and isinstance(live, list):
            for old_item, new_item in zip(recorded, live, strict=False):
                self.learn(old_item, new_item)


@dataclass
class LiveSocket:
    """One socket of the replay; `entries` are in the traces' ws format."""

    client_id: str
    entries: list[dict[str, Any]]
    started: float
    socket: Any = None
    reader: asyncio.Task[None] | None = None
    received: int = 0
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def open(self, ws_url: str) -> None:
        self.socket = await websockets.connect(f"{ws_url}?clientId={self.client_id}", max_size=None)
        self._log({"dir": "event", "event": "connected", "url": f"/ws?clientId={self.client_id}"})
        self.reader = asyncio.create_task(self._read())

    async def send(self, message: dict[str, Any]) -> None:
        await self.socket.send(json.dumps(message))
        self._log({"dir": "sent", "kind": "text", "json": message})

    async def close(self) -> None:
        if self.socket is not None:
            await self.socket.close()
            if self.reader is not None:
                await asyncio.gather(self.reader, return_exceptions=True)
            self._log({"dir": "event", "event": "closed"})
            self.socket = None

    async def _read(self) -> None:
        try:
            async for raw in self.socket:
                self._log(_frame_entry(raw))
                self.received += 1
                self.arrived.set()
        except websockets.ConnectionClosed:
            pass

    def _log(self, entry: dict[str, Any]) -> None:
        self.entries.append({"t": round(time.monotonic() - self.started, 4), **entry})

    async def wait_for(self, count: int, deadline: float) -> None:
        while self.received < count and time.monotonic() < deadline:
            self.arrived.clear()
            try:
                await asyncio.wait_for(self.arrived.wait(), timeout=max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                return


def _frame_entry(raw: str | bytes) -> dict[str, Any]:
    if isinstance(raw, str):
        return {"dir": "recv", "kind": "text", "json": json.loads(raw)}
    (event,) = struct.unpack(">I", raw[:4])
    entry: dict[str, Any] = {"dir": "recv", "kind": "binary", "length": len(raw), "event_type": event,
                             "event_name": BINARY_EVENTS.get(event, "UNKNOWN"), "first_16_bytes_hex": raw[:16].hex()}
    if event == 4:
        (length,) = struct.unpack(">I", raw[4:8])
        entry.update(metadata_length=length, metadata=json.loads(raw[8:8 + length]))
        image = raw[8 + length:]
    else:
        image = raw[8:]
    entry.update(image_magic_hex=image[:4].hex(), image_bytes=len(image))
    return entry


def _summary(entries: list[dict[str, Any]]) -> list[str]:
    """One line per socket entry, as the recordings' `ws_summary` has them."""
    lines = []
    for entry in entries:
        if entry.get("dir") == "event":
            what = str(entry["event"])
        elif entry.get("kind") == "binary":
            what = f"BINARY {entry['event_name']} {entry['length']} bytes"
        else:
            message = entry["json"]
            data = message.get("data") or {}
            detail = f" node={data['node']}" if "node" in data else ""
            what = ("SENT " if entry.get("dir") == "sent" else "") + f"{message.get('type')}{detail}"
        lines.append(f"{float(entry['t']):8.3f} {what}")
    return lines


def _recv_times(entries: list[dict[str, Any]]) -> list[float]:
    return [float(e["t"]) for e in entries if e.get("dir") == "recv"]


def _greeting_length(entries: list[dict[str, Any]]) -> int:
    """How many frames a socket gets on connecting: `status` with its sid, and the `feature_flags` answer."""
    count = 0
    for entry in (e for e in entries if e.get("dir") == "recv"):
        message = entry.get("json") or {}
        if not (message.get("type") == "feature_flags" or "sid" in (message.get("data") or {})):
            break
        count += 1
    return count


def _client_id(entries: list[dict[str, Any]]) -> str:
    connected = next(e for e in entries if e.get("event") == "connected")
    return dict(parse_qsl(urlsplit(str(connected["url"])).query))["clientId"]


def _upload_bytes(filename: str, size: int) -> bytes:
    """A PNG standing in for a recorded upload: same name and size give the same bytes, others differ."""
    if filename in UPLOAD_CONTENT:
        return UPLOAD_CONTENT[filename]
    colour = tuple(hashlib.sha256(f"{filename}:{size}".encode()).digest()[:3])
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def _response_entry(response: httpx.Response) -> dict[str, Any]:
    entry: dict[str, Any] = {"status": response.status_code, "headers": dict(response.headers),
                             "length": len(response.content)}
    if response.headers.get("content-type", "").startswith("application/json"):
        entry["json"] = response.json()
    else:
        entry["body_first_32_bytes_hex"] = response.content[:32].hex()
    return entry


class Replay:
    """One scenario (and its preludes) replayed against the node at `base`."""

    def __init__(self, base: str, *, substitutions: Substitutions | None = None) -> None:
        self.base = base.rstrip("/")
        self.ws_url = self.base.replace("http", "ws", 1) + "/ws"
        self.subs = substitutions or Substitutions()

    async def run(self, name: str) -> dict[str, Any]:
        """Replay `name` after its preludes; returns the live recording of `name` in the traces' format."""
        for prelude in PRELUDES.get(name, []):
            await self.scenario(load(prelude))
        return await self.scenario(load(name))

    async def scenario(self, trace: dict[str, Any]) -> dict[str, Any]:
        started = time.monotonic()
        recorded = {"ws": trace["ws"], **({"client_b_ws": trace["client_b_ws"]} if "client_b_ws" in trace else {})}
        sockets = {key: LiveSocket(_client_id(entries), [], started) for key, entries in recorded.items() if entries}
        steps = sorted(
            [(float(h["t"]), "http", "", h) for h in trace["http"]]
            + [(float(e["t"]), "ws", key, e) for key, entries in recorded.items() for e in entries
               if e.get("dir") == "event"],
            key=lambda step: (step[0], step[1] == "http"),  # at equal times a socket opens before a request
        )
        live_http: list[dict[str, Any]] = []
        async with httpx.AsyncClient(base_url=self.base, timeout=30) as client:
            for at, kind, key, entry in steps:
                await self._sync(sockets, recorded, at)
                if kind == "http":
                    live_http.append(await self._request(client, entry, started))
                else:
                    await self._socket_step(sockets[key], entry, recorded[key])
            await self._sync(sockets, recorded, float("inf"))
            await asyncio.sleep(DRAIN_SECONDS)  # a bounded listen for frames the recording does not have
        for sock in sockets.values():
            await sock.close()
        live_keys = ("http", "ws", "ws_summary", "client_b_ws", "client_b_summary")
        result: dict[str, Any] = {key: value for key, value in trace.items() if key not in live_keys}
        ws = sockets["ws"].entries if "ws" in sockets else []
        result.update(base=self.base, http=live_http, ws=ws, ws_summary=_summary(ws))
        if "client_b_ws" in sockets:
            result["client_b_ws"] = sockets["client_b_ws"].entries
            result["client_b_summary"] = _summary(result["client_b_ws"])
        return result

    async def _sync(self, sockets: dict[str, LiveSocket], recorded: dict[str, Any], at: float) -> None:
        deadline = time.monotonic() + SYNC_TIMEOUT
        for key, sock in sockets.items():
            if sock.socket is not None:
                await sock.wait_for(sum(1 for t in _recv_times(recorded[key]) if t <= at), deadline)

    async def _socket_step(self, sock: LiveSocket, entry: dict[str, Any], recorded: list[dict[str, Any]]) -> None:
        if entry.get("event") == "connected":
            # The handshake as one step: what the client sent on connecting, then the greeting it got back
            # (the recorded times of a request and a handshake frame a fraction of a millisecond apart say
            # nothing about which the server saw first).
            await sock.open(self.ws_url)
            for sent in (e for e in recorded if e.get("dir") == "sent"):
                await sock.send(sent["json"])
            await sock.wait_for(_greeting_length(recorded), time.monotonic() + SYNC_TIMEOUT)
        elif entry.get("event") == "closed":
            await sock.close()

    async def _request(self, client: httpx.AsyncClient, call: dict[str, Any], started: float) -> dict[str, Any]:
        request = call["request"]
        path = self.subs.path(request["path"])
        kwargs: dict[str, Any] = {}
        if "json" in request:
            kwargs["json"] = self.subs.apply(request["json"])
        if "multipart" in request:
            form = dict(request["multipart"])
            image = form.pop("image")
            kwargs["files"] = {"image": (image["filename"], _upload_bytes(image["filename"], image["bytes"]),
                                         image["content_type"])}
            kwargs["data"] = form
        response = await client.request(request["method"], path, **kwargs)
        entry = {"t": round(time.monotonic() - started, 4), "label": call["label"],
                 "request": {**request, "path": path}, "response": _response_entry(response)}
        if "json" in call["response"] and "json" in entry["response"]:
            self.subs.learn(call["response"]["json"], entry["response"]["json"])
        return entry


def main() -> None:
    parser = argparse.ArgumentParser(description="Re-record the ComfyUI scenarios against a node.")
    parser.add_argument("--base", default="http://127.0.0.1:8188", help="the node's base URL")
    parser.add_argument("--out", type=Path, required=True, help="folder for the new recordings")
    parser.add_argument("--session", choices=sorted(SESSIONS), help="record one recording session's scenarios")
    parser.add_argument("names", nargs="*", help="or these scenarios (file stems), in this order")
    args = parser.parse_args()
    names = args.names or SESSIONS.get(args.session or "", [])
    if not names:
        parser.error("name the scenarios or a --session")
    args.out.mkdir(parents=True, exist_ok=True)

    async def record() -> None:
        replay = Replay(args.base)
        for name in names:
            live = await replay.scenario(load(name))
            (args.out / f"{name}.json").write_text(json.dumps(live, indent=1), encoding="utf-8")

    asyncio.run(record())


if __name__ == "__main__":
    main()
