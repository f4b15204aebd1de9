"""Which job gets a node: a later high-priority job overtakes waiting normal ones; a drained node takes no new job."""

from __future__ import annotations

import pytest

from database.engine import session_scope
from database.enums import DatabaseName
from database.shared.models import Job
from tests.distribution.conftest import Fleet
from tests.fixtures.prefect_server import wait_until

pytestmark = pytest.mark.prefect


def _waiting_for_a_slot(*task_ids: str) -> bool:
    """Every job's flow is in the claim loop (not merely queued in Prefect)."""
    with session_scope(DatabaseName.SHARED) as session:
        return all((job := session.get(Job, t)) is not None and job.waiting_since is not None for t in task_ids)


def test_a_high_priority_job_submitted_later_starts_before_waiting_normal_ones(fleet: Fleet) -> None:
    node = fleet.add("dist-prio", max_concurrent=1, step_delay=0.2)
    blocker = fleet.submit(steps=150)  # holds the only slot until the test lets it finish
    fleet.wait_running(blocker)
    normal = [fleet.submit(steps=2) for _ in range(5)]
    wait_until(lambda: _waiting_for_a_slot(*normal), timeout=30, what="the normal jobs to wait for the node")
    high = fleet.submit(steps=2, priority="high")
    wait_until(lambda: _waiting_for_a_slot(high), timeout=30, what="the high-priority job to wait for the node")

    node.control(step_delay=0.002)  # the blocker ends; the slot frees
    done = {task_id: fleet.wait_final(task_id) for task_id in [blocker, high, *normal]}

    assert all(task["status"] == "completed" for task in done.values()), done
    started = sorted(done, key=lambda t: done[t]["started_at"])
    assert started[:2] == [blocker, high], [done[t]["priority"] for t in started]
    assert node.state()["succeeded"] == 7


def test_a_drained_node_finishes_its_job_and_takes_no_new_one(fleet: Fleet) -> None:
    fleet.add("dist-drain-a", max_concurrent=4, step_delay=0.05)
    fleet.add("dist-drain-b", max_concurrent=4, step_delay=0.05)
    first = fleet.submit(steps=60)
    drained = fleet.wait_running(first)["node_id"]
    other = next(node_id for node_id in fleet.nodes if node_id != drained)

    fleet.node_action(drained, "drain")
    later = [fleet.submit(steps=10) for _ in range(3)]
    done = {task_id: fleet.wait_final(task_id) for task_id in [first, *later]}

    assert all(task["status"] == "completed" for task in done.values()), done
    assert done[first]["node_id"] == drained and done[first]["attempts"] == 1
    assert [done[t]["node_id"] for t in later] == [other] * 3
    assert fleet.nodes[drained].state()["prompts_received"] == 1
