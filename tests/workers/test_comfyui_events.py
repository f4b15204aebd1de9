"""Every recorded WebSocket frame and history message parses into a known, typed event."""

from __future__ import annotations

import json
import struct
from collections import Counter

import pytest

from tests.workers.comfyui_support import all_ws_entries, load_trace, sample_frame, trace_names
from workers.comfyui import (
    Event,
    ExecutionCached,
    ExecutionError,
    ExecutionInterrupted,
    FeatureFlags,
    HistoryEntry,
    ImageFormat,
    Preview,
    Progress,
    ProgressState,
    Status,
    Unknown,
    parse_binary,
    parse_message,
)


def parsed_text_frames(trace_name: str) -> list[Event]:
    entries = all_ws_entries(load_trace(trace_name))
    return [parse_message(json.dumps(e["json"])) for e in entries if e.get("kind") == "text"]


@pytest.mark.parametrize("trace_name", trace_names())
def test_every_recorded_text_frame_parses_to_a_known_event(trace_name: str) -> None:
    events = parsed_text_frames(trace_name)
    unknown = [e for e in events if isinstance(e, Unknown)]
    assert not unknown, f"{trace_name}: unparsed {unknown[:3]}"


@pytest.mark.parametrize("trace_name", trace_names())
def test_every_recorded_history_message_parses(trace_name: str) -> None:
    for call in load_trace(trace_name)["http"]:
        body = call["response"].get("json")
        if not call["request"]["path"].startswith("/history") or not isinstance(body, dict):
            continue
        for prompt_id, raw in body.items():
            entry = HistoryEntry.from_api(prompt_id, raw)
            assert entry.messages and not [m for m in entry.messages if isinstance(m, Unknown)]


def test_trace_12_has_twelve_progress_steps_of_the_sampler() -> None:
    progress = [e for e in parsed_text_frames("12_tiny_sd_first_run") if isinstance(e, Progress)]
    assert len(progress) == 12
    assert [(p.value, p.max, p.node) for p in progress][-1] == (12, 12, "5")


def test_counts_per_type_match_the_trace_summary() -> None:
    counts = Counter(type(e).__name__ for name in trace_names() for e in parsed_text_frames(name))
    assert counts["ExecutionInterrupted"] == 2 and counts["ExecutionError"] == 1
    assert counts["FeatureFlags"] == 34  # 17 sent + 17 answers


def test_cached_rerun_lists_every_node() -> None:
    cached = [e for e in parsed_text_frames("13_tiny_sd_cached_rerun") if isinstance(e, ExecutionCached)]
    assert cached[0].nodes == ["1", "2", "3", "4", "5", "6", "7"]


def test_status_progress_state_and_failures_are_typed() -> None:
    events = parsed_text_frames("07_execution_error")
    first = events[1]
    assert isinstance(first, Status) and first.queue_remaining == 0 and first.sid
    state = next(e for e in events if isinstance(e, ProgressState))
    assert state.nodes["1"].state == "running" and state.prompt_id
    error = next(e for e in events if isinstance(e, ExecutionError))
    assert (error.node_id, error.executed, len(error.traceback) > 0) == ("3", ["1", "2"], True)
    interrupted = next(e for e in parsed_text_frames("08_interrupt") if isinstance(e, ExecutionInterrupted))
    assert (interrupted.node_id, interrupted.node_type) == ("12", "ImageBlur")
    flags = next(e for e in events if isinstance(e, FeatureFlags) and e.max_upload_size)
    assert flags.supports_preview_metadata and flags.max_upload_size == 104857600


def test_type1_frame_decodes_as_jpeg_without_metadata() -> None:
    raw = sample_frame(1)
    preview = parse_binary(raw)
    assert isinstance(preview, Preview)
    assert preview.image_format == ImageFormat.JPEG and preview.metadata is None and preview.prompt_id is None
    assert preview.image == raw[8:] and preview.image.startswith(b"\xff\xd8")


def test_type4_frame_decodes_metadata_and_image() -> None:
    raw = sample_frame(4)
    preview = parse_binary(raw)
    assert isinstance(preview, Preview) and preview.metadata is not None
    assert preview.image_format == ImageFormat.JPEG
    assert (preview.metadata.node_id, preview.metadata.image_type) == ("5", "image/jpeg")
    assert preview.prompt_id == preview.metadata.prompt_id and preview.node == "5"
    assert len(preview.image) == len(raw) - 8 - 166 and preview.image.startswith(b"\xff\xd8")


def test_png_preview_code_is_recognised() -> None:
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16
    preview = parse_binary(struct.pack(">II", 1, 2) + png)
    assert isinstance(preview, Preview) and preview.image_format == ImageFormat.PNG


@pytest.mark.parametrize(
    "frame",
    [
        '{"type": "brand_new_event", "data": {"prompt_id": "p"}}',
        '{"type": "progress", "data": {"value": "not a number"}}',
        "not json at all",
        '["a", "list"]',
        '{"type": "executing", "data": null}',
    ],
)
def test_unexpected_text_frames_become_unknown_not_crashes(frame: str) -> None:
    assert isinstance(parse_message(frame), Unknown)


def test_new_types_keep_their_prompt_id_and_data() -> None:
    event = parse_message('{"type": "brand_new_event", "data": {"prompt_id": "p", "x": 1}}')
    assert isinstance(event, Unknown)
    assert (event.type_name, event.prompt_id, event.data) == (
        "brand_new_event",
        "p",
        {"prompt_id": "p", "x": 1},
    )


@pytest.mark.parametrize("frame", [b"", b"\x00\x00\x00\x03abcdefgh", struct.pack(">II", 1, 9) + b"????"])
def test_unexpected_binary_frames_become_unknown(frame: bytes) -> None:
    assert isinstance(parse_binary(frame), Unknown)
