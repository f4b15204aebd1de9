"""Waiting for a node slot: claims in the group's line, node outages waited out, cancelled jobs never claimed."""

from __future__ import annotations

import asyncio
import time

from comfyws.config import Strategy, get_config
from database.shared.repositories import PRIORITY_RANK
from flows.models import PreparedJob
from flows.params import GenerationRequest
from flows.reporting import publish
from flows.settings import get_flow_settings
from flows.slots import pass_on, wait_turn, waiting_line
from workers import health, registry
from workers.balancer import NodeSnapshot, NoEligibleNode, Requirements, requirements_for


class NoNodeAvailable(Exception):
    """No node of the group can run the job: none ever could, or the group's outage outlasted its wait."""


class JobStopped(Exception):
    """The job no longer waits for a node (it was cancelled meanwhile): the flow ends without running it."""


class Outage:
    """How long the job has found no node up: from the first refusal of an outage to the next claim that works."""

    def __init__(self, job_id: str, client_id: str, group: str) -> None:
        self.job_id, self.client_id, self.group = job_id, client_id, group
        self.since: float | None = None
        self.limit_s = get_config().nodes.group(group).outage_wait_s

    @property
    def detail(self) -> str:
        return f"waiting for a node of group {self.group}"

    async def refused(self, exc: NoEligibleNode) -> None:
        """A claim found no node up: start (and announce) the wait, or fail it once it lasted `outage_wait_s`."""
        now = time.monotonic()
        if self.since is None:
            self.since = now
            await publish(self.job_id, self.client_id, "status", status="queued", detail=self.detail,
                          reason=str(exc))
        elif now - self.since > self.limit_s:
            raise NoNodeAvailable(
                f"no node of group {self.group!r} could take the job for {self.limit_s:g} s ({exc})"
            ) from exc
        await health.probe_suspects(self.group, get_config().nodes.health)

    def ended(self) -> None:
        self.since = None


async def claim(
    job_id: str, request: GenerationRequest, prepared: PreparedJob, *, prefer_not: frozenset[str], outage: Outage
) -> NodeSnapshot:
    """A node with a free slot, chosen by the group's strategy; waits while every able node is busy or down.

    While it waits for a slot the job is marked waiting in the ledger, so a freed slot goes to the best waiting
    job of the group (priority, then age). `prefer_not` (nodes this job failed on) are avoided while another node
    can take the job, never longer: a node that comes back is used again."""
    try:
        return await _claim_loop(job_id, request, prepared, prefer_not, outage)
    except registry.JobNotWaiting as exc:
        raise JobStopped(str(exc)) from exc
    finally:
        await asyncio.to_thread(registry.stop_waiting, job_id)


async def _claim_loop(
    job_id: str, request: GenerationRequest, prepared: PreparedJob, prefer_not: frozenset[str], outage: Outage
) -> NodeSnapshot:
    group = request.node_group
    req = requirements_for(prepared.graph, request.task_type)
    settings = get_flow_settings()
    deadline = time.monotonic() + settings.slot_wait_s
    default_strategy = get_config().nodes.group(group).strategy  # claim_node applies the group's admin override
    with waiting_line(group, PRIORITY_RANK.get(request.priority, len(PRIORITY_RANK))) as waiter:
        while True:
            try:
                node = await _try(job_id, group, req, default_strategy, prefer_not)
            except NoEligibleNode as exc:
                if exc.retryable:
                    outage.ended()
                    if time.monotonic() > deadline:
                        raise NoNodeAvailable(f"no node of group {group!r} freed a slot in time") from exc
                    if exc.free_in_group:
                        pass_on(waiter)  # slots this job cannot use (or may not take yet): the next job tries them
                elif exc.outage:
                    await outage.refused(exc)
                else:
                    raise NoNodeAvailable(f"no node can run this job: {exc}") from exc
            else:
                outage.ended()
                pass_on(waiter)  # more slots may be free: the next job in line tries
                return node
            await wait_turn(waiter, settings.slot_poll_s, keep_alive_s=settings.waiter_stale_s / 2)


async def _try(
    job_id: str, group: str, req: Requirements, strategy: Strategy, prefer_not: frozenset[str]
) -> NodeSnapshot:
    settings = get_flow_settings()

    def claim_now(exclude: frozenset[str]) -> NodeSnapshot:
        return registry.claim_node(job_id, group, req, strategy=strategy, exclude=exclude,
                                   waiter_stale_s=settings.waiter_stale_s)

    try:
        return await asyncio.to_thread(claim_now, prefer_not)
    except NoEligibleNode as exc:
        if not prefer_not or exc.retryable:
            raise
    # Only nodes it failed on could take it: they are as good as any now.
    return await asyncio.to_thread(claim_now, frozenset())
