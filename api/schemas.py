"""Request and response models of the HTTP facade (what OpenAPI shows)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from database.enums import AdminRole, JobStatus, Priority

INT32_MAX = 2**31 - 1  # the largest value of an Integer column on every backend
INT64_MAX = 2**63 - 1  # ... of a BigInteger column


def text_problem(value: str) -> str | None:
    """Why a string cannot be stored or sent on (a NUL, a lone surrogate such as "\\ud800"), or None."""
    if "\x00" in value:
        return "must not contain NUL characters"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "must be valid Unicode text (a lone surrogate is not)"
    return None


def _storable(value: str) -> str:
    problem = text_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


Text = Annotated[str, AfterValidator(_storable)]


class FieldError(BaseModel):
    field: str = Field(description="The parameter, body field, query value or header at fault")
    message: str


class ErrorBody(BaseModel):
    """Every 4xx/5xx answer (some errors add fields, e.g. retry_after, request_id, nodes)."""

    model_config = ConfigDict(extra="allow")

    error: str = Field(description="Stable code: validation_error, not_found, unauthorized, ...")
    detail: str = Field(description="Human message naming the field at fault")
    fields: list[FieldError] | None = Field(None, description="422 only: each value at fault")
    request_id: str | None = Field(None, description="500 only: the id the server logged the error under")


_ERROR_MEANINGS = {
    400: "Malformed request",
    401: "Missing, expired or revoked token",
    403: "The token's role may not do this",
    404: "No such resource (or not the caller's)",
    409: "Conflicts with the current state",
    413: "Too large (body, image pixels, job parameters)",
    415: "Not an accepted image",
    422: "A value is invalid; `fields` names each one",
    429: "Quota or rate limit reached",
    500: "Unexpected error; `request_id` names it in the server log",
    503: "The scheduler is unavailable",
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI declarations of the error answers a route gives, all with the ErrorBody schema."""
    return {code: {"model": ErrorBody, "description": _ERROR_MEANINGS[code]} for code in codes}


class RegisterRequest(BaseModel):
    client_name: Text = Field(
        min_length=1, max_length=128, description="Unique name of the client application"
    )
    description: Text = Field("", max_length=2000, description="What the client is for")


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
    username: Text = Field(max_length=256)
    password: Text = Field(max_length=1024)


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
    status_detail: str | None = Field(
        None, description="Why a waiting job waits, e.g. `waiting for a node of group default` (no node up)"
    )
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
