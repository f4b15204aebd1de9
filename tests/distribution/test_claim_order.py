"""Priority-aware claims on real databases: a freed slot goes to the best live waiter of the group."""

from __future__ import annotations

from datetime import timedelta

import pytest

from database.engine import session_scope
from database.enums import DatabaseName, JobStatus, Priority
from database.shared.models import Job
from database.types import utcnow
from tests.workers.registry_db import add_job, add_node, job_row, registry_db  # noqa: F401 - fixture
from workers import registry
from workers.balancer import NoFreeSlot, Requirements

REQ = Requirements(task_type="text_to_image")

pytestmark = pytest.mark.usefixtures("registry_db")


def _claim(job_id: str, *, exclude: frozenset[str] = frozenset()) -> str:
    return registry.claim_node(job_id, "default", REQ, strategy="least_loaded", exclude=exclude).node_id


def _waits(job_id: str, *, exclude: frozenset[str] = frozenset()) -> None:
    """The job tries to claim, finds no slot, and is left waiting (as in the flow's claim loop)."""
    with pytest.raises(NoFreeSlot):
        _claim(job_id, exclude=exclude)
    assert job_row(job_id).waiting_since is not None


def _set(job_id: str, **fields: object) -> None:
    with session_scope(DatabaseName.SHARED) as session:
        job = session.get(Job, job_id)
        assert job is not None
        for name, value in fields.items():
            setattr(job, name, value)


def _finish(job_id: str) -> None:
    _set(job_id, status=JobStatus.COMPLETED)


def test_a_freed_slot_goes_to_the_waiting_high_priority_job_not_the_older_normal_one() -> None:
    add_node("a", max_concurrent=1)
    busy = add_job(status=JobStatus.RUNNING, node_id="a")
    normal = add_job()
    high = add_job()
    _set(high, priority=Priority.HIGH)
    _waits(normal)
    _waits(high)

    _finish(busy)

    with pytest.raises(NoFreeSlot) as held:
        _claim(normal)
    assert "held for jobs ahead" in str(held.value)
    assert _claim(high) == "a"
    assert job_row(high).waiting_since is None  # a job with a node no longer waits
    _finish(high)
    assert _claim(normal) == "a"


def test_among_equal_priorities_the_oldest_waiter_goes_first() -> None:
    add_node("a", max_concurrent=1)
    busy = add_job(status=JobStatus.RUNNING, node_id="a")
    older, newer = add_job(), add_job()
    _set(older, created_at=utcnow() - timedelta(minutes=1))
    _waits(newer)
    _waits(older)
    _finish(busy)

    with pytest.raises(NoFreeSlot):
        _claim(newer)
    assert _claim(older) == "a"


def test_a_waiter_whose_worker_died_holds_no_slot() -> None:
    add_node("a", max_concurrent=1)
    busy = add_job(status=JobStatus.RUNNING, node_id="a")
    normal, dead_high = add_job(), add_job()
    _set(dead_high, priority=Priority.HIGH)
    _waits(dead_high)
    _waits(normal)
    _set(dead_high, waiting_seen_at=utcnow() - timedelta(seconds=30))  # its claim loop stopped beating
    _finish(busy)

    assert _claim(normal) == "a"


def test_a_waiter_ahead_that_cannot_use_the_free_node_does_not_block_it() -> None:
    add_node("a", max_concurrent=1)
    add_node("b", max_concurrent=1)
    add_job(status=JobStatus.RUNNING, node_id="b")
    busy_a = add_job(status=JobStatus.RUNNING, node_id="a")
    high = add_job()
    _set(high, priority=Priority.HIGH)
    _waits(high, exclude=frozenset({"a"}))  # it already failed on a: only b will do
    normal = add_job()
    _waits(normal)
    _finish(busy_a)

    assert _claim(normal) == "a"
    assert job_row(high).waiting_nodes == ["b"]
