"""Small values passed between the tasks of a generation flow."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from workers.comfyui.outputs import FileRef


class ImageInput(BaseModel):
    """A client upload that must be put on the node before the graph runs."""

    parameter: str
    local_path: str = Field(description="Path relative to the uploads directory")
    targets: list[tuple[str, str]] = Field(description="(node_id, input_name) pairs that take the node-side name")


class PreparedJob(BaseModel):
    """The rendered graph of a job and what it needs from a node."""

    client_id: str
    graph: dict[str, Any]
    seed: int | None
    images: list[ImageInput] = Field(default_factory=list)
    output_kind: str = "image"
    workflow_name: str


class NodeRun(BaseModel):
    """A successful run of the job's prompt on one node."""

    node_id: str
    base_url: str
    prompt_id: str
    files: list[FileRef]
    animated: list[bool] = Field(default_factory=list, description="Per file: was it an animation or video")
    execution_s: float | None = None


class StoredResult(BaseModel):
    index: int
    filename: str
    path: str
    kind: str
    content_type: str
    size: int
    sha256: str
