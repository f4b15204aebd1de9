"""Names shared by the API and the worker: work pools per node group, queues per priority, deployment names."""

from __future__ import annotations

from enum import StrEnum

POOL_PREFIX = "comfyui-"
WORKER_TYPE = "comfyws-inprocess"


class Priority(StrEnum):
    """Job priority as clients state it; each maps to one work queue of the pool."""

    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"


# Queue name -> Prefect queue priority (1 is served first), in serving order.
QUEUES: dict[str, int] = {Priority.HIGH.value: 1, Priority.NORMAL.value: 2, Priority.LOW.value: 3}
DEFAULT_QUEUE = Priority.NORMAL.value
# The API tags the flow run of each job `job:<id>`; such runs are made to start at once (never for later), which is
# what lets a worker take one straight from its Scheduled event.
JOB_TAG_PREFIX = "job:"


def pool_name(group: str) -> str:
    """The work pool that serves one node group, e.g. `comfyui-default`."""
    return f"{POOL_PREFIX}{group}"


def group_of_pool(pool: str) -> str:
    """The node group a work pool serves (inverse of `pool_name`)."""
    if not pool.startswith(POOL_PREFIX):
        raise ValueError(f"{pool!r} is not a comfyws work pool")
    return pool.removeprefix(POOL_PREFIX)


def deployment_name(flow_name: str, group: str) -> str:
    """Full deployment name as `run_deployment` takes it, e.g. `generate-image/default`."""
    return f"{flow_name}/{group}"


def queue_for_priority(priority: str | Priority) -> str:
    """The work queue a job of this priority goes to; unknown priorities raise ValueError."""
    return Priority(priority).value


def job_tag(job_id: str) -> str:
    """The tag on the flow run of one job, e.g. `job:3f2c...`."""
    return f"{JOB_TAG_PREFIX}{job_id}"
