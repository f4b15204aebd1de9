"""A worker killed mid-flow: a new worker recovers the run, and the prompt on the node is never run twice."""

from __future__ import annotations

import pytest

from tests.distribution.conftest import Fleet
from tests.fixtures.prefect_server import start_worker, wait_until

pytestmark = pytest.mark.prefect


def _kill_worker_and_replace(fleet: Fleet, *, before_restart: object = None) -> None:
    """SIGKILL the stack's worker, optionally wait for something, then start a new one (it recovers at start)."""
    stack = fleet.stack
    live = [w for w in stack.workers if w.process.poll() is None]
    assert len(live) == 1, "the stack runs one worker"
    live[0].kill()
    if callable(before_restart):
        before_restart()
    stack.workers.append(start_worker("default", stack.root, concurrency=8, poll_interval=5.0))


def _assert_ran_once(fleet: Fleet, task_id: str, node_id: str) -> None:
    done = fleet.wait_final(task_id, timeout=90)
    assert done["status"] == "completed", done
    assert done["attempts"] == 1 and done["node_id"] == node_id
    assert len(done["results"]) == 1
    attempt = fleet.admin_task(task_id)["attempt_list"][0]
    assert attempt["status"] == "succeeded"
    state = fleet.nodes[node_id].state()
    assert state["executions"] == {attempt["prompt_id"]: 1}
    assert state["prompts_received"] == 1 and state["succeeded"] == 1


def test_a_prompt_that_finished_while_no_worker_ran_is_collected_from_history(fleet: Fleet) -> None:
    node = fleet.add("dist-crash-a", step_delay=0.05)
    task_id = fleet.submit(steps=30)
    fleet.wait_running(task_id)

    def prompt_finished() -> None:
        wait_until(lambda: node.state()["succeeded"] == 1, timeout=30, what="the prompt to finish on the node")

    _kill_worker_and_replace(fleet, before_restart=prompt_finished)

    _assert_ran_once(fleet, task_id, node.node_id)


def test_a_prompt_still_running_is_followed_by_the_new_worker(fleet: Fleet) -> None:
    node = fleet.add("dist-crash-b", step_delay=0.5)  # slow until the new worker is up (minutes would pass)
    task_id = fleet.submit(steps=100)
    fleet.wait_running(task_id)

    _kill_worker_and_replace(fleet)
    assert node.state()["running"] is not None, "the prompt should still be running when the new worker starts"
    node.control(step_delay=0.01)  # the new worker has taken over: let the prompt finish

    _assert_ran_once(fleet, task_id, node.node_id)
