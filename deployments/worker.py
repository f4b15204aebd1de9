"""`ComfyWorker`: a Prefect worker type that runs each flow run of its pool as an asyncio task in its own process.

Why not the stock process worker: it starts a new Python process per run (seconds of latency and CPU). This
worker claims a run, imports its flow once per deployment and hands the run to Prefect's engine in-process.
It takes a job's run straight from the server's `prefect.flow-run.Scheduled` event (claiming it and reading it
side by side, no poll), wakes its poll on the events of other runs and when a paused queue resumes (a slow poll
is the fallback), cancels runs one at a time, hands back runs of vanished workers at start, and drains its runs
before it exits.
See docs/notes/prefect-worker-latency.md for the measurements behind these choices.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from uuid import UUID

import anyio
import anyio.abc
from prefect import Flow
from prefect._internal.observers import FlowRunCancellingObserver
from prefect.client.schemas.objects import FlowRun
from prefect.client.schemas.responses import WorkerFlowRunResponse
from prefect.context import AsyncClientContext, SyncClientContext
from prefect.events import Event
from prefect.events.clients import get_events_subscriber
from prefect.events.filters import EventAnyResourceFilter, EventFilter, EventNameFilter
from prefect.exceptions import Abort, ObjectNotFound
from prefect.logging.handlers import APILogHandler
from prefect.states import Cancelled, Pending, Scheduled, State
from prefect.utilities.engine import propose_state
from prefect.utilities.services import critical_service_loop
from prefect.workers.base import BaseJobConfiguration, BaseVariables, BaseWorker, BaseWorkerResult

from deployments.engine import RunControl, StopIntent, load_flow, run_flow_in_process
from deployments.names import JOB_TAG_PREFIX, WORKER_TYPE
from deployments.recovery import OrphanFinder, WorkerIdentity

_EVENT_RECONNECT_SECONDS = 2.0
# Status changes of the pool and its queues: a paused one gets no run from the event path.
_STATUS_EVENTS = [f"prefect.{kind}.{status}" for kind in ("work-pool", "work-queue")
                  for status in ("paused", "ready", "not-ready")]
_JOB_TAG_RESOURCE = f"prefect.tag.{JOB_TAG_PREFIX}"


class ComfyWorkerResult(BaseWorkerResult):
    """Outcome of one in-process run: identifier is the flow run id, status 0 unless the run crashed."""


class ComfyWorker(BaseWorker[BaseJobConfiguration, BaseVariables, ComfyWorkerResult]):
    """Runs the flow runs of one work pool as asyncio tasks in this process (async flows only)."""

    type = WORKER_TYPE
    job_configuration = BaseJobConfiguration
    job_configuration_variables = BaseVariables
    _description = "Runs flow runs as asyncio tasks inside the worker process (comfyws)."

    def __init__(
        self,
        work_pool_name: str,
        *,
        limit: int = 8,
        name: str | None = None,
        poll_interval: float = 10.0,
        recovery_interval: float = 60.0,
        drain_timeout: float = 600.0,
        project_root: Path | None = None,
    ) -> None:
        super().__init__(
            work_pool_name=work_pool_name,
            limit=limit,
            name=name or f"comfyws-{uuid.uuid4().hex[:12]}",
            prefetch_seconds=0,
        )
        self.identity = WorkerIdentity.current(self.name)
        self._poll_interval = poll_interval
        self._recovery_interval = recovery_interval
        self._drain_timeout = drain_timeout
        self._project_root = project_root or Path.cwd()
        self._flows: dict[UUID, Flow[..., Any]] = {}
        self._flow_load_lock = asyncio.Lock()
        self._controls: dict[UUID, RunControl] = {}
        self._wake = asyncio.Event()
        self._slot_freed = asyncio.Event()
        self._saturated = False
        self._accepting = True
        self._paused: set[str] | None = None  # resource ids of our paused pool/queues; None = not known now

    @classmethod
    def get_default_base_job_template(cls) -> dict[str, Any]:
        """No job variables: a run executes inside this process, so a per-run env, command or labels would not
        apply. (The stock template's schema also cost the server ~10 ms of JSON-schema validation for every flow
        run it created; an empty one costs under 1 ms.)"""
        fixed: dict[str, Any] = {"command": None, "env": {}, "labels": {}, "name": None}  # no placeholders
        return {"job_configuration": fixed, "variables": {"type": "object", "properties": {}}}

    # ----- serving -----

    async def serve(self, stop: asyncio.Event) -> None:
        """Run until `stop` is set, then drain in-flight runs (rescheduling any left after drain_timeout)."""
        # One API client of each kind for the worker and every engine it drives: without a sync one in context,
        # Prefect builds a new client (and TLS context, ~50 ms of CPU) in every run's start-up.
        with SyncClientContext():
            async with AsyncClientContext():
                await self._serve_with_clients(stop)

    async def _serve_with_clients(self, stop: asyncio.Event) -> None:
        async with self:
            async with anyio.create_task_group() as loops:
                loops.start_soon(self._sync_loop)
                loops.start_soon(self._poll_loop)
                loops.start_soon(self._listen_for_scheduled)
                loops.start_soon(self._recovery_loop)
                self._logger.info("Worker %r serving pool %r", self.name, self._work_pool_name)
                await stop.wait()
                self._accepting = False
                loops.cancel_scope.cancel()
            await self._drain()
        await APILogHandler.aflush()

    async def _drain(self) -> None:
        with anyio.move_on_after(self._drain_timeout):
            while self._controls:
                self._slot_freed.clear()
                await self._slot_freed.wait()
        self.hand_back_runs()
        # Leaving `async with self` joins the runs' task group, so the reschedules land before we return.

    def hand_back_runs(self) -> None:
        """Interrupt every in-flight run and set it Scheduled again, for another worker to run."""
        self._accepting = False
        for control in list(self._controls.values()):
            control.stop(StopIntent.RESCHEDULE)

    async def _sync_loop(self) -> None:
        await critical_service_loop(
            workload=self._sync_and_initialize,
            interval=self.heartbeat_interval_seconds,
            jitter_range=0.3,
            backoff=4,
        )

    async def _poll_loop(self) -> None:
        while True:
            with anyio.move_on_after(self._poll_interval):
                await self._wake.wait()
            self._wake.clear()
            try:
                await self.get_and_submit_flow_runs()
            except Exception as exc:  # noqa: BLE001  # the API may be restarting; the next poll retries
                self._logger.warning("Polling for flow runs failed: %s", exc)

    async def _listen_for_scheduled(self) -> None:
        pool = await self._wait_for_work_pool()
        event_filter = EventFilter(
            event=EventNameFilter(name=["prefect.flow-run.Scheduled", *_STATUS_EVENTS]),
            any_resource=EventAnyResourceFilter(id=[f"prefect.work-pool.{pool}"]),
        )
        while True:
            try:
                async with get_events_subscriber(filter=event_filter, reconnection_attempts=0) as events:
                    await self._load_paused()  # read after subscribing, so no pause in between goes unseen
                    self._wake.set()  # runs scheduled while we were not listening
                    async for event in events:
                        self._on_event(event)
            except Exception as exc:  # noqa: BLE001  # the slow poll covers the gap until we reconnect
                self._logger.debug("Scheduled-event stream lost: %s", exc)
            self._paused = None  # unknown until the next connection reads it: no run is taken from events
            await anyio.sleep(_EVENT_RECONNECT_SECONDS)

    async def _load_paused(self) -> None:
        pool = await self.client.read_work_pool(self._work_pool_name)
        queues = await self.client.read_work_queues(work_pool_name=self._work_pool_name)
        paused = {f"prefect.work-queue.{q.id}" for q in queues if q.is_paused}
        if pool.is_paused:
            paused.add(f"prefect.work-pool.{pool.id}")
        self._paused = paused

    def _on_event(self, event: Event) -> None:
        if event.event == "prefect.flow-run.Scheduled":
            if not self._take_scheduled(event):
                self._wake.set()
        elif event.event.endswith(".paused"):
            if self._paused is not None:
                self._paused.add(event.resource.id)
        else:  # a queue or the pool was resumed, or its readiness changed: poll now for runs it may hold
            if self._paused is not None:
                self._paused.discard(event.resource.id)
            self._wake.set()

    def _take_scheduled(self, event: Event) -> bool:
        """Claim a run straight from its Scheduled event, without a poll; False leaves it to the poll.

        Only a run the API made for a job (tagged `job:<id>`, due at once: a run scheduled for later goes through
        the poll, which honours its time), in a queue and pool not paused, and while this worker has a free slot.
        """
        if not self._accepting or self._paused is None or self._runs_task_group is None:
            return False
        related = [(r.id, r.role) for r in event.related]
        if not any(role == "tag" and rid.startswith(_JOB_TAG_RESOURCE) for rid, role in related):
            return False
        if any(rid in self._paused for rid, role in related if role in ("work-queue", "work-pool")):
            return False
        try:
            run_id = UUID(event.resource.id.removeprefix("prefect.flow-run."))
        except ValueError:
            return False
        if run_id in self._submitting_flow_run_ids:
            return True
        try:
            self.limiter.acquire_on_behalf_of_nowait(run_id)
        except anyio.WouldBlock:
            self._saturated = True  # the poll that follows the next free slot finds it
            return True
        except RuntimeError:  # this worker already holds it
            return True
        self._submitting_flow_run_ids.add(run_id)
        if self._cancelling_observer is not None:
            self._cancelling_observer.add_in_flight_flow_run_id(run_id)
        self._runs_task_group.start_soon(self._submit_run_by_id, run_id)
        return True

    async def _wait_for_work_pool(self) -> UUID:
        while self._work_pool is None:  # first sync failed (API down); the sync loop keeps trying
            await anyio.sleep(_EVENT_RECONNECT_SECONDS)
        return self._work_pool.id

    async def _recovery_loop(self) -> None:
        await self._wait_for_work_pool()
        finder = OrphanFinder(self.client, self._work_pool_name, self.identity)
        while True:
            try:
                rescheduled = await finder.reschedule_orphans()
            except Exception as exc:  # noqa: BLE001  # a sweep that fails is retried on the next one
                self._logger.warning("Looking for orphaned flow runs failed: %s", exc)
            else:
                for run in rescheduled:
                    self._logger.warning("Rescheduled flow run %s: its worker is gone", run.id)
                    self._run_beyond_limit(run.id)
                if rescheduled:
                    self._wake.set()
            await anyio.sleep(self._recovery_interval)

    def _run_beyond_limit(self, run_id: UUID) -> None:
        """Run a handed-back run now, even with every slot of this worker taken: its job may hold a node slot in
        the ledger, and the runs filling this worker may be waiting for exactly that slot (a deadlock until it
        runs). Its claim (Pending) still keeps another worker from running it too."""
        if not self._accepting or self._runs_task_group is None or run_id in self._submitting_flow_run_ids:
            return
        self._submitting_flow_run_ids.add(run_id)
        if self._cancelling_observer is not None:
            self._cancelling_observer.add_in_flight_flow_run_id(run_id)
        self._runs_task_group.start_soon(self._submit_run_by_id, run_id)

    # ----- BaseWorker hooks -----

    async def _get_scheduled_flow_runs(self) -> list[WorkerFlowRunResponse]:
        if not self._accepting:
            return []
        free = int(self.limiter.available_tokens)
        if free == 0:
            self._saturated = True
            return []
        response = await self.client.request(
            "POST",
            "/work_pools/{name}/get_scheduled_flow_runs",
            path_params={"name": self._work_pool_name},
            json={"limit": free},
        )
        runs = WorkerFlowRunResponse.model_validate_list(response.json())
        # The server returns at most `limit` runs: a full answer means a backlog we cannot see yet.
        self._saturated = len(runs) >= free
        return runs

    async def _submit_run(self, flow_run: FlowRun) -> None:
        async with self._holding(flow_run.id) as control:
            state = await self._claim(flow_run.id)
            if state is not None:
                flow_run.state = state
                await self.run(flow_run, BaseJobConfiguration(), control=control)

    async def _submit_run_by_id(self, run_id: UUID) -> None:
        """A run taken from its event: claim it and read it at once (two round trips side by side, not in turn)."""
        async with self._holding(run_id) as control:
            state, flow_run = await asyncio.gather(self._claim(run_id), self._read_run(run_id))
            if state is None:
                return
            if flow_run is None:
                # Claimed but unreadable (the client already retried): give it back. Should the server refuse that
                # too, the run stays Pending until this worker is gone, and the next worker's sweep hands it back.
                with contextlib.suppress(Exception):
                    await self._settle_interrupted(run_id, StopIntent.RESCHEDULE)
                return
            flow_run.state = state
            await self.run(flow_run, BaseJobConfiguration(), control=control)

    async def _read_run(self, run_id: UUID) -> FlowRun | None:
        try:
            return await self.client.read_flow_run(run_id)
        except Exception:
            self._logger.exception("Could not read flow run %s", run_id)
            return None

    @asynccontextmanager
    async def _holding(self, run_id: UUID) -> AsyncIterator[RunControl]:
        """The run's control while it is in flight here; its slot and bookkeeping are given back after."""
        control = RunControl()
        self._controls[run_id] = control
        try:
            yield control
        finally:
            self._controls.pop(run_id, None)
            self._submitting_flow_run_ids.discard(run_id)
            if self._cancelling_observer is not None:
                self._cancelling_observer.remove_in_flight_flow_run_id(run_id)
            self._release_limit_slot(run_id)
            self._on_slot_freed()

    def _on_slot_freed(self) -> None:
        self._slot_freed.set()
        if self._saturated:
            self._saturated = False
            self._wake.set()

    async def _claim(self, run_id: UUID) -> State[Any] | None:
        """Propose Pending with our identity: the accepted state, or None if another worker (or a cancel) got
        there first."""
        try:
            state = await propose_state(self.client, Pending(message=self.identity.claim_message()), flow_run_id=run_id)
        except Abort:
            return None
        except Exception:
            self._logger.exception("Could not claim flow run %s", run_id)
            return None
        return state if state.is_pending() else None

    async def run(
        self,
        flow_run: FlowRun,
        configuration: BaseJobConfiguration,
        task_status: anyio.abc.TaskStatus[int] | None = None,
        *,
        control: RunControl | None = None,
    ) -> ComfyWorkerResult:
        """Run a claimed flow run to a final state in this process."""
        if task_status is not None:
            task_status.started(0)
        control = control or RunControl()
        try:
            flow = await self._flow_for(flow_run)
        except ObjectNotFound:
            await self._mark_flow_run_as_cancelled(flow_run, {"message": "Its deployment no longer exists."})
            return ComfyWorkerResult(identifier=str(flow_run.id), status_code=0)
        except Exception as exc:
            self._logger.exception("Could not load the flow of flow run %s", flow_run.id)
            await self._propose_failed_state(flow_run, exc)
            return ComfyWorkerResult(identifier=str(flow_run.id), status_code=1)
        state = await run_flow_in_process(flow, flow_run, control)
        if control.intent is not None and not (state.is_final() or state.is_scheduled()):
            await self._settle_interrupted(flow_run.id, control.intent)
        return ComfyWorkerResult(identifier=str(flow_run.id), status_code=1 if state.is_crashed() else 0)

    async def _settle_interrupted(self, run_id: UUID, intent: StopIntent) -> None:
        """A run interrupted before the engine took it over: give it the state the intent asks for."""
        if intent is StopIntent.CANCEL:
            await self.client.set_flow_run_state(run_id, Cancelled(message="Cancelled before it started."), force=True)
        else:
            message = "The worker stopped before the run started; rescheduled for another worker."
            await self.client.set_flow_run_state(run_id, Scheduled(message=message), force=True)

    async def _flow_for(self, flow_run: FlowRun) -> Flow[..., Any]:
        if flow_run.deployment_id is None:
            raise ValueError("flow run has no deployment; this worker only runs deployments")
        async with self._flow_load_lock:
            if flow_run.deployment_id not in self._flows:
                deployment = await self.client.read_deployment(flow_run.deployment_id)
                if not deployment.entrypoint:
                    raise ValueError(f"deployment {deployment.name!r} has no entrypoint")
                self._flows[flow_run.deployment_id] = await anyio.to_thread.run_sync(
                    lambda: load_flow(deployment.entrypoint or "", project_root=self._project_root)
                )
        return self._flows[flow_run.deployment_id]

    async def _setup_cancellation_observer(self) -> None:
        # Always on: cancelling one run is a feature here, not an opt-in (the stock setting defaults off).
        if self._cancelling_observer is not None or self._work_pool is None:
            return
        pool_id = self._work_pool.id
        self._cancelling_observer = await self._exit_stack.enter_async_context(
            FlowRunCancellingObserver(
                on_cancelling=self._on_cancelling,
                polling_interval=self._poll_interval,
                event_filter=EventFilter(
                    event=EventNameFilter(name=["prefect.flow-run.Cancelling"]),
                    any_resource=EventAnyResourceFilter(id=[f"prefect.work-pool.{pool_id}"]),
                ),
            )
        )

    def _on_cancelling(self, flow_run_id: UUID) -> None:
        if self._runs_task_group is not None:
            self._runs_task_group.start_soon(self._cancel_run, flow_run_id)

    async def _cancel_run(self, flow_run_id: UUID) -> None:
        control = self._controls.get(flow_run_id)
        if control is None:
            await super()._cancel_run(flow_run_id)
            return
        self._logger.info("Cancelling flow run %s", flow_run_id)
        control.stop(StopIntent.CANCEL)
