"""Choosing a node for a job: pure functions of node snapshots (no I/O; the registry feeds and persists them)."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from comfyws.config import Strategy
from database.enums import NodeStatus

__all__ = [
    "NoEligibleNode", "NoFreeSlot", "NodeSnapshot", "Requirements", "capable", "choose_node", "could_run_once_up",
    "drain_time",
    "eligible", "finish_time", "requirements_for", "reserve_for_waiters",
]

# Graph inputs that name a model file the node must have (all of them live in the node's checkpoint list).
_CHECKPOINT_INPUTS = ("ckpt_name",)
_NO_SLOT = "no free slot"


@dataclass(frozen=True)
class NodeSnapshot:
    """One node as the balancer sees it: registry state plus the in-flight count from the job ledger."""

    node_id: str
    base_url: str
    group: str
    status: NodeStatus
    enabled: bool
    draining: bool
    max_concurrent: int
    in_flight: int
    queue_depth: int
    capabilities: tuple[str, ...]
    checkpoints: frozenset[str]
    node_classes: frozenset[str]
    weight: float = 1.0
    last_checkpoint: str | None = None
    vram_free: int | None = None
    reserved: int = 0  # free slots held for better-placed jobs waiting in the claim loop
    remaining_work: float = 0.0  # sampler steps still to run of the prompts on it (least_loaded placement)

    @property
    def free_slots(self) -> int:
        """Prompts the node may still take (never negative)."""
        return max(0, self.max_concurrent - self.in_flight - self.reserved)

    @property
    def load(self) -> float:
        """Work on the node per slot: what least_loaded minimises.

        Our in-flight prompts plus whatever else the node's queue holds; the probed queue depth already counts
        ours, so the two are not added (that counted every job of ours twice until the next probe)."""
        return max(self.in_flight, self.queue_depth) / max(1, self.max_concurrent)


@dataclass(frozen=True)
class Requirements:
    """What a job needs from a node: its task type, the checkpoints and node classes its graph uses."""

    task_type: str
    checkpoints: frozenset[str] = frozenset()
    node_classes: frozenset[str] = frozenset()
    work: float = 1.0  # its size: the sampler steps it runs (1 for a graph without any)


class NoEligibleNode(Exception):
    """No node can take the job; `reasons` maps every node considered to why it was skipped."""

    retryable: bool = False
    free_in_group: int = 0  # free slots the refusing claim saw in the group (for other jobs; set by the registry)
    outage: bool = False  # no node can take it now, but one could once up and in service (set by the registry)

    def __init__(self, reasons: dict[str, str], *, task_type: str = "") -> None:
        self.reasons = dict(reasons)
        self.task_type = task_type
        super().__init__(self._summary())

    def _summary(self) -> str:
        what = f"no node can run {self.task_type!r}" if self.task_type else "no eligible node"
        if not self.reasons:
            return f"{what}: no nodes registered in the group"
        detail = "; ".join(f"{node_id}: {why}" for node_id, why in sorted(self.reasons.items()))
        return f"{what} ({detail})"

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only arguments do not survive the default pickling (Prefect pickles task exceptions).
        return (_rebuild, (type(self), self.reasons, self.task_type))


class NoFreeSlot(NoEligibleNode):
    """Some node could run the job but every such node is full: wait and ask again."""

    retryable = True


def _rebuild(cls: type[NoEligibleNode], reasons: dict[str, str], task_type: str) -> NoEligibleNode:
    return cls(reasons, task_type=task_type)


def requirements_for(graph: dict[str, Any], task_type: str) -> Requirements:
    """The node classes a graph uses, the checkpoint files its loaders name (linked inputs are ignored) and the
    sampler steps it runs (its size)."""
    classes: set[str] = set()
    checkpoints: set[str] = set()
    steps = 0
    for node in graph.values():
        if not isinstance(node, dict):
            continue
        class_type = node.get("class_type")
        if isinstance(class_type, str):
            classes.add(class_type)
        inputs = node.get("inputs") or {}
        for name in _CHECKPOINT_INPUTS:
            value = inputs.get(name)
            if isinstance(value, str) and value:
                checkpoints.add(value)
        if isinstance(inputs.get("steps"), int) and not isinstance(inputs.get("steps"), bool):
            steps += inputs["steps"]
    return Requirements(task_type=task_type, checkpoints=frozenset(checkpoints), node_classes=frozenset(classes),
                        work=float(max(1, steps)))


def _unfit_reason(
    node: NodeSnapshot, req: Requirements, exclude: frozenset[str], *, ignore_health: bool = False
) -> str | None:
    """Why the node cannot take the job, ignoring slots; None when it can."""
    if node.node_id in exclude:
        return "excluded (already tried for this job)"
    if not node.enabled:
        return "disabled"
    if node.draining:
        return "draining"
    # UNKNOWN means "never probed": the health monitor turns it HEALTHY or UNHEALTHY on the first probe.
    if node.status == NodeStatus.UNHEALTHY and not ignore_health:
        return "unhealthy"
    if node.capabilities and req.task_type not in node.capabilities:
        return f"does not serve {req.task_type!r} (serves {', '.join(node.capabilities)})"
    # An empty inventory means "not read yet": allowed, the node itself will reject a graph it cannot run.
    missing_ckpt = sorted(req.checkpoints - node.checkpoints) if node.checkpoints else []
    if missing_ckpt:
        return f"missing checkpoint {', '.join(missing_ckpt)}"
    missing_cls = sorted(req.node_classes - node.node_classes) if node.node_classes else []
    if missing_cls:
        return f"missing node class {', '.join(missing_cls)}"
    return None


def capable(
    nodes: Iterable[NodeSnapshot],
    req: Requirements,
    *,
    exclude: frozenset[str] = frozenset(),
    ignore_health: bool = False,
) -> tuple[list[NodeSnapshot], dict[str, str]]:
    """Nodes that could run the job once a slot is free (sorted by node_id), and why each other node cannot.

    `ignore_health` counts unhealthy nodes as able: for a check that outlives a passing outage (at submit)."""
    fit: list[NodeSnapshot] = []
    reasons: dict[str, str] = {}
    for node in sorted(nodes, key=_node_id):
        why = _unfit_reason(node, req, exclude, ignore_health=ignore_health)
        if why is None:
            fit.append(node)
        else:
            reasons[node.node_id] = why
    return fit, reasons


def could_run_once_up(nodes: Iterable[NodeSnapshot], req: Requirements) -> bool:
    """Some node of the group could run the job were it healthy and in service (enabled, not draining): a refusal
    now is an outage to wait out, not a verdict. A group with no node at all waits too (one may register)."""
    nodes = list(nodes)
    if not nodes:
        return True
    in_service = ("disabled", "draining")
    return any(_unfit_reason(n, req, frozenset(), ignore_health=True) in (None, *in_service) for n in nodes)


def reserve_for_waiters(nodes: Sequence[NodeSnapshot], waiters: Iterable[Iterable[str]]) -> list[NodeSnapshot]:
    """The nodes with free slots held back for jobs that go first (`waiters`: each one's capable node ids, best
    job first). Greedy: each waiter holds one free slot on the first of its nodes that still has one; a waiter
    whose nodes are all full holds nothing, so a slot it cannot use is never kept from a job that can."""
    reserved: dict[str, int] = {}
    by_id = {node.node_id: node for node in sorted(nodes, key=_node_id)}
    for wanted in waiters:
        for node_id in sorted(set(wanted) & by_id.keys()):
            node = by_id[node_id]
            if node.free_slots - reserved.get(node_id, 0) > 0:
                reserved[node_id] = reserved.get(node_id, 0) + 1
                break
    return [replace(node, reserved=node.reserved + reserved.get(node.node_id, 0)) for node in nodes]


def eligible(
    nodes: Iterable[NodeSnapshot], req: Requirements, *, exclude: frozenset[str] = frozenset()
) -> tuple[list[NodeSnapshot], dict[str, str]]:
    """Nodes that can take the job now (sorted by node_id), and why each other node cannot."""
    fit, reasons = capable(nodes, req, exclude=exclude)
    free: list[NodeSnapshot] = []
    for node in fit:
        if node.free_slots > 0:
            free.append(node)
        else:
            held = f", {node.reserved} held for jobs ahead" if node.reserved else ""
            reasons[node.node_id] = f"{_NO_SLOT} ({node.in_flight}/{node.max_concurrent} in flight{held})"
    return free, reasons


def choose_node(
    nodes: Sequence[NodeSnapshot],
    req: Requirements,
    *,
    strategy: Strategy,
    exclude: frozenset[str] = frozenset(),
    cursor: int = 0,
    rng: random.Random | None = None,
    drain_time: float | None = None,
) -> NodeSnapshot:
    """Pick one node for the job; raise NoFreeSlot when only full nodes fit, NoEligibleNode when none do.

    `drain_time` (least_loaded only): when the group's work would all be done, were it spread perfectly over the
    nodes (see `drain_time()`). A job the least-loaded free node would finish only after that goes where it
    finishes first instead (`finish_first`), and may wait for that node."""
    fit, reasons = eligible(nodes, req, exclude=exclude)
    if not fit:
        only_full = any(why.startswith(_NO_SLOT) for why in reasons.values())
        error = NoFreeSlot if only_full else NoEligibleNode
        raise error(reasons, task_type=req.task_type)
    if strategy == "least_loaded" and drain_time is not None:
        pick = _least_loaded(fit, req, cursor, rng or random.Random())
        if finish_time(pick, req) <= drain_time * (1 + 1e-9):
            return pick
        return finish_first(nodes, req, exclude=exclude)
    return _STRATEGIES[strategy](fit, req, cursor, rng or random.Random())


def finish_time(node: NodeSnapshot, req: Requirements) -> float:
    """When the job would be done on the node: the steps still ahead of it there plus its own, over the node's
    speed (its weight)."""
    return (node.remaining_work + req.work) / max(node.weight, 1e-6)


def drain_time(nodes: Iterable[NodeSnapshot], req: Requirements, *, waiting_work: float,
               exclude: frozenset[str] = frozenset()) -> float:
    """When the work of the nodes that could run the job (what they still have to run plus `waiting_work`, the
    steps of the jobs not on a node yet, this one included) would be done if spread perfectly over them."""
    able = capable(nodes, req, exclude=exclude)[0]
    speed = sum(max(n.weight, 1e-6) for n in able)
    if not speed:
        return float("inf")
    return (sum(n.remaining_work for n in able) + waiting_work) / speed


def finish_first(
    nodes: Sequence[NodeSnapshot], req: Requirements, *, exclude: frozenset[str] = frozenset()
) -> NodeSnapshot:
    """The node where the job would finish first (`finish_time`). When that node is full the job waits for it
    (NoFreeSlot naming only that node) rather than start on a slower free node: at the end of a burst a long job
    on a slow node is what keeps every other node idle."""
    fit, reasons = capable(nodes, req, exclude=exclude)
    if not fit:
        raise NoEligibleNode(reasons, task_type=req.task_type)
    best = min(fit, key=lambda n: (finish_time(n, req), -n.weight, n.node_id))
    if best.free_slots > 0:
        return best
    why = f"{_NO_SLOT} (the job finishes soonest here: waits for it; {best.in_flight}/{best.max_concurrent} in flight)"
    raise NoFreeSlot({best.node_id: why}, task_type=req.task_type)


def _node_id(node: NodeSnapshot) -> str:
    return node.node_id


def _load_key(node: NodeSnapshot) -> tuple[float, float, int, str]:
    # Equally loaded: the faster node (higher weight) finishes the job sooner.
    return (node.load, -node.weight, node.in_flight, node.node_id)


def _round_robin(fit: list[NodeSnapshot], _req: Requirements, cursor: int, _rng: random.Random) -> NodeSnapshot:
    return fit[cursor % len(fit)]


def _least_loaded(fit: list[NodeSnapshot], _req: Requirements, _cursor: int, _rng: random.Random) -> NodeSnapshot:
    return min(fit, key=_load_key)


def _weighted(fit: list[NodeSnapshot], _req: Requirements, _cursor: int, rng: random.Random) -> NodeSnapshot:
    # Weight-proportional random: stateless, so several workers choosing at once still share out by weight.
    return rng.choices(fit, weights=[node.weight for node in fit], k=1)[0]


def _random(fit: list[NodeSnapshot], _req: Requirements, _cursor: int, rng: random.Random) -> NodeSnapshot:
    return rng.choice(fit)


def _model_aware(fit: list[NodeSnapshot], req: Requirements, cursor: int, rng: random.Random) -> NodeSnapshot:
    # A node whose last job loaded the same checkpoint skips the model load: prefer it, least loaded first.
    warm = [node for node in fit if node.last_checkpoint and node.last_checkpoint in req.checkpoints]
    return _least_loaded(warm or fit, req, cursor, rng)


_Picker = Callable[[list[NodeSnapshot], Requirements, int, random.Random], NodeSnapshot]
_STRATEGIES: dict[str, _Picker] = {
    "round_robin": _round_robin,
    "least_loaded": _least_loaded,
    "weighted": _weighted,
    "random": _random,
    "model_aware": _model_aware,
}
