"""Health monitor: probes every enabled node, records the result and moves nodes between healthy and unhealthy.

A node starts UNKNOWN (eligible, since nothing is known against it). The first probe decides at once: an answer
makes it HEALTHY, a failure UNHEALTHY. After that it takes `unhealthy_after` failures in a row to fall and
`healthy_after` successes in a row to come back, so one lost packet does not flap a node.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, replace

import httpx
from sqlalchemy import select

from comfyws.config import HealthConfig
from comfyws.http import async_client
from database.admin.models import HealthCheck, Node
from database.engine import session_scope
from database.enums import DatabaseName, NodeStatus
from database.types import utcnow
from workers.comfyui.client import ComfyUIClient
from workers.comfyui.errors import ComfyUIError
from workers.progress import get_publisher
from workers.strays import stop_abandoned

__all__ = ["HealthMonitor", "ProbeResult", "mark_suspect", "next_status", "probe_suspects"]

log = logging.getLogger(__name__)

_CHECKPOINT_LOADER = "CheckpointLoaderSimple"


@dataclass(frozen=True)
class ProbeTarget:
    """What the monitor needs to know about a node before probing it."""

    node_id: str
    base_url: str
    has_inventory: bool


@dataclass(frozen=True)
class ProbeResult:
    """One probe of one node; inventory fields are None when this probe did not read them."""

    node_id: str
    ok: bool
    latency_ms: float | None = None
    error: str | None = None
    vram_total: int | None = None
    vram_free: int | None = None
    queue_depth: int | None = None
    checkpoints: list[str] | None = None
    node_classes: list[str] | None = None


def next_status(
    current: NodeStatus, *, ok: bool, failures: int, successes: int, config: HealthConfig
) -> NodeStatus:
    """The node's status after a probe; `failures`/`successes` are the streaks including this probe."""
    if current == NodeStatus.UNKNOWN:
        return NodeStatus.HEALTHY if ok else NodeStatus.UNHEALTHY
    if ok and current == NodeStatus.UNHEALTHY and successes >= config.healthy_after:
        return NodeStatus.HEALTHY
    if not ok and current == NodeStatus.HEALTHY and failures >= config.unhealthy_after:
        return NodeStatus.UNHEALTHY
    return current


class HealthMonitor:
    """Probes nodes over HTTP and writes what it finds to the admin database."""

    def __init__(
        self, config: HealthConfig, *, http: httpx.AsyncClient | None = None, inventory_every: int = 10
    ) -> None:
        self.config = config
        self.inventory_every = inventory_every
        self._http = http
        # Successful probes since each node's inventory was last read; absent = read it on the next success.
        self._since_inventory: dict[str, int] = {}

    async def probe_once(self, *, only_unhealthy: bool = False, group: str | None = None) -> list[ProbeResult]:
        """Probe every enabled node (or only the unhealthy ones, of one group) concurrently, record the results,
        and return them."""
        targets = await asyncio.to_thread(_probe_targets, only_unhealthy=only_unhealthy, group=group)
        if not targets:
            return []
        own_http = self._http is None
        http = self._http or async_client(timeout=self.config.timeout_seconds)
        try:
            results = await asyncio.gather(*(self._probe(http, target) for target in targets))
        finally:
            if own_http:
                await http.aclose()
        changes = await asyncio.to_thread(record_probes, results, self.config)
        await _announce(changes)
        return list(results)

    async def run_forever(self, *, stop: asyncio.Event | None = None) -> None:
        """Probe every node every `interval_seconds`, and unhealthy ones (a node a job found refusing is marked so
        at once) every `suspect_interval_seconds`, until `stop` is set (or forever)."""
        stop = stop or asyncio.Event()
        tick = min(self.config.interval_seconds, self.config.suspect_interval_seconds)
        full_due = 0.0
        while not stop.is_set():
            started = time.monotonic()
            full = started >= full_due
            try:
                await self.probe_once(only_unhealthy=not full)
            except Exception:  # a database hiccup must not end monitoring
                log.exception("health probe round failed")
            if full:
                full_due = started + self.config.interval_seconds
            wait = max(0.0, tick - (time.monotonic() - started))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=wait)

    async def _probe(self, http: httpx.AsyncClient, target: ProbeTarget) -> ProbeResult:
        client = ComfyUIClient(target.base_url, http=http, timeout=self.config.timeout_seconds)
        started = time.monotonic()
        try:
            result = await asyncio.wait_for(self._read(client, target), timeout=self.config.timeout_seconds * 3)
        except (ComfyUIError, TimeoutError, httpx.HTTPError, ValueError) as exc:  # ValueError: a malformed answer
            self._since_inventory.pop(target.node_id, None)  # it may come back as another install: re-read
            return ProbeResult(node_id=target.node_id, ok=False, error=_describe(exc))
        latency = (time.monotonic() - started) * 1000.0
        return _with_latency(result, latency)

    async def _read(self, client: ComfyUIClient, target: ProbeTarget) -> ProbeResult:
        stats = await client.system_stats()
        queue = await client.queue()
        checkpoints: list[str] | None = None
        node_classes: list[str] | None = None
        if self._inventory_due(target):
            checkpoints, node_classes = await _inventory(client)
            self._since_inventory[target.node_id] = 0
        else:
            self._since_inventory[target.node_id] += 1
        await stop_abandoned(client, queue)
        devices = stats.devices
        return ProbeResult(
            node_id=target.node_id,
            ok=True,
            vram_total=sum(d.vram_total for d in devices) if devices else None,
            vram_free=max(d.vram_free for d in devices) if devices else None,
            queue_depth=queue.size,
            checkpoints=checkpoints,
            node_classes=node_classes,
        )

    def _inventory_due(self, target: ProbeTarget) -> bool:
        count = self._since_inventory.get(target.node_id)
        return count is None or not target.has_inventory or count + 1 >= self.inventory_every


async def _inventory(client: ComfyUIClient) -> tuple[list[str], list[str]]:
    """Checkpoint files and node classes of a node (object_info is large: read it only now and then)."""
    schemas = await client.object_info()
    try:
        checkpoints = await client.checkpoints()
    except ComfyUIError:
        # Older servers lack /models/checkpoints; the loader's ckpt_name choices say the same.
        loader = schemas.get(_CHECKPOINT_LOADER)
        checkpoints = (loader.choices("ckpt_name") if loader else None) or []
    return sorted(checkpoints), sorted(schemas)


def _with_latency(result: ProbeResult, latency_ms: float) -> ProbeResult:
    return replace(result, latency_ms=round(latency_ms, 1))


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "probe timed out"
    return str(exc) or type(exc).__name__


def _probe_targets(*, only_unhealthy: bool = False, group: str | None = None) -> list[ProbeTarget]:
    stmt = select(Node).where(Node.enabled.is_(True)).order_by(Node.node_id)
    if only_unhealthy:
        stmt = stmt.where(Node.status == NodeStatus.UNHEALTHY)
    if group is not None:
        stmt = stmt.where(Node.group == group)
    with session_scope(DatabaseName.ADMIN) as session:
        rows = session.scalars(stmt)
        return [ProbeTarget(r.node_id, r.base_url, bool(r.checkpoints or r.node_classes)) for r in rows]


def mark_suspect(node_id: str, error: str) -> bool:
    """A job found the node refusing or failing it: take it out of placement now (unhealthy) instead of after
    `unhealthy_after` probes; the monitor re-probes unhealthy nodes every `suspect_interval_seconds`, so a node
    that answers again is back within seconds. True when its status changed."""
    with session_scope(DatabaseName.ADMIN) as session:
        node = session.get(Node, node_id)
        if node is None or node.status == NodeStatus.UNHEALTHY:
            return False
        node.status = NodeStatus.UNHEALTHY
        node.consecutive_failures, node.consecutive_successes = (node.consecutive_failures or 0) + 1, 0
        node.last_error = f"suspect: {error}"[:1000]
        node.last_check_at = utcnow()
    log.warning("node %s is now suspect (%s)", node_id, error)
    return True


_suspect_probed: dict[str, float] = {}


async def probe_suspects(group: str, config: HealthConfig) -> None:
    """Re-probe the group's unhealthy nodes, at most every `suspect_interval_seconds` from this process: jobs
    waiting out an outage bring a returned node back themselves when no monitor runs (a lone `comfyws worker`)."""
    now = time.monotonic()
    if now - _suspect_probed.get(group, 0.0) < config.suspect_interval_seconds:
        return
    _suspect_probed[group] = now
    await HealthMonitor(config, inventory_every=1_000_000).probe_once(only_unhealthy=True, group=group)


async def _announce(changes: dict[str, NodeStatus]) -> None:
    """Tell the admin live feed which nodes changed health (the publisher logs, never raises, a lost event)."""
    for node_id, status in changes.items():
        await get_publisher().publish({"type": "node", "node_id": node_id, "status": str(status)})


def record_probes(results: list[ProbeResult], config: HealthConfig) -> dict[str, NodeStatus]:
    """Write one HealthCheck row per probe and update each node's streaks, status, resources and inventory.

    Returns the nodes whose status changed, with their new status."""
    changes: dict[str, NodeStatus] = {}
    with session_scope(DatabaseName.ADMIN) as session:
        for result in results:
            session.add(HealthCheck(node_id=result.node_id, ok=result.ok, latency_ms=result.latency_ms,
                                    error=result.error))
            node = session.get(Node, result.node_id)
            if node is not None and _apply(node, result, config):  # None: removed while we probed it
                changes[node.node_id] = NodeStatus(node.status)
    return changes


def _apply(node: Node, result: ProbeResult, config: HealthConfig) -> bool:
    """Record one probe on the node's row; True when its status changed."""
    now = utcnow()
    node.last_check_at = now
    if result.ok:
        node.consecutive_successes, node.consecutive_failures = (node.consecutive_successes or 0) + 1, 0
        node.last_seen_at, node.last_error = now, None
        node.vram_total, node.vram_free = result.vram_total, result.vram_free
        node.queue_depth = result.queue_depth or 0
        if result.checkpoints is not None:
            node.checkpoints = result.checkpoints
        if result.node_classes is not None:
            node.node_classes = result.node_classes
    else:
        node.consecutive_failures, node.consecutive_successes = (node.consecutive_failures or 0) + 1, 0
        node.last_error = result.error
    status = next_status(NodeStatus(node.status), ok=result.ok, failures=node.consecutive_failures,
                         successes=node.consecutive_successes, config=config)
    if status == node.status:
        return False
    log.warning("node %s is now %s (%s)", node.node_id, status, result.error or "answering")
    node.status = status
    return True
