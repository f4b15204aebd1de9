"""Request and response models of the HTTP facade (what OpenAPI shows)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from database.enums import AdminRole, JobStatus, Priority


class ErrorBody(BaseModel):
    error: str
    detail: str


class RegisterRequest(BaseModel):
    client_name: str = Field(
        min_length=1, max_length=128, description="Unique name of the client application"
    )
    description: str = Field("", max_length=2000, description="What the client is for")


class RegisteredClient(BaseModel):
    client_id: str
    client_secret: str = Field(description="Shown once; store it")
    client_name: str


class TokenResponse(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int
    scope: str


class AdminLoginRequest(BaseModel):
    username: str
    password: str


class AdminTokenResponse(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int
    role: AdminRole


class ResultInfo(BaseModel):
    index: int
    url: str
    filename: str
    kind: str
    content_type: str
    size: int
    sha256: str


class Task(BaseModel):
    task_id: str
    task_type: str
    workflow_name: str
    status: JobStatus
    progress: float
    current_step: int | None
    total_steps: int | None
    node_id: str | None
    priority: Priority
    params: dict[str, Any]
    seed: int | None
    error: str | None
    attempts: int
    queue_position: int | None
    cancel_requested: bool
    created_at: datetime
    queued_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    results: list[ResultInfo]


class TaskPage(BaseModel):
    items: list[Task]
    total: int
    limit: int
    offset: int


class UploadInfo(BaseModel):
    upload_id: str
    filename: str
    width: int | None
    height: int | None
    size: int
    content_type: str
    sha256: str


class ParameterOut(BaseModel):
    name: str
    type: str
    default: Any
    minimum: float | int | None
    maximum: float | int | None
    choices: list[Any] | None
    description: str
    required: bool


class WorkflowOut(BaseModel):
    description: str
    output_kind: str
    parameters: list[ParameterOut]


class TaskTypeOut(BaseModel):
    default_workflow: str
    workflows: dict[str, WorkflowOut]


class WorkflowCatalogOut(BaseModel):
    task_types: dict[str, TaskTypeOut]
