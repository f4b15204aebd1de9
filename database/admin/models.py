"""Admin database: admin users, the node registry and its health history, run-time settings, audit, samples."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Float, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from database.base import AdminBase
from database.enums import AdminRole, NodeSource, NodeStatus
from database.types import StrEnumType, UTCDateTime, utcnow


class AdminUser(AdminBase):
    __tablename__ = "admin_users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[AdminRole] = mapped_column(StrEnumType(AdminRole, 16), default=AdminRole.ADMIN)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    # In every token; bumped on disable, enable, role and password changes so earlier tokens die at once.
    token_version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Node(AdminBase):
    """A ComfyUI node: static (config.yaml) or dynamic (registered); its inventory is read from the node."""

    __tablename__ = "nodes"

    node_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    base_url: Mapped[str] = mapped_column(String(255))
    group: Mapped[str] = mapped_column(String(64), default="default", index=True)
    source: Mapped[NodeSource] = mapped_column(StrEnumType(NodeSource, 16), default=NodeSource.STATIC)
    max_concurrent: Mapped[int] = mapped_column(Integer, default=1)
    capabilities: Mapped[list[str]] = mapped_column(JSON, default=list)
    weight: Mapped[float] = mapped_column(Float, default=1.0)
    status: Mapped[NodeStatus] = mapped_column(StrEnumType(NodeStatus, 16), default=NodeStatus.UNKNOWN)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    draining: Mapped[bool] = mapped_column(Boolean, default=False)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    consecutive_successes: Mapped[int] = mapped_column(Integer, default=0)
    checkpoints: Mapped[list[str]] = mapped_column(JSON, default=list)
    node_classes: Mapped[list[str]] = mapped_column(JSON, default=list)
    vram_total: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    vram_free: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    queue_depth: Mapped[int] = mapped_column(Integer, default=0)
    last_checkpoint: Mapped[str | None] = mapped_column(String(255), nullable=True)  # for model-aware routing
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_check_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    # SHA-256 of the node's own token, handed out when it first registered: it alone (or an operator) may
    # re-register this id or send its heartbeats. Random 32-byte tokens need no slow hash.
    token_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class HealthCheck(AdminBase):
    __tablename__ = "node_health_checks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    node_id: Mapped[str] = mapped_column(String(128), index=True)
    ok: Mapped[bool] = mapped_column(Boolean)
    latency_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class Setting(AdminBase):
    """A workflow or system setting changed at run time (e.g. `strategy.<group>`)."""

    __tablename__ = "settings"

    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    value: Mapped[Any] = mapped_column(JSON)
    updated_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class AuditLog(AdminBase):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(255), default="")
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class PerformanceSample(AdminBase):
    """One finished attempt's timing, for the performance endpoints."""

    __tablename__ = "performance_samples"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    node_id: Mapped[str] = mapped_column(String(128), index=True)
    task_type: Mapped[str] = mapped_column(String(64))
    workflow_name: Mapped[str] = mapped_column(String(128))
    ok: Mapped[bool] = mapped_column(Boolean)
    queue_seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
    execution_seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
