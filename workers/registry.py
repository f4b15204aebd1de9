"""The node registry: static and dynamic nodes in the admin database, snapshots for the balancer, atomic claims.

A claim touches two databases (nodes in admin, jobs in shared) that share no transaction. It is made safe by one
lock in the admin database, held from before the in-flight count is read until after the job row is committed:
- MySQL: `SELECT ... FOR UPDATE` on the group's round-robin row (`Setting "rr.<group>"`, created on demand);
- SQLite: `BEGIN IMMEDIATE`, which takes the admin file's write lock.
Every claim for a group takes that lock, so claims are serialised: each reads the RUNNING count after the previous
claim's job row was committed and cannot over-fill a node. Anything else that changes jobs only ends them, which
lowers the count, so it cannot break the bound. If the admin commit fails after the shared commit, only the
round-robin cursor is lost.

Claims honour priority: a job that finds no free slot is marked waiting in the ledger (with the nodes it could
use and a heartbeat), and later claims hold free slots for live waiters that go first (priority, then age).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import replace
from datetime import timedelta
from typing import Any, get_args

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from comfyws.config import NodesConfig, Strategy
from database.admin.models import AuditLog, Node, Setting
from database.engine import get_engine, session_scope
from database.enums import DatabaseName, JobStatus, NodeSource, NodeStatus
from database.shared import repositories as ledger
from database.shared import transitions
from database.shared.models import Job
from database.types import utcnow
from workers.balancer import (
    NodeSnapshot,
    NoEligibleNode,
    Requirements,
    capable,
    choose_node,
    could_run_once_up,
    drain_time,
    reserve_for_waiters,
)

__all__ = [
    "JobNotWaiting", "NodeConflict", "claim_node", "get_strategy", "heartbeat", "list_snapshots", "record_last_checkpoint",
    "register_node", "set_strategy", "stop_waiting", "sync_static_nodes",
]

STRATEGIES: frozenset[str] = frozenset(get_args(Strategy))
# A job waiting for a slot refreshes its heartbeat this often; after DEFAULT_WAITER_STALE_S without one it is
# taken for dead (its worker was killed) and holds no slots.
HEARTBEAT_EVERY = timedelta(seconds=1)
DEFAULT_WAITER_STALE_S = 5.0
# (admin database, group) whose lock row this process has seen: claims skip the existence check.
_cursor_rows: set[tuple[str, str]] = set()


class NodeConflict(Exception):
    """A dynamic registration used the id of a node defined in config.yaml."""


class UnknownJob(Exception):
    """claim_node was given a job id the ledger does not hold."""


class JobNotWaiting(Exception):
    """The job no longer waits for a node (cancelled, or otherwise moved on): it must not be claimed."""

    def __init__(self, job_id: str, status: JobStatus | None) -> None:
        super().__init__(f"job {job_id} is {status or 'no longer waiting'}: not claimed")
        self.job_id = job_id
        self.status = status


def strategy_key(group: str) -> str:
    return f"strategy.{group}"


def cursor_key(group: str) -> str:
    return f"rr.{group}"


def sync_static_nodes(config: NodesConfig) -> None:
    """Make the registry's static nodes match config.yaml; run-time state (status, enabled, draining) is kept."""
    wanted = {node.node_id: node for node in config.static_nodes}
    with session_scope(DatabaseName.ADMIN) as session:
        existing = {row.node_id: row for row in session.scalars(select(Node))}
        for node_id, spec in wanted.items():
            row = existing.get(node_id) or Node(node_id=node_id, status=NodeStatus.UNKNOWN, enabled=True)
            row.source = NodeSource.STATIC
            row.base_url = spec.base_url
            row.group = spec.group
            row.max_concurrent = spec.max_concurrent
            row.capabilities = list(spec.capabilities)
            row.weight = spec.weight
            session.add(row)
        for node_id, row in existing.items():
            if row.source == NodeSource.STATIC and node_id not in wanted:
                session.delete(row)


def register_node(
    *, node_id: str, base_url: str, group: str, max_concurrent: int, capabilities: Iterable[str], weight: float
) -> Node:
    """Add or update a dynamic node; a re-registration keeps its health and admin state."""
    with session_scope(DatabaseName.ADMIN) as session:
        row = session.get(Node, node_id)
        if row is not None and row.source == NodeSource.STATIC:
            raise NodeConflict(f"node {node_id!r} is defined in config.yaml")
        if row is None:
            row = Node(node_id=node_id, source=NodeSource.DYNAMIC, status=NodeStatus.UNKNOWN, enabled=True)
            session.add(row)
        if row.base_url != base_url:
            # Another server now: what was read from the old one says nothing about it.
            row.checkpoints, row.node_classes, row.status = [], [], NodeStatus.UNKNOWN
        row.base_url = base_url
        row.group = group
        row.max_concurrent = max_concurrent
        row.capabilities = list(capabilities)
        row.weight = weight
        row.last_seen_at = utcnow()
        session.flush()
        return row


def heartbeat(node_id: str) -> bool:
    """Note that a node is alive; False when the node is not registered."""
    with session_scope(DatabaseName.ADMIN) as session:
        row = session.get(Node, node_id)
        if row is None:
            return False
        row.last_seen_at = utcnow()
        return True


def record_last_checkpoint(node_id: str, checkpoint: str | None) -> None:
    """Remember the checkpoint a node loaded last (model-aware routing); unknown nodes are ignored."""
    with session_scope(DatabaseName.ADMIN) as session:
        row = session.get(Node, node_id)
        if row is not None:
            row.last_checkpoint = checkpoint


def list_snapshots(group: str | None = None) -> list[NodeSnapshot]:
    """Every node (of one group, or all) with its in-flight count from the job ledger, sorted by node_id."""
    with session_scope(DatabaseName.ADMIN) as session:
        nodes = _nodes(session, group)
    return _snapshots(nodes, _running_counts([n.node_id for n in nodes]))


def get_strategy(group: str, default: Strategy) -> Strategy:
    """The group's strategy: an admin override (Setting `strategy.<group>`) wins over config."""
    with session_scope(DatabaseName.ADMIN) as session:
        return _strategy(session, group, default)


def set_strategy(group: str, strategy: Strategy, *, actor: str) -> None:
    """Override a group's strategy at run time; claims use it from the next one on."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; one of {', '.join(sorted(STRATEGIES))}")
    with session_scope(DatabaseName.ADMIN) as session:
        row = session.get(Setting, strategy_key(group))
        if row is None:
            session.add(Setting(key=strategy_key(group), value=strategy, updated_by=actor))
        else:
            row.value, row.updated_by = strategy, actor
        session.add(AuditLog(actor=actor, action="set_strategy", target=group, detail={"strategy": strategy}))


def claim_node(
    job_id: str,
    group: str,
    req: Requirements,
    *,
    strategy: Strategy,
    exclude: frozenset[str],
    waiter_stale_s: float = DEFAULT_WAITER_STALE_S,
) -> NodeSnapshot:
    """Choose a node of the group and mark the job RUNNING on it, atomically across processes.

    `strategy` is the config default; an admin override for the group wins. Slots that live jobs waiting ahead
    of this one (priority, then age) could take are held for them. Raises NoFreeSlot (retryable; the job is then
    marked waiting, and its heartbeat refreshed) when every fitting node is full and NoEligibleNode when none fits.
    A waiter not seen for `waiter_stale_s` seconds (its worker died) no longer holds slots. With least_loaded, a
    job that would finish on the least-loaded node only after the group's work could all be done (the end of a
    burst) goes where it finishes first (`balancer.choose_node`) and may wait for that node.
    """
    _ensure_cursor_row(group)
    with session_scope(DatabaseName.ADMIN) as admin:
        cursor_row = _lock_group(admin, group)
        nodes = _nodes(admin, group)
        effective = _strategy(admin, group, strategy)
        cursor = cursor_row.value if isinstance(cursor_row.value, int) else 0
        # One shared-DB transaction reads the ledger and writes the outcome, committed under the group lock.
        with session_scope(DatabaseName.SHARED) as shared:
            outcome = _claim_in(shared, job_id, group, req, nodes, strategy=effective, exclude=exclude,
                                cursor=cursor, waiter_stale_s=waiter_stale_s)
        if isinstance(outcome, NoEligibleNode):
            raise outcome
        cursor_row.value = cursor + 1
    return outcome


def _claim_in(
    shared: Session,
    job_id: str,
    group: str,
    req: Requirements,
    nodes: list[Node],
    *,
    strategy: Strategy,
    exclude: frozenset[str],
    cursor: int,
    waiter_stale_s: float,
) -> NodeSnapshot | NoEligibleNode:
    """The chosen node (the job is marked RUNNING on it), or the refusal (the job is marked waiting, or not)."""
    job = shared.get(Job, job_id, with_for_update=True)  # MySQL: a cancel waits for this claim, not overwritten
    if job is None:
        raise UnknownJob(f"job {job_id!r} is not in the ledger")
    # Its flow run exists (it is running it): a job still `pending` (the API has not recorded the run yet) is queued.
    transitions.move(shared, job_id, JobStatus.QUEUED, only_from={JobStatus.PENDING})
    job = shared.get(Job, job_id)
    if job is None or job.status is not JobStatus.QUEUED:
        raise JobNotWaiting(job_id, JobStatus(job.status) if job is not None else None)
    node_ids = [n.node_id for n in nodes]
    snapshots = _snapshots(nodes, _running_counts_in(shared, node_ids, except_job=job_id))
    seen_since = utcnow() - timedelta(seconds=waiter_stale_s)
    snapshots = reserve_for_waiters(snapshots, ledger.waiters_ahead(shared, job, seen_since=seen_since))
    drain: float | None = None
    if strategy == "least_loaded":
        snapshots = _with_remaining_work(shared, snapshots, except_job=job_id)
        waiting = _waiting_work(shared, group, except_job=job_id) + req.work
        drain = drain_time(snapshots, req, waiting_work=waiting, exclude=exclude)
    try:
        chosen = choose_node(snapshots, req, strategy=strategy, exclude=exclude, cursor=cursor, drain_time=drain)
    except NoEligibleNode as exc:
        # It waits for the nodes the refusal names (only the one it finishes soonest on, when placed by finish
        # time) and holds no slot elsewhere; a job that cannot be placed at all stops waiting.
        able = capable(snapshots, req, exclude=exclude)[0] if exc.retryable else []
        waiting_for = [n.node_id for n in able if n.node_id in exc.reasons]
        if waiting_for:
            ledger.note_waiting(shared, job_id, nodes=waiting_for, now=utcnow(), heartbeat_every=HEARTBEAT_EVERY)
        else:
            ledger.stop_waiting(shared, job_id)
        exc.free_in_group = sum(max(0, n.max_concurrent - n.in_flight) for n in snapshots)
        exc.outage = not exc.retryable and could_run_once_up(snapshots, req)
        return exc
    if not ledger.claim(shared, job_id, node_id=chosen.node_id):  # compare-and-set: only a queued job
        raise JobNotWaiting(job_id, None)
    ledger.stop_waiting(shared, job_id)
    return chosen


def stop_waiting(job_id: str) -> None:
    """The job's flow left the claim loop without a node (gave up or was stopped): it holds no slots any more."""
    with session_scope(DatabaseName.SHARED) as shared:
        ledger.stop_waiting(shared, job_id)


def _ensure_cursor_row(group: str) -> None:
    """Create the group's lock row once (per database, per process); a concurrent creator winning is fine."""
    key = (str(get_engine(DatabaseName.ADMIN).url), group)
    if key in _cursor_rows:
        return
    with session_scope(DatabaseName.ADMIN) as session:
        exists = session.get(Setting, cursor_key(group)) is not None
    if not exists:
        try:
            with session_scope(DatabaseName.ADMIN) as session:
                session.add(Setting(key=cursor_key(group), value=0, updated_by="registry"))
        except IntegrityError:
            pass
    _cursor_rows.add(key)


def _lock_group(session: Session, group: str) -> Setting:
    if session.get_bind().dialect.name == "sqlite":
        # pysqlite begins transactions lazily (and only before writes); take the write lock now instead.
        session.connection().exec_driver_sql("BEGIN IMMEDIATE")
    stmt = select(Setting).where(Setting.key == cursor_key(group)).with_for_update()
    return session.scalars(stmt).one()


def _nodes(session: Session, group: str | None) -> list[Node]:
    stmt = select(Node).order_by(Node.node_id)
    if group is not None:
        stmt = stmt.where(Node.group == group)
    return list(session.scalars(stmt))


def _strategy(session: Session, group: str, default: Strategy) -> Strategy:
    row = session.get(Setting, strategy_key(group))
    value: Any = row.value if row is not None else None
    return value if value in STRATEGIES else default


def _waiting_work(shared: Session, group: str, *, except_job: str) -> float:
    """Sampler steps of the group's jobs not on a node yet (a job of unknown size counts one step)."""
    stmt = select(func.sum(func.coalesce(Job.work, 1))).where(
        Job.node_group == group, Job.status.in_([JobStatus.PENDING, JobStatus.QUEUED]), Job.id != except_job
    )
    return float(shared.scalar(stmt) or 0)


def _with_remaining_work(shared: Session, nodes: list[NodeSnapshot], *, except_job: str) -> list[NodeSnapshot]:
    """The nodes with the sampler steps their running prompts still have to go (from the jobs' progress)."""
    stmt = select(Job.node_id, Job.total_steps, Job.current_step, Job.work).where(
        Job.status == JobStatus.RUNNING, Job.node_id.in_([n.node_id for n in nodes]), Job.id != except_job
    )
    remaining: Counter[str] = Counter()
    for node_id, total, current, work in shared.execute(stmt):
        remaining[str(node_id)] += max(0, (total or work or 1) - (current or 0))
    return [replace(n, remaining_work=float(remaining[n.node_id])) for n in nodes]


def _running_counts(node_ids: list[str]) -> Counter[str]:
    with session_scope(DatabaseName.SHARED) as shared:
        return _running_counts_in(shared, node_ids)


def _running_counts_in(shared: Session, node_ids: list[str], *, except_job: str | None = None) -> Counter[str]:
    if not node_ids:
        return Counter()
    stmt = (
        select(Job.node_id, func.count())
        .where(Job.status == JobStatus.RUNNING, Job.node_id.in_(node_ids))
        .group_by(Job.node_id)
    )
    if except_job is not None:
        # A job re-claimed after a failed attempt must not count against the node it is leaving.
        stmt = stmt.where(Job.id != except_job)
    return Counter({str(node_id): int(count) for node_id, count in shared.execute(stmt)})


def _snapshots(nodes: list[Node], running: Counter[str]) -> list[NodeSnapshot]:
    return [_snapshot(node, running[node.node_id]) for node in nodes]


def _snapshot(node: Node, in_flight: int) -> NodeSnapshot:
    return NodeSnapshot(
        node_id=node.node_id,
        base_url=node.base_url,
        group=node.group,
        status=NodeStatus(node.status),
        enabled=bool(node.enabled),
        draining=bool(node.draining),
        max_concurrent=node.max_concurrent,
        in_flight=in_flight,
        queue_depth=node.queue_depth or 0,
        capabilities=tuple(node.capabilities or ()),
        checkpoints=frozenset(node.checkpoints or ()),
        node_classes=frozenset(node.node_classes or ()),
        weight=node.weight,
        last_checkpoint=node.last_checkpoint,
        vram_free=node.vram_free,
    )
