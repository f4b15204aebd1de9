"""Typed answers of a ComfyUI node's HTTP API, and the result of one followed run."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from workers.comfyui.events import (
    Event,
    ExecutionError,
    ExecutionInterrupted,
    ExecutionStart,
    ExecutionSuccess,
    event_from,
)
from workers.comfyui.outputs import FileRef, FileType, NodeOutput, output_files

__all__ = [
    "Device",
    "ErrorDetail",
    "Features",
    "FileRef",
    "FileType",
    "HistoryEntry",
    "HistoryStatus",
    "NodeError",
    "NodeOutput",
    "NodeSchema",
    "QueueItem",
    "QueueState",
    "RunResult",
    "SubmitResult",
    "SystemInfo",
    "SystemStats",
    "ValidationFailure",
]


class ErrorDetail(BaseModel):
    """One validation error: `{type, message, details, extra_info}`."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    type: str = ""
    message: str = ""
    details: str = ""
    extra_info: dict[str, Any] = Field(default_factory=dict)

    @property
    def input_name(self) -> str | None:
        """The graph input the error is about, when the server names one."""
        name = self.extra_info.get("input_name")
        return name if isinstance(name, str) else None


class NodeError(BaseModel):
    """Validation errors of one graph node."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    errors: list[ErrorDetail] = Field(default_factory=list)
    dependent_outputs: list[str] = Field(default_factory=list)
    class_type: str = ""


class ValidationFailure(BaseModel):
    """Body of `POST /prompt` 400: the prompt-level error plus per-node errors."""

    model_config = ConfigDict(extra="ignore")

    error: ErrorDetail = Field(default_factory=ErrorDetail)
    node_errors: dict[str, NodeError] = Field(default_factory=dict)


class SubmitResult(BaseModel):
    """Answer of `POST /prompt`; `already_known` when the node had this prompt_id before (idempotent submit)."""

    model_config = ConfigDict(frozen=True)

    prompt_id: str
    number: int
    node_errors: dict[str, NodeError] = Field(default_factory=dict)
    already_known: bool = False


class HistoryStatus(StrEnum):
    """`status.status_str` of a finished prompt."""

    SUCCESS = "success"
    ERROR = "error"


class HistoryEntry(BaseModel):
    """One finished prompt from `GET /history/{prompt_id}`."""

    model_config = ConfigDict(frozen=True)

    prompt_id: str
    number: int
    client_id: str | None = None
    outputs: dict[str, NodeOutput] = Field(default_factory=dict)
    status_str: str = ""
    completed: bool = False
    messages: list[Event] = Field(default_factory=list)

    @classmethod
    def from_api(cls, prompt_id: str, raw: dict[str, Any]) -> HistoryEntry:
        """Build from one value of the history map."""
        prompt = raw.get("prompt") or [0, prompt_id, {}, {}, []]
        extra = prompt[3] if len(prompt) > 3 and isinstance(prompt[3], dict) else {}
        status = raw.get("status") or {}
        messages = [
            event_from(str(pair[0]), pair[1]) for pair in status.get("messages", []) if len(pair) == 2
        ]
        return cls(
            prompt_id=prompt_id,
            number=int(prompt[0]),
            client_id=extra.get("client_id"),
            outputs=raw.get("outputs") or {},
            status_str=status.get("status_str", ""),
            completed=bool(status.get("completed", False)),
            messages=messages,
        )

    @property
    def succeeded(self) -> bool:
        """True when the run ended with `execution_success`."""
        return self.status_str == HistoryStatus.SUCCESS

    @property
    def files(self) -> list[FileRef]:
        """All output and temp files of the run."""
        return output_files(self.outputs)

    @property
    def failure(self) -> ExecutionError | ExecutionInterrupted | None:
        """The error or interrupt message that ended the run, if any."""
        ends = (m for m in self.messages if isinstance(m, ExecutionError | ExecutionInterrupted))
        return next(ends, None)

    @property
    def duration_s(self) -> float | None:
        """Seconds from `execution_start` to the end message, from the server's own timestamps."""
        start = next((m.timestamp for m in self.messages if isinstance(m, ExecutionStart)), None)
        ends = [
            m
            for m in self.messages
            if isinstance(m, ExecutionSuccess | ExecutionError | ExecutionInterrupted)
        ]
        end = ends[-1].timestamp if ends else None
        return (end - start) / 1000.0 if start is not None and end is not None else None


class QueueItem(BaseModel):
    """One queued prompt: `[number, prompt_id, graph, extra_data, outputs]` on the wire."""

    model_config = ConfigDict(frozen=True)

    number: int
    prompt_id: str
    client_id: str | None = None

    @classmethod
    def from_api(cls, raw: list[Any]) -> QueueItem:
        """Build from the wire array."""
        extra = raw[3] if len(raw) > 3 and isinstance(raw[3], dict) else {}
        return cls(number=int(raw[0]), prompt_id=str(raw[1]), client_id=extra.get("client_id"))


class QueueState(BaseModel):
    """`GET /queue`: the running prompt(s) and the pending ones, pending sorted into run order."""

    model_config = ConfigDict(frozen=True)

    running: list[QueueItem] = Field(default_factory=list)
    pending: list[QueueItem] = Field(default_factory=list)

    @classmethod
    def from_api(cls, raw: dict[str, Any]) -> QueueState:
        """Build from the wire object; the server does not sort pending, so sort by number here."""
        running = [QueueItem.from_api(item) for item in raw.get("queue_running", [])]
        pending = sorted((QueueItem.from_api(item) for item in raw.get("queue_pending", [])), key=_number)
        return cls(running=running, pending=pending)

    def find(self, prompt_id: str) -> QueueItem | None:
        """The queue item of a prompt, running or pending."""
        return next((item for item in [*self.running, *self.pending] if item.prompt_id == prompt_id), None)

    def is_running(self, prompt_id: str) -> bool:
        """True when the prompt is executing now."""
        return any(item.prompt_id == prompt_id for item in self.running)

    @property
    def size(self) -> int:
        """Prompts on the node, running included."""
        return len(self.running) + len(self.pending)


def _number(item: QueueItem) -> int:
    return item.number


class Device(BaseModel):
    """One compute device of a node."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    name: str = ""
    type: str = ""
    index: int | None = None
    vram_total: int = 0
    vram_free: int = 0
    torch_vram_total: int = 0
    torch_vram_free: int = 0


class SystemInfo(BaseModel):
    """The `system` part of `/system_stats`."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    os: str = ""
    ram_total: int = 0
    ram_free: int = 0
    comfyui_version: str = ""
    python_version: str = ""
    pytorch_version: str = ""
    argv: list[str] = Field(default_factory=list)


class SystemStats(BaseModel):
    """`GET /system_stats`: versions, RAM and devices."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    system: SystemInfo = Field(default_factory=SystemInfo)
    devices: list[Device] = Field(default_factory=list)


class Features(BaseModel):
    """`GET /features`."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    supports_preview_metadata: bool = False
    max_upload_size: int | None = None


class NodeInputs(BaseModel):
    """Input specs of a node class: name -> `[type or choices, options?]`."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    required: dict[str, list[Any]] = Field(default_factory=dict)
    optional: dict[str, list[Any]] = Field(default_factory=dict)
    hidden: dict[str, Any] = Field(default_factory=dict)


class NodeSchema(BaseModel):
    """One class of `GET /object_info`."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    name: str
    display_name: str | None = None
    category: str | None = None
    input: NodeInputs = Field(default_factory=NodeInputs)
    output: list[str] = Field(default_factory=list)
    output_name: list[str] = Field(default_factory=list)
    output_node: bool = False

    def input_spec(self, input_name: str) -> list[Any] | None:
        """The raw spec of a required or optional input."""
        return self.input.required.get(input_name) or self.input.optional.get(input_name)

    def choices(self, input_name: str) -> list[str] | None:
        """The allowed values of a combo input (e.g. `ckpt_name`), None if it is not a combo."""
        spec = self.input_spec(input_name)
        if not spec:
            return None
        if isinstance(spec[0], list):
            return [str(v) for v in spec[0]]
        options = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
        # Newer servers spell combos as ["COMBO", {"options": [...]}].
        return [str(v) for v in options["options"]] if spec[0] == "COMBO" and "options" in options else None


class RunResult(BaseModel):
    """A finished, successful run."""

    model_config = ConfigDict(frozen=True)

    prompt_id: str
    status: HistoryStatus = HistoryStatus.SUCCESS
    outputs: dict[str, NodeOutput] = Field(default_factory=dict)
    files: list[FileRef] = Field(default_factory=list)
    cached_nodes: list[str] = Field(default_factory=list)
    execution_s: float | None = None
