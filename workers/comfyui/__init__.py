"""Client of ComfyUI nodes: typed HTTP calls, typed WebSocket events, and a run follower that survives drops."""

from workers.comfyui.client import ComfyUIClient, Graph
from workers.comfyui.errors import (
    ComfyUIError,
    ExecutionFailed,
    NodeTimeout,
    NodeUnavailable,
    OutputMissing,
    PromptInterrupted,
    PromptLost,
    PromptRejected,
)
from workers.comfyui.events import (
    Event,
    Executed,
    Executing,
    ExecutionCached,
    ExecutionError,
    ExecutionInterrupted,
    ExecutionStart,
    ExecutionSuccess,
    FeatureFlags,
    ImageFormat,
    NodeProgress,
    Preview,
    PreviewMetadata,
    Progress,
    ProgressState,
    Status,
    Unknown,
    parse_binary,
    parse_message,
)
from workers.comfyui.models import (
    Device,
    ErrorDetail,
    Features,
    FileRef,
    FileType,
    HistoryEntry,
    NodeError,
    NodeOutput,
    NodeSchema,
    QueueItem,
    QueueState,
    RunResult,
    SubmitResult,
    SystemStats,
)
from workers.comfyui.tracker import EventHandler

__all__ = [
    "ComfyUIClient", "ComfyUIError", "Device", "ErrorDetail", "Event", "EventHandler", "Executed", "Executing",
    "ExecutionCached", "ExecutionError", "ExecutionFailed", "ExecutionInterrupted", "ExecutionStart",
    "ExecutionSuccess", "FeatureFlags", "Features", "FileRef", "FileType", "Graph", "HistoryEntry", "ImageFormat",
    "NodeError", "NodeOutput", "NodeProgress", "NodeSchema", "NodeTimeout", "NodeUnavailable", "OutputMissing",
    "Preview", "PreviewMetadata", "Progress", "ProgressState", "PromptInterrupted", "PromptLost", "PromptRejected",
    "QueueItem", "QueueState", "RunResult", "Status", "SubmitResult", "SystemStats", "Unknown", "parse_binary",
    "parse_message",
]
