"""Follows one prompt over the node's WebSocket, reconciling through HTTP when the socket drops or goes silent."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Self

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, WebSocketException

from workers.comfyui.errors import (
    ExecutionFailed,
    NodeTimeout,
    NodeUnavailable,
    PromptInterrupted,
    PromptLost,
)
from workers.comfyui.events import (
    Event,
    Executed,
    Executing,
    ExecutionCached,
    ExecutionError,
    ExecutionInterrupted,
    ExecutionStart,
    ExecutionSuccess,
    Preview,
    parse_binary,
    parse_message,
)
from workers.comfyui.models import HistoryEntry, NodeOutput, RunResult
from workers.comfyui.outputs import output_files

if TYPE_CHECKING:
    from workers.comfyui.client import ComfyUIClient

EventHandler = Callable[[Event], Awaitable[None]]

# Bounded reconnect backoff: about 8 s in all before the node counts as unavailable.
RECONNECT_DELAYS = (0.05, 0.25, 0.5, 1.0, 2.0, 4.0)
REFUSALS_BEFORE_GIVING_UP = 3
# Previews of large images can exceed websockets' 1 MiB default.
MAX_FRAME_BYTES = 64 * 1024 * 1024
FEATURE_FLAGS = json.dumps({"type": "feature_flags", "data": {"supports_preview_metadata": True}})


@dataclass(frozen=True)
class TrackerOptions:
    """Deadlines of one followed run, in seconds."""

    idle_timeout: float = 120.0
    total_timeout: float | None = None
    poll_interval: float = 10.0


@dataclass
class _RunState:
    """What the socket told us about our prompt so far."""

    outputs: dict[str, NodeOutput] = field(default_factory=dict)
    cached_nodes: list[str] = field(default_factory=list)
    start_ms: int | None = None
    start_mono: float | None = None
    missed_messages: bool = False

    def apply(self, event: Event) -> None:
        if isinstance(event, ExecutionStart):
            self.start_ms, self.start_mono = event.timestamp, time.monotonic()
        elif isinstance(event, ExecutionCached):
            self.cached_nodes = list(event.nodes)
        elif isinstance(event, Executed):
            self.outputs[event.node] = event.output

    def duration_s(self, end_ms: int | None) -> float | None:
        if self.start_ms is not None and end_ms is not None:
            return (end_ms - self.start_ms) / 1000.0
        return time.monotonic() - self.start_mono if self.start_mono is not None else None


class RunTracker:
    """One socket following one prompt; use as an async context manager, then `await wait()`."""

    def __init__(
        self,
        client: ComfyUIClient,
        prompt_id: str,
        *,
        client_id: str,
        on_event: EventHandler | None,
        options: TrackerOptions,
    ) -> None:
        self._client = client
        self._prompt_id = prompt_id
        self._client_id = client_id
        self._on_event = on_event
        self._options = options
        self._ws: ClientConnection | None = None
        self._state = _RunState()
        self._running_prompt: str | None = None
        self._must_reconcile = False
        now = time.monotonic()
        self._last_frame = self._last_own_event = self._last_reconcile = now

    async def __aenter__(self) -> Self:
        # No retries before submitting: nothing is lost yet, so an unreachable node is the caller's to route around.
        await self._connect(delays=())
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._ws is not None:
            await self._ws.close()

    async def wait(self, *, reconcile_first: bool = False) -> RunResult:
        """Follow until the prompt ends: a result, or ExecutionFailed/PromptInterrupted/PromptLost/NodeTimeout."""
        total = self._options.total_timeout
        deadline = None if total is None else time.monotonic() + total
        self._must_reconcile = reconcile_first
        while True:
            if self._must_reconcile or self._reconcile_due() or self._idle():
                if (result := await self._reconcile()) is not None:
                    return result
                self._check_alive()
            self._check_deadline(deadline)
            frame = await self._receive(deadline)
            if frame is not None and (result := await self._on_frame(frame)) is not None:
                return result

    # -- socket ------------------------------------------------------------------------------------------

    async def _connect(self, *, delays: tuple[float, ...] = RECONNECT_DELAYS) -> None:
        url = f"{self._client.ws_url}?clientId={self._client_id}"
        last_error: Exception | None = None
        refused = 0
        for delay in (0.0, *delays):
            await asyncio.sleep(delay)
            try:
                self._ws = await connect(
                    url, open_timeout=self._client.timeout, max_size=MAX_FRAME_BYTES, proxy=None
                )
                await self._ws.send(FEATURE_FLAGS)
                return
            except (OSError, TimeoutError, WebSocketException) as exc:
                last_error = exc
                # A refused connection means the host is up but no node process listens: it died. A restarted
                # node has lost its queue anyway, so the job should move at once instead of waiting out the
                # backoff meant for a flaky network.
                refused = refused + 1 if isinstance(exc, ConnectionRefusedError) else 0
                if refused >= REFUSALS_BEFORE_GIVING_UP:
                    break
        self._ws = None
        raise NodeUnavailable(f"WebSocket {url} unreachable: {last_error!r}", base_url=self._client.base_url)

    async def _receive(self, deadline: float | None) -> str | bytes | None:
        """The next frame, or None when the poll interval passed quietly or the socket was replaced."""
        if self._ws is None:
            # Unreachable in practice: wait() reconciles and raises before reading from a lost socket.
            raise NodeUnavailable("no WebSocket to read from", base_url=self._client.base_url)
        timeout = min(self._options.poll_interval, self._options.idle_timeout)
        if deadline is not None:
            timeout = max(0.0, min(timeout, deadline - time.monotonic()))
        try:
            frame = await asyncio.wait_for(self._ws.recv(), timeout)
        except TimeoutError:
            return None
        except ConnectionClosed:
            await self._reconnect()
            return None
        self._last_frame = time.monotonic()
        return frame

    async def _reconnect(self) -> None:
        # Frames sent while we were away are gone: where the prompt stands, and its result, come from HTTP.
        self._state.missed_messages = True
        self._must_reconcile = True
        try:
            await self._connect()
        except NodeUnavailable:
            # The node may still answer HTTP with a finished run; wait() decides after reconciling.
            return
        self._last_frame = time.monotonic()

    # -- messages ----------------------------------------------------------------------------------------

    async def _on_frame(self, frame: str | bytes) -> RunResult | None:
        event = parse_binary(frame) if isinstance(frame, bytes) else parse_message(frame)
        event = self._attribute(event)
        if event.prompt_id != self._prompt_id:
            return None
        self._last_own_event = time.monotonic()
        self._state.apply(event)
        if self._on_event is not None:
            await self._on_event(event)
        return await self._terminal(event)

    def _attribute(self, event: Event) -> Event:
        """Track the socket's running prompt; give legacy previews (no prompt_id) to it."""
        if isinstance(event, ExecutionStart):
            self._running_prompt = event.prompt_id
        if isinstance(event, Preview) and event.prompt_id is None and self._running_prompt is not None:
            return event.model_copy(update={"prompt_id": self._running_prompt})
        return event

    async def _terminal(self, event: Event) -> RunResult | None:
        if isinstance(event, ExecutionSuccess):
            return await self._success(event.timestamp)
        if isinstance(event, ExecutionError | ExecutionInterrupted):
            raise _failure_error(self._prompt_id, event, self._state.outputs)
        if isinstance(event, Executing) and event.node is None:
            # Older servers end with `executing null` only; history says how it ended.
            entry = await self._client.history(self._prompt_id)
            return self._from_history(entry) if entry else await self._success(None)
        return None

    async def _success(self, end_ms: int | None) -> RunResult:
        if self._state.missed_messages:
            entry = await self._client.history(self._prompt_id)
            if entry is not None:
                return self._from_history(entry)
        outputs = self._state.outputs
        return RunResult(
            prompt_id=self._prompt_id,
            outputs=outputs,
            files=output_files(outputs),
            cached_nodes=self._state.cached_nodes,
            execution_s=self._state.duration_s(end_ms),
        )

    # -- reconciliation ----------------------------------------------------------------------------------

    def _reconcile_due(self) -> bool:
        # Poll while our prompt is quiet: a missed end message (or a socket we were pushed off) must not hang us.
        now = time.monotonic()
        quiet = now - self._last_own_event >= self._options.poll_interval
        return quiet and now - self._last_reconcile >= self._options.poll_interval

    def _idle(self) -> bool:
        return time.monotonic() - self._last_frame >= self._options.idle_timeout

    async def _reconcile(self) -> RunResult | None:
        """Ask HTTP where the prompt is: finished -> its result; queued -> None; nowhere -> PromptLost."""
        self._last_reconcile = time.monotonic()
        self._must_reconcile = False
        entry = await self._client.history(self._prompt_id)
        if entry is None:
            queue = await self._client.queue()
            if queue.find(self._prompt_id) is not None:
                if queue.is_running(self._prompt_id):
                    self._running_prompt = self._prompt_id
                return None
            # It may have moved from queue to history between our two requests.
            entry = await self._client.history(self._prompt_id)
        if entry is None:
            raise PromptLost(self._prompt_id, base_url=self._client.base_url)
        return self._from_history(entry)

    def _from_history(self, entry: HistoryEntry) -> RunResult:
        failure = entry.failure
        if failure is not None or not entry.succeeded:
            raise _failure_error(self._prompt_id, failure, entry.outputs)
        cached = next((m.nodes for m in entry.messages if isinstance(m, ExecutionCached)), [])
        return RunResult(
            prompt_id=self._prompt_id,
            outputs=entry.outputs,
            files=entry.files,
            cached_nodes=list(cached),
            execution_s=entry.duration_s,
        )

    def _check_alive(self) -> None:
        """After a reconcile found the prompt still queued: fail if we can no longer follow it."""
        base_url = self._client.base_url
        if self._ws is None:
            message = f"WebSocket to {base_url} lost while prompt {self._prompt_id} is queued"
            raise NodeUnavailable(message, base_url=base_url)
        if self._idle():
            message = (
                f"node silent for {self._options.idle_timeout}s while prompt {self._prompt_id} is queued"
            )
            raise NodeTimeout(message, prompt_id=self._prompt_id, base_url=base_url)

    def _check_deadline(self, deadline: float | None) -> None:
        if deadline is not None and time.monotonic() >= deadline:
            message = f"prompt {self._prompt_id} not done after {self._options.total_timeout}s"
            raise NodeTimeout(message, prompt_id=self._prompt_id, base_url=self._client.base_url)


def _failure_error(
    prompt_id: str, event: Event | None, outputs: dict[str, NodeOutput]
) -> ExecutionFailed | PromptInterrupted:
    if isinstance(event, ExecutionInterrupted):
        return PromptInterrupted(prompt_id=prompt_id, node_id=event.node_id, node_type=event.node_type)
    if isinstance(event, ExecutionError):
        return ExecutionFailed(
            prompt_id=prompt_id,
            node_id=event.node_id,
            node_type=event.node_type,
            exception_type=event.exception_type,
            exception_message=event.exception_message,
            outputs=outputs,
        )
    return ExecutionFailed(
        prompt_id=prompt_id,
        node_id=None,
        node_type=None,
        exception_type="",
        exception_message="run ended in error",
        outputs=outputs,
    )
