"""A job on a node: claim a slot, upload inputs, submit, follow; what happens when the node fails it.

- A node that is down, refuses, hangs or loses the prompt (NodeUnavailable) is marked suspect at once (the health
  monitor re-probes it every second) and the job waits for the next node: another one, or the same one once it
  answers again. The job fails only when its group had no node up for `outage_wait_s`.
- A node fault while the prompt ran (out of memory, a GPU error) counts as an execution and the job moves on;
  `max_attempts` executions end it failed. Attempts the node never took (refused connections) do not count.
- What would fail on any node (a graph the node rejected, an execution error in the graph itself) ends the job at
  once, its error starting with the node's own message.
- Never twice: a prompt id stays with its node, so the same node is asked for the same prompt again (it follows the
  run it already has, or its history); a prompt left on a node the job moved away from is stopped by the monitor
  once that node answers again (`workers.strays`)."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from comfyws.config import get_config
from comfyws.settings import get_settings
from database.enums import AttemptStatus
from flows import ledger
from flows.claims import JobStopped, NoNodeAvailable, Outage, claim
from flows.models import NodeRun, PreparedJob
from flows.params import GenerationRequest
from flows.reporting import ProgressReporter, publish
from flows.settings import get_flow_settings
from workers import health, registry, strays
from workers.balancer import NodeSnapshot, requirements_for
from workers.comfyui.client import ComfyUIClient
from workers.comfyui.errors import (
    ComfyUIError,
    ExecutionFailed,
    NodeTimeout,
    NodeUnavailable,
    PromptInterrupted,
    PromptRejected,
)
from workers.comfyui.models import RunResult

__all__ = ["JobFailed", "JobStopped", "NoNodeAvailable", "node_snapshot", "run_on_some_node", "stop_prompt"]


STOP_TIMEOUT_S = 3.0  # asking a node to drop a prompt: a frozen node is left to `stop_when_back`
STOP_LATER_S = 600.0  # how long a prompt of a cancelled job is watched for on a node that did not answer


class JobFailed(Exception):
    """The job cannot succeed: the node's verdict on its graph, or its attempts are used up."""


@dataclass
class Attempts:
    """What this flow run learned from the job's attempts so far."""

    executions: int = 0  # prompts a node took and then failed (what max_attempts counts)
    failed_on: set[str] = field(default_factory=set)
    prompt_on: dict[str, str] = field(default_factory=dict)  # node -> the prompt id it may still know
    not_taken_since: float | None = None  # first of the refusals in a row (no node took the prompt since)


async def run_on_some_node(job_id: str, request: GenerationRequest, prepared: PreparedJob) -> NodeRun:
    """Run the job's prompt on nodes of its group until one succeeds, or the job cannot succeed."""
    book = Attempts()
    resumed = await _resume(job_id, prepared, book)
    if resumed is not None:
        return resumed
    await ledger.release_node(job_id)  # a slot an earlier run of this flow claimed, then died holding
    outage = Outage(job_id, prepared.client_id, request.node_group)
    max_executions = get_config().nodes.max_attempts
    while True:
        node = await claim(job_id, request, prepared, prefer_not=frozenset(book.failed_on), outage=outage)
        try:
            return await _attempt(job_id, node, prepared, book)
        except NodeUnavailable as exc:
            await asyncio.to_thread(health.mark_suspect, node.node_id, f"{type(exc).__name__}: {exc}")
            if node.node_id in book.prompt_on:  # the node held the prompt: stop it there once it answers
                _in_background(strays.stop_when_back(node.base_url, book.prompt_on[node.node_id],
                                                     within_s=outage.limit_s))
            _check_refusals(book, outage)
        except ExecutionFailed as exc:
            if not exc.node_fault:
                raise JobFailed(f"{exc.node_message} (failed on node {node.node_id})") from exc
        except PromptRejected as exc:
            raise JobFailed(f"{exc.node_message} (rejected by node {node.node_id})") from exc
        except PromptInterrupted:
            pass  # not by us (the job was not cancelled): an operator, or the monitor stopping a stale copy
        if book.executions >= max_executions:
            raise JobFailed(f"failed on {book.executions} nodes' executions (max_attempts {max_executions})")


_background: set[asyncio.Task[None]] = set()


def _in_background(work: Coroutine[Any, Any, None]) -> None:
    """Outlives the flow run (the worker process keeps it): held here so it is not collected half-way."""
    task = asyncio.get_running_loop().create_task(work)
    _background.add(task)
    task.add_done_callback(_background.discard)


def _check_refusals(book: Attempts, outage: Outage) -> None:
    """Refusals alone never end a job while the group's outage wait lasts; past it, they do."""
    if book.not_taken_since is not None and time.monotonic() - book.not_taken_since > outage.limit_s:
        raise JobFailed(f"no node of group {outage.group!r} took the job for {outage.limit_s:g} s")


async def _attempt(job_id: str, node: NodeSnapshot, prepared: PreparedJob, book: Attempts) -> NodeRun:
    """One attempt on a claimed node; the attempt is closed and the slot given back whatever happens."""
    prompt_id = book.prompt_on.get(node.node_id) or str(uuid.uuid4())
    known = node.node_id in book.prompt_on  # the node may hold this prompt already: ask before sending
    attempt_id = await ledger.start_attempt(job_id, node_id=node.node_id, prompt_id=prompt_id)
    if attempt_id is None:
        raise JobStopped(f"job {job_id} was cancelled before its prompt went to {node.node_id}")
    await publish(job_id, prepared.client_id, "status", status="running", node_id=node.node_id)
    taken = False

    def on_submitted(_: object) -> None:
        nonlocal taken
        taken = True
        book.prompt_on[node.node_id] = prompt_id
        book.not_taken_since = None

    async with ComfyUIClient(node.base_url, client_id="comfyws") as client:
        try:
            graph = await _upload_inputs(client, prepared)
            result = await client.run(
                graph, prompt_id=prompt_id, new=not known, on_submitted=on_submitted,
                on_event=ProgressReporter(job_id, prepared.client_id, node_id=node.node_id),
                idle_timeout=get_flow_settings().idle_timeout_s, total_timeout=get_flow_settings().total_timeout_s,
            )
        except BaseException as exc:
            # Shielded: a cancelled run must still stop its prompt on the node and close its attempt.
            with anyio.CancelScope(shield=True):
                if isinstance(exc, NodeTimeout | asyncio.CancelledError):
                    # A hung node's queue, or a cancelled job's prompt; briefly: a frozen node may not answer.
                    async with ComfyUIClient(node.base_url, timeout=STOP_TIMEOUT_S) as quick:
                        await stop_prompt(quick, prompt_id)
                _count(book, node.node_id, exc, taken=taken)
                await _attempt_failed(job_id, attempt_id, exc, taken=taken)
                if taken and isinstance(exc, asyncio.CancelledError):  # in case the node did not answer
                    _in_background(strays.stop_when_back(node.base_url, prompt_id, within_s=STOP_LATER_S))
            raise
    return await _attempt_succeeded(attempt_id, node, result, prepared)


def _count(book: Attempts, node_id: str, exc: BaseException, *, taken: bool) -> None:
    if isinstance(exc, asyncio.CancelledError):
        return
    book.failed_on.add(node_id)
    if taken:
        book.executions += 1
    elif book.not_taken_since is None:
        book.not_taken_since = time.monotonic()
    if isinstance(exc, ExecutionFailed | PromptRejected | PromptInterrupted):
        book.prompt_on.pop(node_id, None)  # that prompt ended on the node: a new try is a new prompt


async def stop_prompt(client: ComfyUIClient, prompt_id: str) -> None:
    """Take the prompt off the node's queue and interrupt it if it runs; a node in trouble is left alone."""
    with contextlib.suppress(ComfyUIError):  # a node in trouble: the monitor stops the prompt once it answers
        await client.stop(prompt_id)


async def _resume(job_id: str, prepared: PreparedJob, book: Attempts) -> NodeRun | None:
    """Pick up the prompt an earlier run of this flow left on a node (its worker died): never run it twice."""
    attempt = await ledger.running_attempt(job_id)
    if attempt is None:
        return None
    book.prompt_on[attempt.node_id] = attempt.prompt_id  # a later try on that node asks for the same prompt
    node = await node_snapshot(attempt.node_id)
    if node is None:
        await _attempt_failed(job_id, attempt.id, NodeUnavailable(f"node {attempt.node_id} is gone"), taken=True)
        return None
    async with ComfyUIClient(node.base_url, client_id="comfyws") as client:
        try:
            result = await client.follow(
                attempt.prompt_id,
                on_event=ProgressReporter(job_id, prepared.client_id, node_id=node.node_id),
                idle_timeout=get_flow_settings().idle_timeout_s,
            )
        except (NodeUnavailable, ExecutionFailed, PromptRejected) as exc:
            await _attempt_failed(job_id, attempt.id, exc, taken=True)
            if isinstance(exc, ExecutionFailed) and not exc.node_fault:
                raise JobFailed(f"{exc.node_message} (failed on node {node.node_id})") from exc
            return None
        except BaseException as exc:
            await _attempt_failed(job_id, attempt.id, exc, taken=True)
            raise
    return await _attempt_succeeded(attempt.id, node, result, prepared)


async def _upload_inputs(client: ComfyUIClient, prepared: PreparedJob) -> dict[str, Any]:
    graph = prepared.graph
    uploads_dir = get_settings().uploads_dir
    for image in prepared.images:
        path = uploads_dir / image.local_path
        data = await asyncio.to_thread(path.read_bytes)
        ref = await client.upload_image(data, Path(image.local_path).name, overwrite=True)
        node_name = f"{ref.subfolder}/{ref.filename}" if ref.subfolder else ref.filename
        for node_id, input_name in image.targets:
            graph[node_id]["inputs"][input_name] = node_name
    return graph


async def _attempt_failed(job_id: str, attempt_id: int, exc: BaseException, *, taken: bool) -> None:
    cancelled = isinstance(exc, asyncio.CancelledError)
    status = AttemptStatus.CANCELLED if cancelled else AttemptStatus.FAILED
    error = None if cancelled else f"{type(exc).__name__}: {exc}" + ("" if taken else " (the node never took it)")
    await ledger.finish_attempt(attempt_id, status, error=error)
    if not cancelled:
        await ledger.release_node(job_id)


async def _attempt_succeeded(attempt_id: int, node: NodeSnapshot, result: RunResult, prepared: PreparedJob) -> NodeRun:
    await ledger.finish_attempt(attempt_id, AttemptStatus.SUCCEEDED, execution_seconds=result.execution_s)
    checkpoints = requirements_for(prepared.graph, "").checkpoints
    await asyncio.to_thread(registry.record_last_checkpoint, node.node_id, next(iter(sorted(checkpoints)), None))
    animated = {ref: out.is_animated for out in result.outputs.values() for ref in out.files}
    return NodeRun(
        node_id=node.node_id,
        base_url=node.base_url,
        prompt_id=result.prompt_id,
        files=result.files,
        animated=[animated.get(ref, False) for ref in result.files],
        execution_s=result.execution_s,
    )


async def node_snapshot(node_id: str) -> NodeSnapshot | None:
    """The registry's view of one node, read off the event loop (other runs share it)."""
    nodes = await asyncio.to_thread(registry.list_snapshots)
    return next((n for n in nodes if n.node_id == node_id), None)
