"""Typed WebSocket events of a ComfyUI node and the parsers for its text and binary frames."""

from __future__ import annotations

import json
import struct
from enum import IntEnum, StrEnum
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from workers.comfyui.outputs import NodeOutput


class Event(BaseModel):
    """Base of every event; `prompt_id` is None for broadcasts (status, feature_flags)."""

    model_config = ConfigDict(frozen=True, extra="ignore")
    kind: ClassVar[str] = ""

    prompt_id: str | None = None


class Status(Event):
    """Queue size broadcast; `sid` is set only on the first message after connecting."""

    kind = "status"
    queue_remaining: int = 0
    sid: str | None = None


class FeatureFlags(Event):
    """The server's answer to our `feature_flags` message."""

    kind = "feature_flags"
    supports_preview_metadata: bool = False
    max_upload_size: int | None = None


class ExecutionStart(Event):
    """The prompt left the queue and started running."""

    kind = "execution_start"
    timestamp: int | None = None


class ExecutionCached(Event):
    """Nodes whose outputs were reused from the previous prompt."""

    kind = "execution_cached"
    nodes: list[str] = Field(default_factory=list)
    timestamp: int | None = None


class Executing(Event):
    """A node started; `node` None means the prompt has ended."""

    kind = "executing"
    node: str | None = None
    display_node: str | None = None


class Executed(Event):
    """An output node finished and reports its files."""

    kind = "executed"
    node: str
    display_node: str | None = None
    output: NodeOutput = Field(default_factory=NodeOutput)


class Progress(Event):
    """One step inside a node (a sampler step)."""

    kind = "progress"
    value: int
    max: int
    node: str | None = None


class NodeState(StrEnum):
    """State of one node in a `progress_state` map."""

    PENDING = "pending"
    RUNNING = "running"
    FINISHED = "finished"
    ERROR = "error"


class NodeProgress(BaseModel):
    """One entry of a `progress_state` map."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    value: float = 0.0
    max: float = 1.0
    # Plain str: a newer server may add states, which must not break parsing.
    state: str = NodeState.PENDING
    node_id: str | None = None
    display_node_id: str | None = None
    parent_node_id: str | None = None
    real_node_id: str | None = None


class ProgressState(Event):
    """Cumulative state of every node of the running prompt (broadcast)."""

    kind = "progress_state"
    nodes: dict[str, NodeProgress] = Field(default_factory=dict)


class ExecutionSuccess(Event):
    """The prompt finished; its outputs are in history."""

    kind = "execution_success"
    timestamp: int | None = None


class ExecutionError(Event):
    """A node raised during execution."""

    kind = "execution_error"
    node_id: str | None = None
    node_type: str | None = None
    exception_type: str = ""
    exception_message: str = ""
    traceback: list[str] = Field(default_factory=list)
    executed: list[str] = Field(default_factory=list)
    timestamp: int | None = None


class ExecutionInterrupted(Event):
    """The prompt was stopped through `/interrupt`."""

    kind = "execution_interrupted"
    node_id: str | None = None
    node_type: str | None = None
    executed: list[str] = Field(default_factory=list)
    timestamp: int | None = None


class ImageFormat(StrEnum):
    """Encoding of a preview image."""

    JPEG = "jpeg"
    PNG = "png"
    WEBP = "webp"


class PreviewMetadata(BaseModel):
    """JSON header of a type-4 preview frame."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    node_id: str | None = None
    prompt_id: str | None = None
    display_node_id: str | None = None
    parent_node_id: str | None = None
    real_node_id: str | None = None
    image_type: str | None = None


class Preview(Event):
    """A binary preview image of a running sampler."""

    kind = "preview"
    image: bytes
    image_format: ImageFormat
    metadata: PreviewMetadata | None = None
    node: str | None = None


class Unknown(Event):
    """Any message this client does not know; kept so that a newer server never breaks a run."""

    kind = "unknown"
    type_name: str
    data: dict[str, Any] = Field(default_factory=dict)


_TEXT_EVENTS: dict[str, type[Event]] = {
    cls.kind: cls
    for cls in (
        FeatureFlags,
        ExecutionStart,
        ExecutionCached,
        Executing,
        Executed,
        Progress,
        ProgressState,
        ExecutionSuccess,
        ExecutionError,
        ExecutionInterrupted,
    )
}


class BinaryEventType(IntEnum):
    """The leading u32 of a binary frame."""

    PREVIEW_IMAGE = 1
    PREVIEW_IMAGE_WITH_METADATA = 4


_FORMAT_CODES = {1: ImageFormat.JPEG, 2: ImageFormat.PNG}
_MAGIC = {b"\xff\xd8\xff": ImageFormat.JPEG, b"\x89PNG": ImageFormat.PNG, b"RIFF": ImageFormat.WEBP}


def event_from(type_name: str, data: Any) -> Event:
    """Build the typed event for one `(type, data)` pair, as sent on the socket or kept in history."""
    if not isinstance(data, dict):
        return Unknown(type_name=type_name)
    if type_name == "status":
        return _status(data)
    cls = _TEXT_EVENTS.get(type_name)
    if cls is None:
        return Unknown(type_name=type_name, data=data, prompt_id=_str_or_none(data.get("prompt_id")))
    try:
        return cls.model_validate(data)
    except ValidationError:
        # A known type with an unexpected shape is kept, not fatal: the run follower must survive it.
        return Unknown(type_name=type_name, data=data, prompt_id=_str_or_none(data.get("prompt_id")))


def parse_message(text: str | bytes) -> Event:
    """Parse one text frame `{"type": ..., "data": ...}`."""
    try:
        message = json.loads(text)
    except (ValueError, UnicodeDecodeError):
        return Unknown(type_name="invalid_json")
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        return Unknown(type_name="invalid_message")
    return event_from(message["type"], message.get("data"))


def parse_binary(frame: bytes) -> Preview | Unknown:
    """Parse one binary frame: type 1 (format code + image) or type 4 (JSON metadata + image)."""
    if len(frame) < 8:
        return Unknown(type_name="binary_truncated")
    (event_type,) = struct.unpack(">I", frame[:4])
    if event_type == BinaryEventType.PREVIEW_IMAGE:
        (code,) = struct.unpack(">I", frame[4:8])
        image = frame[8:]
        image_format = _FORMAT_CODES.get(code) or _sniff(image)
        return _preview(image, image_format, None)
    if event_type == BinaryEventType.PREVIEW_IMAGE_WITH_METADATA:
        return _preview_with_metadata(frame)
    return Unknown(type_name=f"binary_{event_type}")


def _preview_with_metadata(frame: bytes) -> Preview | Unknown:
    (length,) = struct.unpack(">I", frame[4:8])
    header, image = frame[8 : 8 + length], frame[8 + length :]
    try:
        metadata = PreviewMetadata.model_validate_json(header)
    except ValidationError:
        return Unknown(type_name="binary_4_bad_metadata")
    image_format = _sniff(image) or _format_from_mime(metadata.image_type)
    return _preview(image, image_format, metadata)


def _preview(
    image: bytes, image_format: ImageFormat | None, metadata: PreviewMetadata | None
) -> Preview | Unknown:
    if image_format is None:
        return Unknown(type_name="binary_unknown_image_format")
    return Preview(
        image=image,
        image_format=image_format,
        metadata=metadata,
        prompt_id=metadata.prompt_id if metadata else None,
        node=metadata.node_id if metadata else None,
    )


def _sniff(image: bytes) -> ImageFormat | None:
    return next((fmt for magic, fmt in _MAGIC.items() if image.startswith(magic)), None)


def _format_from_mime(mime: str | None) -> ImageFormat | None:
    subtype = (mime or "").rpartition("/")[2].lower()
    return {
        "jpeg": ImageFormat.JPEG,
        "jpg": ImageFormat.JPEG,
        "png": ImageFormat.PNG,
        "webp": ImageFormat.WEBP,
    }.get(subtype)


def _status(data: dict[str, Any]) -> Status:
    status = data.get("status")
    exec_info = status.get("exec_info") if isinstance(status, dict) else None
    remaining = exec_info.get("queue_remaining") if isinstance(exec_info, dict) else None
    return Status(
        queue_remaining=remaining if isinstance(remaining, int) else 0, sid=_str_or_none(data.get("sid"))
    )


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None
