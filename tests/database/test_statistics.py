"""Performance aggregates and throughput on SQLite and MariaDB: the numbers an operator's dashboard shows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from database.engine import session_scope
from database.enums import AttemptStatus, DatabaseName
from database.shared import repositories as jobs
from database.shared.models import Job
from database.shared.statistics import percentile
from tests.database.factories import make_job, put_on_node
from tests.fixtures.databases import DatabaseUrls

SHARED = DatabaseName.SHARED
NOW = datetime(2025, 1, 1, 12, 0, 30, tzinfo=UTC)


def _finished_job(*, workflow: str, node: str, ok: bool, seconds: float, finished: datetime) -> None:
    with session_scope(SHARED) as session:
        job = make_job(session, workflow_name=workflow)
        attempt = jobs.start_attempt(session, job.id, node_id=node, prompt_id="p")
        status = AttemptStatus.SUCCEEDED if ok else AttemptStatus.FAILED
        jobs.finish_attempt(session, attempt.id, status=status, execution_seconds=seconds)
        put_on_node(session, job.id, node_id=node, prompt_id="p")
        jobs.mark_completed(session, job.id) if ok else jobs.mark_failed(session, job.id, "boom")
        row = session.get_one(Job, job.id)
        row.started_at, row.finished_at = finished - timedelta(seconds=seconds), finished


def test_percentile_is_nearest_rank() -> None:
    assert percentile([], 0.95) is None
    assert percentile([3.0], 0.95) == 3.0
    assert percentile([float(i) for i in range(1, 101)], 0.95) == 95.0


def test_performance_per_node_and_per_workflow(databases: DatabaseUrls) -> None:
    for seconds in (1.0, 2.0, 3.0):
        _finished_job(workflow="basic", node="node-a", ok=True, seconds=seconds, finished=NOW)
    _finished_job(workflow="sdxl", node="node-b", ok=False, seconds=10.0, finished=NOW)
    with session_scope(SHARED) as session:
        make_job(session)  # pending jobs are not performance

    with session_scope(SHARED) as session:
        nodes = {s.key: s for s in jobs.node_performance(session)}
        flows = {s.key: s for s in jobs.workflow_performance(session)}

    assert set(nodes) == {"node-a", "node-b"}
    a = nodes["node-a"]
    assert (a.total, a.succeeded, a.failed, a.failure_rate) == (3, 3, 0, 0.0)
    assert a.mean_seconds == pytest.approx(2.0) and a.p95_seconds == pytest.approx(3.0)
    assert nodes["node-b"].failure_rate == 1.0
    assert set(flows) == {"text_to_image/basic", "text_to_image/sdxl"}
    assert flows["text_to_image/basic"].mean_seconds == pytest.approx(2.0)
    assert flows["text_to_image/sdxl"].failed == 1


def test_performance_since_excludes_older_work(databases: DatabaseUrls) -> None:
    _finished_job(workflow="basic", node="node-a", ok=True, seconds=1.0, finished=NOW - timedelta(hours=2))
    _finished_job(workflow="basic", node="node-a", ok=False, seconds=1.0, finished=NOW)
    with session_scope(SHARED) as session:
        (stats,) = jobs.workflow_performance(session, since=NOW - timedelta(hours=1))
    assert (stats.total, stats.failed) == (1, 1)


def test_throughput_counts_completed_and_failed_per_minute(databases: DatabaseUrls) -> None:
    _finished_job(workflow="basic", node="n", ok=True, seconds=1.0, finished=NOW)
    _finished_job(workflow="basic", node="n", ok=True, seconds=1.0, finished=NOW - timedelta(seconds=20))
    _finished_job(workflow="basic", node="n", ok=False, seconds=1.0, finished=NOW - timedelta(minutes=2))
    _finished_job(workflow="basic", node="n", ok=True, seconds=1.0, finished=NOW - timedelta(minutes=30))

    with session_scope(SHARED) as session:
        series = jobs.throughput(session, minutes=5, now=NOW)

    assert len(series) == 5
    assert series[-1].minute == datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
    assert [(p.completed, p.failed) for p in series] == [(0, 0), (0, 0), (0, 1), (0, 0), (2, 0)]
