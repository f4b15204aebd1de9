"""Runs one flow run inside the worker's event loop: flow loading, per-run cancellation, no observer thread.

Prefect's own engine is built for one flow run per process. Here many runs share one process, so:
- a run is interrupted through its own anyio cancel scope, and the reason (`StopIntent`) lives on the run, not
  in Prefect's process-wide control intent (which would turn a per-run cancel into Crashed, or kill all runs);
- the per-run suspension observer (a thread with its own event loop and websocket) is skipped: our flows never
  pause or suspend;
- flows are imported once per deployment, as normal modules, instead of `load_flow_from_flow_run` (which
  changes the working directory and import path of the whole process);
- two server round trips leave the start of a run: the flow's version and retry policy are recorded in the
  background instead of before the run may begin, and the flow-run row is not read back right after it went
  Running (the worker read it moments before; its state is the one just accepted). A retry reads it as usual.
"""

from __future__ import annotations

import asyncio
import copy
import importlib
import logging
from collections.abc import Coroutine, Generator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any
from uuid import UUID

import anyio
from prefect import Flow
from prefect._flow_run_suspension import (
    FlowRunSuspensionRequest,
    register_flow_run_suspension_request,
)
from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.objects import FlowRun
from prefect.client.schemas.objects import State as ApiState
from prefect.flow_engine import AsyncFlowRunEngine
from prefect.flows import load_flow_from_entrypoint
from prefect.states import Scheduled, State
from prefect.utilities.callables import get_call_parameters, parameters_to_args_kwargs

log = logging.getLogger(__name__)


class StopIntent(StrEnum):
    """Why the worker interrupted a run; decides the state the run ends in."""

    CANCEL = "cancel"  # a user cancelled the run: Cancelled, on_cancellation hooks run
    RESCHEDULE = "reschedule"  # the worker is leaving: Scheduled again, another worker takes it


@dataclass
class RunControl:
    """The worker's handle on one in-flight run."""

    intent: StopIntent | None = None
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)

    def stop(self, intent: StopIntent) -> None:
        """Interrupt the run; the first intent wins (a cancel is not downgraded to a reschedule)."""
        if self.intent is None:
            self.intent = intent
        self.scope.cancel()


@dataclass
class InProcessFlowRunEngine(AsyncFlowRunEngine):
    """Prefect's async engine with per-run stop handling and without the suspension observer thread."""

    control: RunControl = field(default_factory=RunControl)
    _lean_client: PrefectClient | None = None
    _deferred: list[Coroutine[Any, Any, Any]] = field(default_factory=list)  # sent once the run is Running
    _background: set[asyncio.Task[Any]] = field(default_factory=set)

    @property
    def client(self) -> PrefectClient:
        shared = super().client
        if self._lean_client is None:
            self._lean_client = self._make_lean_client(shared)
        return self._lean_client

    def _make_lean_client(self, shared: PrefectClient) -> PrefectClient:
        """The worker's client (same connections) with the two start-up calls taken off the critical path."""
        lean = copy.copy(shared)
        skipped_read_back = False

        async def update_flow_run(flow_run_id: UUID, **fields: Any) -> None:
            # Sent after the Running proposal, not beside it: two writes at once only slow each other down.
            self._deferred.append(shared.update_flow_run(flow_run_id, **fields))

        async def read_flow_run(flow_run_id: UUID) -> FlowRun:
            nonlocal skipped_read_back
            run = self.flow_run
            if not skipped_read_back and run is not None and run.id == flow_run_id and run.state is not None \
                    and run.state.is_running():
                skipped_read_back = True
                return run.model_copy(update={"run_count": run.run_count + 1})  # as the server counts it
            return await shared.read_flow_run(flow_run_id)

        lean.update_flow_run = update_flow_run  # type: ignore[method-assign,assignment]
        lean.read_flow_run = read_flow_run  # type: ignore[method-assign]
        return lean

    async def set_state(self, state: State[Any], force: bool = False) -> State[Any]:
        accepted = await super().set_state(state, force)
        if accepted.is_running() or accepted.is_final():
            self._send_deferred()
        return accepted

    def _send_deferred(self) -> None:
        while self._deferred:
            task = asyncio.create_task(self._deferred.pop(0))
            self._background.add(task)
            task.add_done_callback(self._background_done)

    def _background_done(self, task: asyncio.Task[Any]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("recording the flow version of run %s failed: %s", self.flow_run and self.flow_run.id,
                        task.exception())

    async def settle_background(self) -> None:
        """Send what is still deferred and wait for the calls sent in the background (the run's end waits)."""
        self._send_deferred()
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    @contextmanager
    def setup_flow_run_suspension_request(self) -> Generator[FlowRunSuspensionRequest, None, None]:
        if self.flow_run is None:
            raise ValueError("Flow run not set")
        request = self._get_flow_run_suspension_request()
        with register_flow_run_suspension_request(self.flow_run.id, request):
            request.raise_if_requested()
            yield request

    async def handle_crash(self, exc: BaseException) -> None:
        # The engine reports every interruption it did not order itself as a crash; ours carry an intent.
        if self.control.intent is StopIntent.CANCEL:
            await self.handle_cancellation(exc)
        elif self.control.intent is StopIntent.RESCHEDULE:
            with anyio.CancelScope(shield=True):
                message = "The worker stopped before the run finished; rescheduled for another worker."
                await self.set_state(Scheduled(message=message), force=True)
                self._raised = exc  # type: ignore[assignment]  # as upstream's handle_crash does
        else:
            await super().handle_crash(exc)


async def run_flow_in_process(flow: Flow[..., Any], flow_run: FlowRun, control: RunControl) -> ApiState:
    """Drive an existing flow run to a final state in this event loop; return that state."""
    call_args, call_kwargs = parameters_to_args_kwargs(flow.fn, flow_run.parameters)
    parameters = get_call_parameters(flow.fn, call_args, call_kwargs)
    engine = InProcessFlowRunEngine(flow=flow, flow_run=flow_run, parameters=parameters, control=control)
    try:
        with control.scope:
            async with engine.start():
                while engine.is_running():
                    async with engine.run_context():
                        await engine.call_flow_fn()  # type: ignore[unused-coroutine]
    finally:
        await engine.settle_background()
    return engine.state


def load_flow(entrypoint: str, *, project_root: Path) -> Flow[..., Any]:
    """Import the flow an entrypoint names (`path/to/file.py:func` or `package.module:func`).

    A file under `project_root` is imported as its package module, so the flow and its tasks are the same
    objects as anywhere else in the process.
    """
    path, _, attribute = entrypoint.rpartition(":")
    if path.endswith(".py"):
        file = (project_root / path).resolve()
        try:
            relative = file.relative_to(project_root.resolve())
        except ValueError:
            return load_flow_from_entrypoint(entrypoint, use_placeholder_flow=False)
        module_name = ".".join(relative.with_suffix("").parts)
    else:
        module_name = path
    flow = getattr(importlib.import_module(module_name), attribute)
    if not isinstance(flow, Flow):
        raise TypeError(f"{entrypoint!r} is not a Prefect flow")
    if not flow.isasync:
        raise TypeError(f"{entrypoint!r} is a sync flow; the in-process worker runs async flows only")
    return flow
