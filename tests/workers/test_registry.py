"""The node registry on real SQLite files: static sync, dynamic nodes, snapshots, strategy override, atomic claims."""

from __future__ import annotations

import threading
from collections import Counter

import pytest

from comfyws.config import NodesConfig, StaticNode
from database.admin.models import Node
from database.engine import session_scope
from database.enums import DatabaseName, JobStatus, NodeSource, NodeStatus
from database.shared import repositories as ledger
from database.shared.models import Job
from tests.workers.registry_db import add_job, add_node, job_row, registry_db  # noqa: F401 - fixture
from workers import registry
from workers.balancer import NoEligibleNode, NoFreeSlot, Requirements

REQ = Requirements(task_type="text_to_image")

pytestmark = pytest.mark.usefixtures("registry_db")


def _node(node_id: str) -> Node | None:
    with session_scope(DatabaseName.ADMIN) as session:
        return session.get(Node, node_id)


def _config(*nodes: StaticNode) -> NodesConfig:
    return NodesConfig.model_validate({"static_nodes": list(nodes)})


def _static(node_id: str, host: str, **fields: object) -> StaticNode:
    return StaticNode.model_validate({"node_id": node_id, "host": host, **fields})


def test_sync_static_nodes_upserts_keeps_admin_state_and_removes_dropped() -> None:
    registry.sync_static_nodes(_config(_static("a", "h1"), _static("b", "h2")))
    with session_scope(DatabaseName.ADMIN) as session:
        row = session.get(Node, "a")
        assert row is not None
        row.draining = True  # an operator drained it
    registry.register_node(node_id="dyn", base_url="http://d:1", group="default", max_concurrent=1,
                           capabilities=[], weight=1.0)

    registry.sync_static_nodes(_config(_static("a", "h9", port=9000, max_concurrent=4)))

    a = _node("a")
    assert a is not None and a.base_url == "http://h9:9000" and a.max_concurrent == 4
    assert a.draining, "a config reload must not undo an operator's drain"
    assert _node("b") is None, "a static node dropped from config leaves the registry"
    assert _node("dyn") is not None, "dynamic nodes are not the config's to remove"


def test_register_node_is_dynamic_and_cannot_take_a_static_id() -> None:
    registry.sync_static_nodes(_config(_static("a", "h1")))
    node = registry.register_node(node_id="gpu7", base_url="http://gpu7:8188", group="video", max_concurrent=2,
                                  capabilities=["image_to_video"], weight=2.0)
    assert node.source == NodeSource.DYNAMIC and node.status == NodeStatus.UNKNOWN
    assert registry.heartbeat("gpu7") and not registry.heartbeat("nope")
    with pytest.raises(registry.NodeConflict):
        registry.register_node(node_id="a", base_url="http://x:1", group="default", max_concurrent=1,
                               capabilities=[], weight=1.0)
    [snap] = registry.list_snapshots("video")
    assert snap.capabilities == ("image_to_video",) and snap.weight == 2.0


def test_snapshots_count_running_jobs_as_in_flight() -> None:
    add_node("a", max_concurrent=3)
    add_node("b", group="other")
    add_job(status=JobStatus.RUNNING, node_id="a")
    add_job(status=JobStatus.RUNNING, node_id="a")
    add_job(status=JobStatus.COMPLETED, node_id="a")
    snaps = registry.list_snapshots("default")
    assert [(s.node_id, s.in_flight, s.free_slots) for s in snaps] == [("a", 2, 1)]
    assert {s.node_id for s in registry.list_snapshots()} == {"a", "b"}


def test_claim_marks_job_running_on_the_chosen_node() -> None:
    add_node("a")
    job_id = add_job()
    chosen = registry.claim_node(job_id, "default", REQ, strategy="least_loaded", exclude=frozenset())
    job = job_row(job_id)
    assert chosen.node_id == "a" and job.node_id == "a" and job.status == JobStatus.RUNNING
    assert job.started_at is not None


def test_claim_raises_no_free_slot_when_full_and_no_eligible_when_none_fits() -> None:
    add_node("a")
    add_node("b", draining=True)
    registry.claim_node(add_job(), "default", REQ, strategy="least_loaded", exclude=frozenset())
    with pytest.raises(NoFreeSlot):
        registry.claim_node(add_job(), "default", REQ, strategy="least_loaded", exclude=frozenset())
    with pytest.raises(NoEligibleNode) as info:
        registry.claim_node(add_job(), "default", REQ, strategy="least_loaded", exclude=frozenset({"a"}))
    assert not info.value.retryable and info.value.reasons == {
        "a": "excluded (already tried for this job)", "b": "draining"}


def test_reclaim_after_failure_moves_the_job_and_frees_the_old_slot() -> None:
    add_node("a")
    add_node("b")
    job_id = add_job()
    first = registry.claim_node(job_id, "default", REQ, strategy="round_robin", exclude=frozenset())
    with session_scope(DatabaseName.SHARED) as session:
        assert ledger.release_node(session, job_id)  # what the flow does when its attempt failed
    second = registry.claim_node(job_id, "default", REQ, strategy="round_robin",
                                 exclude=frozenset({first.node_id}))
    assert second.node_id != first.node_id and job_row(job_id).node_id == second.node_id
    in_flight = {s.node_id: s.in_flight for s in registry.list_snapshots()}
    assert in_flight == {first.node_id: 0, second.node_id: 1}


@pytest.mark.parametrize("status", [JobStatus.CANCELLED, JobStatus.RUNNING, JobStatus.CANCELLING])
def test_a_job_that_no_longer_waits_is_never_claimed(status: JobStatus) -> None:
    """A cancel that came first (or a second claim of a job already on a node) leaves the job as it is."""
    add_node("a", max_concurrent=4)
    job_id = add_job(status=status, node_id="a" if status is not JobStatus.CANCELLED else None)
    with pytest.raises(registry.JobNotWaiting):
        registry.claim_node(job_id, "default", REQ, strategy="round_robin", exclude=frozenset())
    assert job_row(job_id).status is status


def test_a_refusal_says_whether_the_group_is_down_or_can_never_run_the_job() -> None:
    add_node("a", status=NodeStatus.UNHEALTHY)
    add_node("b", enabled=False)
    with pytest.raises(NoEligibleNode) as down:
        registry.claim_node(add_job(), "default", REQ, strategy="round_robin", exclude=frozenset())
    assert down.value.outage and not down.value.retryable
    video = Requirements(task_type="image_to_video")
    add_node("c", group="video", capabilities=["text_to_image"])
    with pytest.raises(NoEligibleNode) as never:
        registry.claim_node(add_job(group="video"), "video", video, strategy="round_robin", exclude=frozenset())
    assert not never.value.outage


def test_round_robin_cursor_persists_between_claims() -> None:
    for node_id in ("a", "b", "c"):
        add_node(node_id, max_concurrent=10)
    picks = [registry.claim_node(add_job(), "default", REQ, strategy="round_robin", exclude=frozenset()).node_id
             for _ in range(6)]
    assert picks == ["a", "b", "c", "a", "b", "c"]


def test_strategy_override_applies_to_the_next_claim_without_restart() -> None:
    add_node("a", max_concurrent=10)
    add_node("b", max_concurrent=10)
    assert registry.get_strategy("default", "least_loaded") == "least_loaded"
    picks = [registry.claim_node(add_job(), "default", REQ, strategy="least_loaded", exclude=frozenset()).node_id
             for _ in range(4)]
    assert Counter(picks) == {"a": 2, "b": 2}, "least_loaded spreads the load"

    registry.set_strategy("default", "model_aware", actor="admin")
    registry.record_last_checkpoint("b", "sdxl.safetensors")
    sdxl = Requirements(task_type="text_to_image", checkpoints=frozenset({"sdxl.safetensors"}))
    picks = [registry.claim_node(add_job(), "default", sdxl, strategy="least_loaded", exclude=frozenset()).node_id
             for _ in range(3)]
    assert registry.get_strategy("default", "least_loaded") == "model_aware"
    assert picks == ["b", "b", "b"], "the override sends every job to the node that has the model loaded"
    with pytest.raises(ValueError):
        registry.set_strategy("default", "fastest", actor="admin")  # type: ignore[arg-type]


def test_admin_drain_applies_to_the_next_claim() -> None:
    add_node("a", max_concurrent=10)
    add_node("b", max_concurrent=10)
    with session_scope(DatabaseName.ADMIN) as session:
        row = session.get(Node, "a")
        assert row is not None
        row.draining = True
    picks = {registry.claim_node(add_job(), "default", REQ, strategy="round_robin", exclude=frozenset()).node_id
             for _ in range(3)}
    assert picks == {"b"}


def test_concurrent_claims_never_exceed_max_concurrent() -> None:
    add_node("a", max_concurrent=2)
    add_node("b", max_concurrent=3)
    jobs = [add_job() for _ in range(12)]
    outcomes: dict[str, str] = {}
    start = threading.Barrier(len(jobs))

    def claim(job_id: str) -> None:
        start.wait()
        try:
            node = registry.claim_node(job_id, "default", REQ, strategy="least_loaded", exclude=frozenset())
            outcomes[job_id] = node.node_id
        except NoFreeSlot:
            outcomes[job_id] = "full"

    threads = [threading.Thread(target=claim, args=(job_id,)) for job_id in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    counts = Counter(outcomes.values())
    assert counts == {"a": 2, "b": 3, "full": 7}
    running = Counter(job_row(j).node_id for j in jobs if job_row(j).status == JobStatus.RUNNING)
    assert running == {"a": 2, "b": 3}


def test_at_the_end_of_a_burst_least_loaded_waits_for_the_node_it_finishes_soonest_on() -> None:
    add_node("slow", weight=1.0)
    add_node("fast", weight=3.0)
    twelve_steps = Requirements(task_type="text_to_image", work=12)
    first = add_job(work=12)
    assert registry.claim_node(first, "default", twelve_steps, strategy="least_loaded",
                               exclude=frozenset()).node_id == "fast"
    with session_scope(DatabaseName.SHARED) as session:  # its progress: 9 of its 12 steps still to go
        job = session.get(Job, first)
        assert job is not None
        job.total_steps, job.current_step = 12, 3
    # The group's 9 + 12 steps could be done by (9 + 12) / 4; on the idle slow node this job would end at 12,
    # on the fast one at (9 + 12) / 3 = 7: it waits for the fast node.
    last = add_job(work=12)
    with pytest.raises(NoFreeSlot):
        registry.claim_node(last, "default", twelve_steps, strategy="least_loaded", exclude=frozenset())
    assert job_row(last).waiting_nodes == ["fast"]  # and holds no slot on the slow node meanwhile
    add_job(work=20), add_job(work=20)  # plenty of work still waiting: the free slow slot is used at once
    assert registry.claim_node(last, "default", twelve_steps, strategy="least_loaded",
                               exclude=frozenset()).node_id == "slow"
