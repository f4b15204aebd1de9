"""Request and response bodies of the batch routes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from database.enums import BatchStatus, Priority


class BatchRequest(BaseModel):
    """A batch as JSON: explicit items, or a sweep expanded as a grid over the defaults (or both)."""

    model_config = ConfigDict(extra="forbid")

    task_type: str = Field(description="text-to-image, text_to_image, image-to-image, ...", max_length=64)
    workflow_name: str | None = Field(None, max_length=128, description="Workflow of the task type")
    name: str | None = Field(None, max_length=255, description="Shown in lists")
    defaults: dict[str, Any] = Field(default_factory=dict, description="Parameters every item starts from")
    items: list[dict[str, Any]] | None = Field(None, description="One parameter set per item (over defaults)")
    sweep: dict[str, list[Any]] | None = Field(
        None, description="Parameter -> values; the grid of all combinations becomes the items"
    )
    priority: Priority = Field(Priority.LOW, description="Items' priority unless an item names its own")
    node_group: str | None = Field(None, max_length=64, description="Node group of every item")


class BatchItemOut(BaseModel):
    index: int = Field(description="Position in the batch, from 0")
    row: int | None = Field(None, description="Line of the uploaded CSV/JSONL file (CSV: the header is line 1)")
    task_id: str | None = Field(None, description="The item's job, when it was valid")
    status: str | None = Field(None, description="The job's status")
    error: str | None = Field(None, description="Why the item was refused")
    fields: list[dict[str, str]] | None = Field(None, description="Fields at fault")


class Batch(BaseModel):
    batch_id: str
    name: str | None
    task_type: str
    workflow_name: str
    status: BatchStatus
    total: int = Field(description="Items submitted, valid or not")
    counts: dict[str, int] = Field(description="Items per job status, plus `invalid`")
    progress: float = Field(description="Share of items that have ended, 0..1")
    created_at: datetime
    finished_at: datetime | None
    client_id: str | None = Field(None, description="Owner (admin views only)")
    items: list[BatchItemOut] | None = Field(None, description="Every item (single-batch views)")


class BatchPage(BaseModel):
    items: list[Batch]
    total: int
    limit: int
    offset: int
