"""Choosing a node: every strategy, and every reason a node is skipped (pure functions, no I/O)."""

from __future__ import annotations

import pickle
import random
from collections import Counter
from dataclasses import replace

import pytest

from database.enums import NodeStatus
from workers.balancer import (
    NodeSnapshot,
    NoEligibleNode,
    NoFreeSlot,
    Requirements,
    choose_node,
    drain_time,
    eligible,
    requirements_for,
)

T2I = Requirements(task_type="text_to_image")


def node(node_id: str, **fields: object) -> NodeSnapshot:
    base = NodeSnapshot(
        node_id=node_id, base_url=f"http://{node_id}:8188", group="default", status=NodeStatus.HEALTHY,
        enabled=True, draining=False, max_concurrent=2, in_flight=0, queue_depth=0, capabilities=(),
        checkpoints=frozenset(), node_classes=frozenset(),
    )
    return replace(base, **fields)  # type: ignore[arg-type]


GRAPH = {
    "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sdxl.safetensors"}},
    "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a cat", "clip": ["4", 1]}},
    "3": {"class_type": "KSampler", "inputs": {"model": ["4", 0], "seed": 1}},
    "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0]}},
}


def test_requirements_for_reads_classes_and_checkpoints_from_the_graph() -> None:
    req = requirements_for(GRAPH, "text_to_image")
    assert req.task_type == "text_to_image"
    assert req.checkpoints == {"sdxl.safetensors"}
    assert req.node_classes == {"CheckpointLoaderSimple", "CLIPTextEncode", "KSampler", "SaveImage"}


def test_linked_ckpt_name_is_not_a_requirement() -> None:
    graph = {"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": ["7", 0]}}}
    assert requirements_for(graph, "x").checkpoints == frozenset()


def test_free_slots_and_load() -> None:
    n = node("a", max_concurrent=4, in_flight=1, queue_depth=1)  # the probe saw our one prompt
    assert n.free_slots == 3 and n.load == 0.25
    busy = node("b", max_concurrent=4, in_flight=1, queue_depth=3)  # and two prompts of someone else's
    assert busy.free_slots == 3 and busy.load == 0.75
    assert node("b", max_concurrent=1, in_flight=3).free_slots == 0


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"enabled": False}, "disabled"),
        ({"draining": True}, "draining"),
        ({"status": NodeStatus.UNHEALTHY}, "unhealthy"),
        ({"capabilities": ("image_to_video",)}, "does not serve 'text_to_image' (serves image_to_video)"),
        ({"checkpoints": frozenset({"sd15.safetensors"})}, "missing checkpoint sdxl.safetensors"),
        ({"node_classes": frozenset({"KSampler", "SaveImage"})},
         "missing node class CLIPTextEncode, CheckpointLoaderSimple"),
    ],
)
def test_unfit_nodes_are_skipped_with_a_readable_reason(fields: dict[str, object], reason: str) -> None:
    req = requirements_for(GRAPH, "text_to_image")
    fit, reasons = eligible([node("bad", **fields), node("good")], req)
    assert [n.node_id for n in fit] == ["good"]
    assert reasons == {"bad": reason}


def test_unknown_status_and_unknown_inventory_are_allowed() -> None:
    req = requirements_for(GRAPH, "text_to_image")
    fit, reasons = eligible([node("new", status=NodeStatus.UNKNOWN)], req)
    assert [n.node_id for n in fit] == ["new"] and reasons == {}


def test_matching_capability_and_inventory_are_eligible() -> None:
    req = requirements_for(GRAPH, "text_to_image")
    n = node("a", capabilities=("text_to_image", "image_to_image"), checkpoints=frozenset({"sdxl.safetensors"}),
             node_classes=frozenset(req.node_classes | {"VAEDecode"}))
    assert choose_node([n], req, strategy="least_loaded") == n


def test_exclude_skips_nodes_already_tried() -> None:
    chosen = choose_node([node("a"), node("b")], T2I, strategy="least_loaded", exclude=frozenset({"a"}))
    assert chosen.node_id == "b"


def test_no_eligible_node_names_every_node_and_why() -> None:
    nodes = [node("a", draining=True), node("b", status=NodeStatus.UNHEALTHY)]
    with pytest.raises(NoEligibleNode) as info:
        choose_node(nodes, T2I, strategy="round_robin")
    err = info.value
    assert not isinstance(err, NoFreeSlot) and not err.retryable
    assert err.reasons == {"a": "draining", "b": "unhealthy"}
    assert str(err) == "no node can run 'text_to_image' (a: draining; b: unhealthy)"


def test_empty_group_says_so() -> None:
    with pytest.raises(NoEligibleNode, match="no nodes registered"):
        choose_node([], T2I, strategy="random")


def test_full_nodes_raise_retryable_no_free_slot() -> None:
    nodes = [node("a", max_concurrent=1, in_flight=1), node("b", draining=True)]
    with pytest.raises(NoFreeSlot) as info:
        choose_node(nodes, T2I, strategy="least_loaded")
    assert info.value.retryable
    assert info.value.reasons["a"] == "no free slot (1/1 in flight)"


def test_errors_survive_pickling() -> None:
    err = pickle.loads(pickle.dumps(NoFreeSlot({"a": "no free slot"}, task_type="t")))
    assert isinstance(err, NoFreeSlot) and err.reasons == {"a": "no free slot"} and err.task_type == "t"


def test_round_robin_follows_the_cursor_over_eligible_nodes() -> None:
    nodes = [node("c"), node("a"), node("b", enabled=False), node("d")]
    picks = [choose_node(nodes, T2I, strategy="round_robin", cursor=i).node_id for i in range(6)]
    assert picks == ["a", "c", "d", "a", "c", "d"]


def test_least_loaded_uses_load_per_slot_then_speed_then_in_flight_then_id() -> None:
    nodes = [
        node("big", max_concurrent=4, in_flight=2),  # 0.5
        node("small", max_concurrent=1, in_flight=0, queue_depth=1),  # 1.0
        node("idle-b", max_concurrent=2, in_flight=1, queue_depth=0),  # 0.5, in_flight 1
    ]
    assert choose_node(nodes, T2I, strategy="least_loaded").node_id == "idle-b"
    tie = [node("z"), node("y")]
    assert choose_node(tie, T2I, strategy="least_loaded").node_id == "y"
    mixed = [node("slow", weight=1.0), node("fast", weight=3.0, in_flight=1), node("mid", weight=2.0)]
    assert choose_node(mixed, T2I, strategy="least_loaded").node_id == "mid"  # fast is busier
    assert choose_node([*mixed[::2], node("fast", weight=3.0)], T2I, strategy="least_loaded").node_id == "fast"


def test_weighted_shares_picks_in_proportion_to_weight() -> None:
    nodes = [node("heavy", weight=3.0), node("light", weight=1.0)]
    rng = random.Random(7)
    picks = Counter(choose_node(nodes, T2I, strategy="weighted", rng=rng).node_id for _ in range(4000))
    assert 2.6 < picks["heavy"] / picks["light"] < 3.4


def test_random_picks_only_eligible_nodes_and_all_of_them() -> None:
    nodes = [node("a"), node("b"), node("c", draining=True)]
    rng = random.Random(1)
    picks = {choose_node(nodes, T2I, strategy="random", rng=rng).node_id for _ in range(100)}
    assert picks == {"a", "b"}


def test_model_aware_prefers_the_node_with_the_model_loaded() -> None:
    req = requirements_for(GRAPH, "text_to_image")
    nodes = [
        node("cold", in_flight=0),
        node("warm", in_flight=1, last_checkpoint="sdxl.safetensors"),
        node("warm2", in_flight=0, queue_depth=1, last_checkpoint="sdxl.safetensors"),
    ]
    assert choose_node(nodes, req, strategy="model_aware").node_id == "warm2"


def test_model_aware_falls_back_to_least_loaded() -> None:
    req = requirements_for(GRAPH, "text_to_image")
    nodes = [node("a", in_flight=1, last_checkpoint="sd15"), node("b"),
             node("full", max_concurrent=1, in_flight=1, last_checkpoint="sdxl.safetensors")]
    assert choose_node(nodes, req, strategy="model_aware").node_id == "b"


def test_requirements_count_the_sampler_steps_as_the_jobs_size() -> None:
    graph = {"1": {"class_type": "KSampler", "inputs": {"steps": 20, "model": ["2", 0]}},
             "2": {"class_type": "KSampler", "inputs": {"steps": 5}},
             "3": {"class_type": "SaveImage", "inputs": {"images": ["1", 0]}}}
    assert requirements_for(graph, "t").work == 25
    assert requirements_for({"1": {"class_type": "SaveImage", "inputs": {}}}, "t").work == 1


def test_least_loaded_places_a_job_that_would_finish_late_where_it_finishes_first() -> None:
    big = Requirements(task_type="t", work=12)
    slow = node("slow", weight=1.0)  # empty: 12 steps at speed 1 -> 12
    fast = node("fast", weight=3.0, in_flight=1, remaining_work=9)  # (9 + 12) / 3 -> 7, one slot left
    # Little work left in the group (drain by 8): the slow node would finish the job last, the fast one sooner.
    assert choose_node([slow, fast], big, strategy="least_loaded", drain_time=8).node_id == "fast"
    full_fast = replace(fast, in_flight=2)
    with pytest.raises(NoFreeSlot) as waits:  # better to wait for the fast node than start on the slow one
        choose_node([slow, full_fast], big, strategy="least_loaded", drain_time=8)
    assert list(waits.value.reasons) == ["fast"]
    crowded = replace(full_fast, remaining_work=30)  # (30 + 12) / 3 -> 14: now the slow node is sooner
    assert choose_node([slow, crowded], big, strategy="least_loaded", drain_time=8).node_id == "slow"
    # Plenty of work left (the job on the slow node ends before the group could): any free slot is used.
    assert choose_node([slow, full_fast], big, strategy="least_loaded", drain_time=12).node_id == "slow"
    assert choose_node([slow, full_fast], big, strategy="least_loaded").node_id == "slow"
    # A small job still fits on the slow node at the end; other strategies ignore the drain time.
    small = Requirements(task_type="t", work=4)
    assert choose_node([slow, full_fast], small, strategy="least_loaded", drain_time=8).node_id == "slow"
    assert choose_node([slow, full_fast], big, strategy="round_robin", drain_time=8).node_id == "slow"


def test_drain_time_spreads_the_groups_work_over_the_speed_of_the_nodes_able_to_run_the_job() -> None:
    req = Requirements(task_type="t", work=6)
    nodes = [node("slow", weight=1.0, remaining_work=4), node("fast", weight=3.0, remaining_work=14),
             node("off", weight=4.0, remaining_work=100, enabled=False)]
    assert drain_time(nodes, req, waiting_work=22) == pytest.approx((4 + 14 + 22) / 4)
    assert drain_time(nodes, req, waiting_work=22, exclude=frozenset({"fast"})) == pytest.approx(26)
    assert drain_time([], req, waiting_work=22) == float("inf")
