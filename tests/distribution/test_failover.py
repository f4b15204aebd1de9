"""Failover end to end: a node killed or hung mid-job, and a job that fails on every node it is given."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.distribution.conftest import Fleet
from tests.fixtures.prefect_server import wait_until

pytestmark = pytest.mark.prefect

# Socket drop -> reconnects refused a few times (workers/comfyui/tracker.py) -> NodeUnavailable -> next node:
# well under a second when idle; the bound leaves room for a loaded test machine.
FAILOVER_BOUND_S = 5.0


def _at(stamp: str) -> datetime:
    moment = datetime.fromisoformat(stamp)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def test_a_killed_node_moves_the_job_to_a_healthy_node_once(fleet: Fleet, request: pytest.FixtureRequest) -> None:
    fleet.add("dist-kill-a", step_delay=0.1)
    fleet.add("dist-kill-b", step_delay=0.1)
    task_id = fleet.submit(steps=30)
    first = fleet.wait_running(task_id)
    victim = fleet.nodes[first["node_id"]]
    survivor = next(n for n in fleet.nodes.values() if n is not victim)

    killed_at = datetime.now(UTC)
    victim.kill()
    wait_until(lambda: fleet.task(task_id)["node_id"] == survivor.node_id, timeout=30, what="the job to move")
    done = fleet.wait_final(task_id)

    assert done["status"] == "completed", done
    assert done["attempts"] == 2 and done["node_id"] == survivor.node_id
    assert len(done["results"]) == 1
    attempts = fleet.admin_task(task_id)["attempt_list"]
    assert [(a["node_id"], a["status"]) for a in attempts] == [
        (victim.node_id, "failed"), (survivor.node_id, "succeeded")]
    assert "NodeUnavailable" in attempts[0]["error"]
    assert attempts[1]["error"] is None
    state = survivor.state()
    assert state["executions"] == {attempts[1]["prompt_id"]: 1} and state["succeeded"] == 1

    failover_s = (_at(attempts[1]["started_at"]) - killed_at).total_seconds()
    request.node.user_properties.append(("failover_seconds", round(failover_s, 2)))
    reporter = request.config.pluginmanager.getplugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"\nfailover: node killed -> job running on {survivor.node_id} in {failover_s:.2f} s")
    assert 0 < failover_s < FAILOVER_BOUND_S


def test_a_hung_node_is_left_and_its_prompt_stopped(fleet: Fleet) -> None:
    hung = fleet.add("dist-hang-a", step_delay=0.01)
    healthy = fleet.add("dist-hang-b", step_delay=0.01)
    hung.control(hang_next=1)
    fleet.node_action(healthy.node_id, "disable")  # so the job lands on the node that will hang
    task_id = fleet.submit(steps=4)
    wait_until(lambda: fleet.task(task_id)["node_id"] == hung.node_id, timeout=30, what="the job on the hung node")
    fleet.node_action(healthy.node_id, "enable")

    done = fleet.wait_final(task_id, timeout=60)

    assert done["status"] == "completed", done
    assert done["attempts"] == 2 and done["node_id"] == healthy.node_id
    attempts = fleet.admin_task(task_id)["attempt_list"]
    assert attempts[0]["node_id"] == hung.node_id and attempts[0]["status"] == "failed"
    assert "NodeTimeout" in attempts[0]["error"]
    wait_until(lambda: hung.state()["running"] is None, timeout=10, what="the hung prompt to be interrupted")
    state = hung.state()
    assert state["interrupted"] == 1 and state["pending"] == [] and state["succeeded"] == 0


def test_a_job_failing_everywhere_ends_failed_after_max_attempts_with_every_error(fleet: Fleet) -> None:
    nodes = [fleet.add(f"dist-fail-{x}", step_delay=0.005) for x in "abcd"]
    for node in nodes:
        node.control(fail_next=1)
    task_id = fleet.submit(steps=3)

    done = fleet.wait_final(task_id)

    assert done["status"] == "failed", done
    assert done["attempts"] == 3  # max_attempts of the stack's config, although a fourth node was free
    attempts = fleet.admin_task(task_id)["attempt_list"]
    tried = [a["node_id"] for a in attempts]
    assert len(set(tried)) == 3 and all(a["status"] == "failed" for a in attempts)
    for number, node_id in enumerate(tried, start=1):
        assert f"attempt {number} on {node_id}: ExecutionFailed" in done["error"]
    assert sum(node.state()["prompts_received"] for node in nodes) == 3
