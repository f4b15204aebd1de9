"""Shared database: the job ledger (the truth about a job), its attempts and its result files."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from database.base import SharedBase
from database.enums import AttemptStatus, BatchStatus, JobStatus, Priority
from database.types import StrEnumType, UTCDateTime, utcnow


class Job(SharedBase):
    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64), index=True)  # client database id, no FK across DBs
    task_type: Mapped[str] = mapped_column(String(64))
    workflow_name: Mapped[str] = mapped_column(String(128))
    status: Mapped[JobStatus] = mapped_column(
        StrEnumType(JobStatus, 16), default=JobStatus.PENDING, index=True
    )
    priority: Mapped[Priority] = mapped_column(StrEnumType(Priority, 8), default=Priority.NORMAL)
    node_group: Mapped[str] = mapped_column(String(64), default="default")
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # what the client asked for
    values: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)  # what was rendered
    seed: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    node_id: Mapped[str | None] = mapped_column(String(128), nullable=True, index=True)
    prompt_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    flow_run_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    progress: Mapped[float] = mapped_column(Float, default=0.0)  # 0..1
    current_step: Mapped[int | None] = mapped_column(Integer, nullable=True)
    total_steps: Mapped[int | None] = mapped_column(Integer, nullable=True)
    work: Mapped[int | None] = mapped_column(Integer, nullable=True)  # its size: the sampler steps its graph runs
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    # Set only while the job's flow waits in the claim loop for a node slot: claims go to the best live waiter
    # (priority, then age). waiting_seen_at is the loop's heartbeat; a stale one (dead worker) is ignored.
    waiting_since: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    waiting_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True, index=True)
    waiting_nodes: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)  # nodes it could run on
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    queued_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    # An item of a batch (its index there) or None; a batch's items get their flow runs from its feeder.
    batch_id: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)
    batch_index: Mapped[int | None] = mapped_column(Integer, nullable=True)

    attempt_rows: Mapped[list[JobAttempt]] = relationship(
        back_populates="job", order_by="JobAttempt.number", cascade="all, delete-orphan"
    )
    results: Mapped[list[ResultFile]] = relationship(
        back_populates="job", order_by="ResultFile.index", cascade="all, delete-orphan"
    )


class JobAttempt(SharedBase):
    """One try of a job on one node; a job that fails on N distinct nodes ends failed."""

    __tablename__ = "job_attempts"
    __table_args__ = (UniqueConstraint("job_id", "number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    node_id: Mapped[str] = mapped_column(String(128))
    prompt_id: Mapped[str] = mapped_column(String(64))
    status: Mapped[AttemptStatus] = mapped_column(
        StrEnumType(AttemptStatus, 16), default=AttemptStatus.RUNNING
    )
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    execution_seconds: Mapped[float | None] = mapped_column(Float, nullable=True)

    job: Mapped[Job] = relationship(back_populates="attempt_rows")


class ResultFile(SharedBase):
    """A file a job produced, stored under outputs/ with its checksum; recorded once per (job, index)."""

    __tablename__ = "result_files"
    __table_args__ = (UniqueConstraint("job_id", "index"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    index: Mapped[int] = mapped_column(Integer)
    filename: Mapped[str] = mapped_column(String(255))
    path: Mapped[str] = mapped_column(String(512))  # relative to the outputs directory
    kind: Mapped[str] = mapped_column(String(16))  # image | video
    content_type: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    node_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    job: Mapped[Job] = relationship(back_populates="results")


class IdempotencyKey(SharedBase):
    """A client's Idempotency-Key on a submit: the job it created and a hash of the request, kept for 24 h.

    Written in the same transaction as the job row, so a key never names a job that does not exist; the primary
    key (client, key) makes a concurrent duplicate fail and read the winner back instead of creating a second job.
    """

    __tablename__ = "idempotency_keys"

    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))  # sha256 of the task type and the canonical body
    job_id: Mapped[str] = mapped_column(String(36))
    status_code: Mapped[int] = mapped_column(Integer, default=202)  # the first answer's status, replayed
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class Batch(SharedBase):
    """A group of jobs submitted together; its items are ordinary jobs carrying `batch_id` and `batch_index`.

    Items that failed validation never became jobs: they are kept in `item_errors` (index, row, error). The
    feeder (a `run-batch` flow run) gives items their flow runs as capacity frees; `feeder_seen_at` is its
    heartbeat, so the API starts a new feeder when one died."""

    __tablename__ = "batches"
    __table_args__ = (UniqueConstraint("client_id", "idempotency_key"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    task_type: Mapped[str] = mapped_column(String(64))
    workflow_name: Mapped[str] = mapped_column(String(128))
    node_group: Mapped[str] = mapped_column(String(64), default="default")
    status: Mapped[BatchStatus] = mapped_column(StrEnumType(BatchStatus, 24), default=BatchStatus.RUNNING, index=True)
    total: Mapped[int] = mapped_column(Integer, default=0)  # items submitted, valid or not
    defaults: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    item_errors: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    source: Mapped[str] = mapped_column(String(16), default="json")  # json | sweep | csv | jsonl | schedule
    flow_run_id: Mapped[str | None] = mapped_column(String(64), nullable=True)  # the latest feeder
    feeders: Mapped[int] = mapped_column(Integer, default=0)  # feeders started (idempotency of the next)
    feeder_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(255), nullable=True)
    request_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
