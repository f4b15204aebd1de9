"""Crash safety: which worker claimed a flow run, and handing runs of a vanished worker back to the pool.

A worker writes its identity into the message of the Pending state it proposes when it claims a run (no extra
API call per run). A run of our pool left Pending or Running by a worker that no longer exists (its process
was killed) is set Scheduled again, so another worker runs it; the flows are written to be safe to run twice. So is
a run left Cancelling: run again, it finds its job `cancelling`, stops the prompt on the node and ends it cancelled.
"""

from __future__ import annotations

import os
import re
import socket
from dataclasses import dataclass

from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterState,
    FlowRunFilterStateType,
    WorkPoolFilter,
    WorkPoolFilterName,
)
from prefect.client.schemas.objects import FlowRun, StateType, WorkerStatus
from prefect.states import Scheduled

_CLAIM = re.compile(r"^Claimed by worker (?P<name>\S+) on (?P<host>\S+) pid (?P<pid>\d+)$")


@dataclass(frozen=True)
class WorkerIdentity:
    """Who claimed a run: the worker's name (unique per process start), host and process id."""

    name: str
    host: str
    pid: int

    @classmethod
    def current(cls, name: str) -> WorkerIdentity:
        return cls(name=name, host=socket.gethostname(), pid=os.getpid())

    def claim_message(self) -> str:
        return f"Claimed by worker {self.name} on {self.host} pid {self.pid}"

    @classmethod
    def from_claim_message(cls, message: str | None) -> WorkerIdentity | None:
        match = _CLAIM.match(message or "")
        if match is None:
            return None
        return cls(name=match["name"], host=match["host"], pid=int(match["pid"]))


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


async def _claimant(client: PrefectClient, flow_run: FlowRun) -> WorkerIdentity | None:
    if flow_run.state is not None and flow_run.state.type is StateType.PENDING:
        return WorkerIdentity.from_claim_message(flow_run.state.message)
    for state in sorted(
        await client.read_flow_run_states(flow_run.id), key=lambda s: s.timestamp, reverse=True
    ):
        if state.type is StateType.PENDING:
            return WorkerIdentity.from_claim_message(state.message)
    return None


class OrphanFinder:
    """Decides, for one worker, which claimed runs of its pool have lost their worker."""

    def __init__(self, client: PrefectClient, pool: str, me: WorkerIdentity) -> None:
        self._client = client
        self._pool = pool
        self._me = me

    async def _worker_gone(self, owner: WorkerIdentity) -> bool:
        if owner.name == self._me.name:
            return False
        if owner.host == self._me.host:
            # Same pid, other name: a container restarted and its new worker got the old pid.
            return owner.pid == self._me.pid or not _process_exists(owner.pid)
        workers = await self._client.read_workers_for_work_pool(self._pool)
        record = next((w for w in workers if w.name == owner.name), None)
        return record is None or record.status == WorkerStatus.OFFLINE

    async def orphans(self) -> list[FlowRun]:
        """Runs of the pool in Pending, Running or Cancelling whose claiming worker is gone (a run left Cancelling
        runs again only to stop its job's prompt on the node and end the job cancelled)."""
        runs = await self._client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                state=FlowRunFilterState(
                    type=FlowRunFilterStateType(any_=[StateType.PENDING, StateType.RUNNING, StateType.CANCELLING])
                )
            ),
            work_pool_filter=WorkPoolFilter(name=WorkPoolFilterName(any_=[self._pool])),
        )
        found: list[FlowRun] = []
        for run in runs:
            owner = await _claimant(self._client, run)
            if owner is not None and await self._worker_gone(owner):
                found.append(run)
        return found

    async def reschedule_orphans(self) -> list[FlowRun]:
        """Set every orphaned run Scheduled again; return them."""
        orphans = await self.orphans()
        for run in orphans:
            message = "Its worker disappeared; rescheduled for another worker."
            await self._client.set_flow_run_state(run.id, Scheduled(message=message), force=True)
        return orphans
