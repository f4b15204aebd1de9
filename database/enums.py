"""States and kinds stored in the databases."""

from enum import StrEnum


class DatabaseName(StrEnum):
    CLIENT = "client"
    ADMIN = "admin"
    SHARED = "shared"


class JobStatus(StrEnum):
    PENDING = "pending"  # ledger row committed, no flow run yet
    QUEUED = "queued"  # flow run created, waiting for a worker / node
    RUNNING = "running"  # holds a node slot: its prompt is (being) put on a node
    CANCELLING = "cancelling"  # cancel asked while on a node: waits until the node stopped the prompt
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        return self in (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED)


class BatchStatus(StrEnum):
    RUNNING = "running"  # some item has not ended yet
    COMPLETED = "completed"  # every item completed
    COMPLETED_WITH_ERRORS = "completed_with_errors"  # some items completed, some failed or were invalid
    FAILED = "failed"  # no item completed
    CANCELLED = "cancelled"  # cancelled by its owner or an operator

    @property
    def is_final(self) -> bool:
        return self is not BatchStatus.RUNNING


class AttemptStatus(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class Priority(StrEnum):
    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"


class NodeStatus(StrEnum):
    UNKNOWN = "unknown"
    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"


class NodeSource(StrEnum):
    STATIC = "static"  # from config.yaml
    DYNAMIC = "dynamic"  # registered through the API


class AdminRole(StrEnum):
    ADMIN = "admin"
    OPERATOR = "operator"
    VIEWER = "viewer"
