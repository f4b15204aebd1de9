"""Request and response models of the admin and node routes."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from api.schemas import INT32_MAX, INT64_MAX, Task, Text
from database.enums import AdminRole

Strategy = Literal["round_robin", "least_loaded", "weighted", "random", "model_aware"]


class NodeIn(BaseModel):
    node_id: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:-]+$")
    base_url: Text = Field(
        max_length=255, pattern=r"^https?://\S+$", description="e.g. http://192.168.1.101:8188"
    )
    group: Text = Field("default", min_length=1, max_length=64)
    max_concurrent: int = Field(1, ge=1, le=INT32_MAX)
    capabilities: list[Text] = Field(
        default_factory=list, max_length=64, description="Task types served; empty = all"
    )
    weight: float = Field(1.0, gt=0, le=1e6, allow_inf_nan=False)


class HeartbeatIn(BaseModel):
    queue_depth: int | None = Field(None, ge=0, le=INT32_MAX)
    vram_total: int | None = Field(None, ge=0, le=INT64_MAX)
    vram_free: int | None = Field(None, ge=0, le=INT64_MAX)
    checkpoints: list[Text] | None = Field(None, max_length=10_000)


class NodeOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    node_id: str
    base_url: str
    group: str
    source: str
    max_concurrent: int
    capabilities: list[str]
    weight: float
    status: str
    enabled: bool
    draining: bool
    queue_depth: int
    vram_total: int | None
    vram_free: int | None
    checkpoints: list[str]
    last_seen_at: datetime | None
    last_check_at: datetime | None
    last_error: str | None


class HealthCheckOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    ok: bool
    latency_ms: float | None
    error: str | None
    at: datetime


class NodeHealthOut(BaseModel):
    node: NodeOut
    checks: list[HealthCheckOut]


class StrategyOut(BaseModel):
    group: str
    strategy: Strategy
    source: Literal["admin", "config"]


class StrategyIn(BaseModel):
    strategy: Strategy


class ClientOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    client_id: str = Field(validation_alias="id")
    client_name: str = Field(validation_alias="name")
    description: str
    is_active: bool
    daily_quota: int | None
    jobs_per_minute: int | None = None
    max_concurrent_jobs: int | None = None
    created_at: datetime


class ClientPage(BaseModel):
    items: list[ClientOut]
    total: int


class ClientCreate(BaseModel):
    client_name: Text = Field(min_length=1, max_length=128)
    description: Text = Field("", max_length=2000)
    daily_quota: int | None = Field(None, ge=0, le=INT32_MAX)


class ClientPatch(BaseModel):
    daily_quota: int | None = Field(None, ge=0, le=INT32_MAX, description="Jobs per day; null = unlimited")
    jobs_per_minute: int | None = Field(
        None, ge=0, le=INT32_MAX, description="Submits per minute; null = unlimited"
    )
    max_concurrent_jobs: int | None = Field(
        None, ge=0, le=INT32_MAX, description="Unfinished jobs at once; null = unlimited"
    )
    description: Text | None = Field(None, max_length=2000)


class ClientSecret(BaseModel):
    client_id: str
    client_name: str
    client_secret: str = Field(description="Shown once")


class AdminUserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    username: str
    role: AdminRole
    is_active: bool
    created_at: datetime
    last_login_at: datetime | None


class AdminUserCreate(BaseModel):
    username: Text = Field(min_length=1, max_length=64)
    password: Text = Field(min_length=8, max_length=1024)
    role: AdminRole = AdminRole.OPERATOR


class AdminUserPatch(BaseModel):
    role: AdminRole = Field(description="admin, operator or viewer; the last active admin keeps the admin role")


class AuditOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    actor: str
    action: str
    target: str
    detail: dict[str, Any]
    at: datetime


class Overview(BaseModel):
    jobs_by_status: dict[str, int]
    nodes: dict[str, int]
    clients: int
    throughput: list[dict[str, Any]]


class AttemptOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    number: int
    node_id: str
    prompt_id: str
    status: str
    error: str | None
    started_at: datetime
    finished_at: datetime | None
    execution_seconds: float | None


class AdminTaskRow(Task):
    """A job as the dashboard lists it: the client's view plus whose job it is."""

    client_id: str
    client_name: str | None = Field(None, description="None when the client no longer exists")


class AdminTaskPage(BaseModel):
    items: list[AdminTaskRow]
    total: int
    limit: int
    offset: int


class AdminTask(AdminTaskRow):
    flow_run_id: str | None
    node_group: str
    attempt_list: list[AttemptOut]
