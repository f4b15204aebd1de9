"""The job ledger on SQLite and MariaDB: transitions, attempts, results, listing, queue order, timestamps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from database.engine import session_scope
from database.enums import AttemptStatus, DatabaseName, JobStatus, Priority
from database.errors import JobNotFoundError
from database.shared import repositories as jobs
from database.shared.models import Job, ResultFile
from tests.database.factories import make_job, put_on_node
from tests.fixtures.databases import DatabaseUrls

SHARED = DatabaseName.SHARED


def _new_job(**kwargs: object) -> str:
    with session_scope(SHARED) as session:
        return make_job(session, **kwargs).id  # type: ignore[arg-type]


def _load(job_id: str) -> Job:
    with session_scope(SHARED) as session:
        job = jobs.get_job(session, job_id)
        assert job is not None
        return job


def test_a_job_walks_pending_queued_running_completed(databases: DatabaseUrls) -> None:
    job_id = _new_job()
    assert _load(job_id).status is JobStatus.PENDING

    with session_scope(SHARED) as session:
        assert jobs.mark_queued(session, job_id, "flow-run-1")
    with session_scope(SHARED) as session:
        assert jobs.claim(session, job_id, node_id="node-1")
        assert jobs.mark_running(session, job_id, node_id="node-1", prompt_id="p1")
        jobs.update_progress(session, job_id, step=5, total=20)
    running = _load(job_id)
    assert (running.status, running.node_id, running.flow_run_id) == (
        JobStatus.RUNNING,
        "node-1",
        "flow-run-1",
    )
    assert running.progress == pytest.approx(0.25)

    with session_scope(SHARED) as session:
        assert jobs.mark_completed(session, job_id)
    done = _load(job_id)
    assert done.status is JobStatus.COMPLETED and done.progress == 1.0
    assert done.queued_at and done.started_at and done.finished_at
    assert done.queued_at <= done.started_at <= done.finished_at


@pytest.mark.parametrize("final", ["completed", "failed", "cancelled"])
def test_a_final_state_is_final(databases: DatabaseUrls, final: str) -> None:
    job_id = _new_job()
    with session_scope(SHARED) as session:
        put_on_node(session, job_id, node_id="node-1", prompt_id="p1")  # only a job on a node completes
        {"completed": lambda: jobs.mark_completed(session, job_id),
         "failed": lambda: jobs.mark_failed(session, job_id, "node exploded"),
         "cancelled": lambda: jobs.mark_cancelled(session, job_id)}[final]()  # fmt: skip
    before = _load(job_id)

    with session_scope(SHARED) as session:
        assert not jobs.mark_completed(session, job_id)
        assert not jobs.mark_failed(session, job_id, "late failure")
        assert not jobs.mark_cancelled(session, job_id)
        assert not jobs.mark_running(session, job_id, node_id="node-2", prompt_id="p2")
        assert not jobs.mark_queued(session, job_id, "flow-run-2")
        assert not jobs.request_cancel(session, job_id)
        assert not jobs.update_progress(session, job_id, step=1, total=2)

    after = _load(job_id)
    assert after.status == JobStatus(final)
    assert (after.error, after.finished_at, after.node_id) == (
        before.error,
        before.finished_at,
        before.node_id,
    )


def test_started_at_is_kept_across_a_failover(databases: DatabaseUrls) -> None:
    job_id = _new_job()
    with session_scope(SHARED) as session:
        put_on_node(session, job_id, node_id="node-1", prompt_id="p1")
    first_start = _load(job_id).started_at
    with session_scope(SHARED) as session:
        assert jobs.release_node(session, job_id)
    assert _load(job_id).status is JobStatus.QUEUED
    with session_scope(SHARED) as session:
        assert jobs.claim(session, job_id, node_id="node-2")
        assert jobs.mark_running(session, job_id, node_id="node-2", prompt_id="p2")

    job = _load(job_id)
    assert job.started_at == first_start and job.node_id == "node-2" and job.status is JobStatus.RUNNING


def test_a_waiting_job_is_cancelled_at_once_and_never_claimed(databases: DatabaseUrls) -> None:
    job_id = _new_job()
    with session_scope(SHARED) as session:
        jobs.mark_queued(session, job_id, "flow-run-1")
        assert jobs.request_cancel(session, job_id) is JobStatus.CANCELLED
    with session_scope(SHARED) as session:
        assert not jobs.claim(session, job_id, node_id="node-1")  # the slot claim that lost the race
        assert not jobs.mark_running(session, job_id, node_id="node-1", prompt_id="p1")
    job = _load(job_id)
    assert (job.status, job.node_id, job.cancel_requested) == (JobStatus.CANCELLED, None, True)


def test_a_job_on_a_node_is_cancelling_until_the_node_stopped_it(databases: DatabaseUrls) -> None:
    job_id = _new_job()
    with session_scope(SHARED) as session:
        put_on_node(session, job_id, node_id="node-1", prompt_id="p1")
        assert jobs.request_cancel(session, job_id) is JobStatus.CANCELLING
        assert jobs.request_cancel(session, job_id) is None  # asked twice: nothing changes
    assert _load(job_id).status is JobStatus.CANCELLING
    with session_scope(SHARED) as session:
        assert not jobs.mark_completed(session, job_id)  # a completion arriving now does not win
        assert not jobs.mark_failed(session, job_id, "late")
        assert not jobs.release_node(session, job_id)
        assert not jobs.claim(session, job_id, node_id="node-2")
        assert jobs.mark_cancelled(session, job_id)
    job = _load(job_id)
    assert job.status is JobStatus.CANCELLED and job.finished_at is not None and job.error is None


def test_the_transition_table_is_the_documented_one() -> None:
    from database.shared.transitions import TRANSITIONS

    pending, queued, running, cancelling = (JobStatus.PENDING, JobStatus.QUEUED, JobStatus.RUNNING,
                                            JobStatus.CANCELLING)
    final = {JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED}
    assert TRANSITIONS[pending] == {queued, JobStatus.FAILED, JobStatus.CANCELLED}
    assert TRANSITIONS[queued] == {running, JobStatus.FAILED, JobStatus.CANCELLED}
    assert TRANSITIONS[running] == final | {queued, cancelling}
    assert TRANSITIONS[cancelling] == {JobStatus.CANCELLED}
    assert all(TRANSITIONS[state] == set() for state in final)


def test_concurrent_claim_and_cancel_have_one_winner(databases: DatabaseUrls) -> None:
    """Two sessions racing on the same row: whichever commits first wins, the other's write changes nothing."""
    from concurrent.futures import ThreadPoolExecutor

    for _ in range(10):
        job_id = _new_job()
        with session_scope(SHARED) as session:
            jobs.mark_queued(session, job_id, "flow-run-1")

        def claim(job_id: str = job_id) -> bool:
            with session_scope(SHARED) as session:
                return jobs.claim(session, job_id, node_id="node-1")

        def cancel(job_id: str = job_id) -> JobStatus | None:
            with session_scope(SHARED) as session:
                return jobs.request_cancel(session, job_id)

        with ThreadPoolExecutor(2) as pool:
            claimed, cancelled = pool.submit(claim), pool.submit(cancel)
            won_claim, cancel_result = claimed.result(), cancelled.result()
        job = _load(job_id)
        if won_claim:  # the claim came first: the cancel found it on a node
            assert cancel_result is JobStatus.CANCELLING and job.status is JobStatus.CANCELLING
        else:
            assert cancel_result is JobStatus.CANCELLED and job.status is JobStatus.CANCELLED


def test_transitions_on_an_unknown_job_raise(databases: DatabaseUrls) -> None:
    with session_scope(SHARED) as session, pytest.raises(JobNotFoundError):
        jobs.mark_completed(session, "no-such-job")


def test_attempts_are_numbered_and_counted(databases: DatabaseUrls) -> None:
    job_id = _new_job()
    with session_scope(SHARED) as session:
        first = jobs.start_attempt(session, job_id, node_id="node-1", prompt_id="p1")
        assert jobs.finish_attempt(session, first.id, status=AttemptStatus.FAILED, error="timeout")
        assert not jobs.finish_attempt(session, first.id, status=AttemptStatus.SUCCEEDED)  # already closed
        second = jobs.start_attempt(session, job_id, node_id="node-2", prompt_id="p2")
        jobs.finish_attempt(session, second.id, status=AttemptStatus.SUCCEEDED, execution_seconds=4.5)

    with session_scope(SHARED) as session:
        job = session.get_one(Job, job_id)
        rows = [(a.number, a.node_id, a.status, a.error) for a in job.attempt_rows]
        seconds = job.attempt_rows[1].execution_seconds
    assert job.attempts == 2
    assert rows == [
        (1, "node-1", AttemptStatus.FAILED, "timeout"),
        (2, "node-2", AttemptStatus.SUCCEEDED, None),
    ]
    assert seconds == 4.5


def _result(session: object, job_id: str, *, filename: str = "out_00001.png") -> ResultFile:
    return jobs.add_result(
        session,  # type: ignore[arg-type]
        job_id,
        index=0,
        filename=filename,
        path=f"{job_id}/{filename}",
        kind="image",
        content_type="image/png",
        size=1234,
        sha256="ab" * 32,
        node_id="node-1",
    )


def test_add_result_twice_keeps_one_row(databases: DatabaseUrls) -> None:
    job_id = _new_job()
    with session_scope(SHARED) as session:
        first_id = _result(session, job_id).id
    with session_scope(SHARED) as session:  # a retried task records the same output again
        again = _result(session, job_id, filename="retry.png")
        count = len(session.scalars(select(ResultFile).where(ResultFile.job_id == job_id)).all())

    assert again.id == first_id and again.filename == "out_00001.png"
    assert count == 1


def test_the_database_itself_rejects_a_duplicate_result(databases: DatabaseUrls) -> None:
    job_id = _new_job()
    with session_scope(SHARED) as session:
        _result(session, job_id)
    row = {"job_id": job_id, "index": 0, "filename": "x", "path": "x", "kind": "image", "content_type": "image/png",
               "size": 1, "sha256": "0" * 64, "created_at": datetime.now(UTC)}  # fmt: skip
    with pytest.raises(IntegrityError), session_scope(SHARED) as session:
        session.execute(insert(ResultFile).values(row))


def test_list_jobs_filters_and_pages_newest_first(databases: DatabaseUrls) -> None:
    mine = [_new_job(client_id="alice") for _ in range(5)]
    _new_job(client_id="bob", task_type="image_to_video")
    with session_scope(SHARED) as session:
        put_on_node(session, mine[0], node_id="node-9", prompt_id="p")
        jobs.mark_failed(session, mine[1], "bad graph")

    with session_scope(SHARED) as session:
        page1, total = jobs.list_jobs(session, client_id="alice", limit=2)
        page3, _ = jobs.list_jobs(session, client_id="alice", limit=2, offset=4)
        failed, failed_total = jobs.list_jobs(session, status=JobStatus.FAILED)
        videos, _ = jobs.list_jobs(session, task_type="image_to_video")
        on_node, _ = jobs.list_jobs(session, node_id="node-9")
        everything, all_total = jobs.list_jobs(session)

    assert total == 5 and [j.id for j in page1] == [mine[4], mine[3]] and [j.id for j in page3] == [mine[0]]
    assert failed_total == 1 and failed[0].id == mine[1]
    assert [j.client_id for j in videos] == ["bob"]
    assert [j.id for j in on_node] == [mine[0]]
    assert all_total == 6 and len(everything) == 6


def test_another_clients_job_is_invisible(databases: DatabaseUrls) -> None:
    job_id = _new_job(client_id="alice")
    with session_scope(SHARED) as session:
        assert jobs.get_job_for_client(session, job_id, "alice") is not None
        assert jobs.get_job_for_client(session, job_id, "mallory") is None


def test_queue_position_follows_priority_then_age(databases: DatabaseUrls) -> None:
    low = _new_job(priority=Priority.LOW)
    normal_1 = _new_job()
    normal_2 = _new_job()
    high = _new_job(priority=Priority.HIGH)
    _new_job(node_group="video")  # another group's queue does not count
    running = _new_job()
    with session_scope(SHARED) as session:
        put_on_node(session, running, node_id="node-1", prompt_id="p")

    with session_scope(SHARED) as session:
        positions = {
            name: jobs.queue_position(session, jobs.get_job(session, job_id))  # type: ignore[arg-type]
            for name, job_id in [
                ("high", high),
                ("n1", normal_1),
                ("n2", normal_2),
                ("low", low),
                ("run", running),
            ]
        }
    assert positions == {"high": 0, "n1": 1, "n2": 2, "low": 3, "run": None}


def test_count_by_status_has_every_state(databases: DatabaseUrls) -> None:
    a, _b = _new_job(), _new_job()
    with session_scope(SHARED) as session:
        jobs.mark_cancelled(session, a)
        counts = jobs.count_by_status(session)
    assert counts[JobStatus.PENDING] == 1 and counts[JobStatus.CANCELLED] == 1
    assert set(counts) == set(JobStatus) and counts[JobStatus.RUNNING] == 0


def test_timestamps_come_back_timezone_aware_and_exact(databases: DatabaseUrls) -> None:
    job_id = _new_job()
    moment = datetime(2024, 3, 1, 12, 30, 15, 123456, tzinfo=timezone(timedelta(hours=9)))
    with session_scope(SHARED) as session:
        job = jobs.get_job(session, job_id)
        assert job is not None
        job.queued_at = moment

    job = _load(job_id)
    assert job.queued_at == moment  # same instant, microseconds kept (DATETIME(6) on MySQL)
    assert job.queued_at.utcoffset() == timedelta(0)
    assert job.created_at.tzinfo is not None


def test_record_values_round_trips_json(databases: DatabaseUrls) -> None:
    job_id = _new_job(params={"prompt": "猫", "steps": 20})
    with session_scope(SHARED) as session:
        jobs.record_values(session, job_id, values={"6.text": "猫", "3.seed": 2**40}, seed=2**40)
    job = _load(job_id)
    assert job.params == {"prompt": "猫", "steps": 20}
    assert job.values == {"6.text": "猫", "3.seed": 2**40} and job.seed == 2**40
