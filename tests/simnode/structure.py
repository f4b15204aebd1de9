"""A structural comparison of two recordings of the same scenario: what a client could tell apart, minus ids and times.

Each frame and each HTTP answer becomes a skeleton: dicts keep their keys (prompt ids used as keys become
`<id>`), lists keep their length and order (but for a Python traceback's frames and a command line), and scalars
become their JSON type (`int` and `float` differ, as they do to a client). The values a client acts on are kept
as well: which node runs, is cached, reports progress (value and max) or failed, queue lengths, HTTP statuses and
the kind of file a download returns. A `progress_state` frame is compared by what changed since the previous one
of its prompt (the rest of its cumulative map was compared when it changed).
"""

from __future__ import annotations

import difflib
import json
import re
from typing import Any

# Lists whose length says nothing a client uses: the frames of a Python stack, the node's own command line.
FREE_LENGTH = {"traceback", "argv"}
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
# Values (besides types) compared per message type.
KEPT = {
    "executing": ("node",),
    "executed": ("node",),
    "execution_cached": ("nodes",),
    "progress": ("value", "max", "node"),
    "execution_error": ("node_id", "node_type", "executed", "exception_type"),
    "execution_interrupted": ("node_id", "node_type", "executed"),
}


def _type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    return {int: "int", float: "float", str: "str"}.get(type(value), type(value).__name__)


def skeleton(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            ("<id>" if UUID.match(str(k)) else str(k)): sorted({json.dumps(skeleton(i)) for i in v})
            if k in FREE_LENGTH and isinstance(v, list) else skeleton(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [skeleton(v) for v in value]
    return _type(value)


def typed(value: Any) -> Any:
    """A value with its JSON type, so that 1 and 1.0 differ."""
    if isinstance(value, list):
        return [typed(v) for v in value]
    return f"{_type(value)}:{value}"


def frame(entry: dict[str, Any], states: dict[str, dict[str, Any]]) -> str:
    """One received WebSocket frame as a comparable line; `states` holds the last progress_state per prompt."""
    if entry.get("kind") == "binary":
        return json.dumps(["binary", entry.get("event_type"), skeleton(entry.get("metadata")),
                           entry.get("image_magic_hex", "")[:4]], sort_keys=True)
    message = entry["json"]
    kind, data = message.get("type"), message.get("data") or {}
    kept: dict[str, Any] = {key: typed(data.get(key)) for key in KEPT.get(kind, ())}
    if isinstance(data.get("executed"), list):  # a set on a real node: its order means nothing
        kept["executed"] = typed(sorted(data["executed"]))
    if kind == "status":
        kept["queue_remaining"] = data.get("status", {}).get("exec_info", {}).get("queue_remaining")
    if kind == "progress_state":
        nodes = data.get("nodes", {})
        before = states.get(str(data.get("prompt_id")), {})
        changed = {node: state for node, state in nodes.items() if before.get(node) != state}
        states[str(data.get("prompt_id"))] = nodes
        data = {**data, "nodes": changed}
        kept["nodes"] = {node: [state.get("state"), typed(state.get("value")), typed(state.get("max"))]
                         for node, state in changed.items()}
    if kind == "executed":
        kept["files"] = {key: len(value) for key, value in data.get("output", {}).items()}
    return json.dumps([kind, skeleton(data), kept], sort_keys=True)


def frames(entries: list[dict[str, Any]], *, ordered: bool = True, statuses: bool = True) -> list[str]:
    """The received frames as lines: sorted when their order is not part of the comparison, and without the
    `status` broadcasts after the greeting when those race with the requests."""
    states: dict[str, dict[str, Any]] = {}
    lines = [frame(e, states) for e in entries if e.get("dir") == "recv"]
    if not statuses:
        lines = lines[:1] + [line for line in lines[1:] if not line.startswith('["status"')]
    return lines if ordered else sorted(lines)


def answer(call: dict[str, Any]) -> dict[str, Any]:
    """One HTTP exchange: status, JSON skeleton or the kind of bytes, and the values kept for it."""
    response = call["response"]
    shape: dict[str, Any] = {"status": response["status"]}
    if "json" in response:
        shape["json"] = skeleton(response["json"])
    else:
        headers = {k.lower(): v for k, v in response.get("headers", {}).items()}
        shape["content_type"] = headers.get("content-type", "").split(";")[0]
        shape["magic"] = response.get("body_first_32_bytes_hex", "")[:8]
    return shape


def differences(
    recorded: dict[str, Any], live: dict[str, Any], *, ordered: bool = True, statuses: bool = True
) -> list[str]:
    """Every place where `live` differs from `recorded`, as `where: what` lines (empty when they match)."""
    found: list[str] = []
    for key in ("ws", "client_b_ws"):
        old = frames(recorded.get(key, []), ordered=ordered, statuses=statuses)
        new = frames(live.get(key, []), ordered=ordered, statuses=statuses)
        if old != new:
            diff = difflib.unified_diff(old, new, "recorded", "live", lineterm="", n=1)
            found += [f"{key}: {line}" for line in list(diff)[2:]]
    calls = zip(recorded["http"], live["http"], strict=False)
    for index, (old_call, new_call) in enumerate(calls):
        where = f"http[{index}] {old_call['label']}"
        found += [f"{where}: {d}" for d in _compare(answer(old_call), answer(new_call), "$")]
    if len(recorded["http"]) != len(live["http"]):
        found.append(f"http: {len(recorded['http'])} calls recorded, {len(live['http'])} replayed")
    return found


def _compare(old: Any, new: Any, path: str) -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        found = [f"{path}.{k}: missing" for k in old if k not in new]
        found += [f"{path}.{k}: extra" for k in new if k not in old]
        for key in old.keys() & new.keys():
            found += _compare(old[key], new[key], f"{path}.{key}")
        return found
    if isinstance(old, list) and isinstance(new, list):
        if len(old) != len(new):
            return [f"{path}: {len(old)} items recorded, {len(new)} live"]
        return [d for i, (a, b) in enumerate(zip(old, new, strict=True)) for d in _compare(a, b, f"{path}[{i}]")]
    return [] if old == new else [f"{path}: {old} recorded, {new} live"]
