"""One attempt of a job on a node: claim a slot, upload inputs, submit, follow, and the rules for retrying."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import anyio
from prefect import Task
from prefect.client.schemas.objects import TaskRun
from prefect.states import State

from comfyws.config import get_config
from comfyws.settings import get_settings
from database.enums import AttemptStatus
from database.shared.repositories import PRIORITY_RANK
from flows import ledger
from flows.models import NodeRun, PreparedJob
from flows.params import GenerationRequest
from flows.reporting import ProgressReporter, publish
from flows.settings import get_flow_settings
from flows.slots import pass_on, wait_turn, waiting_line
from workers import registry
from workers.balancer import NodeSnapshot, NoEligibleNode, requirements_for
from workers.comfyui.client import ComfyUIClient
from workers.comfyui.errors import ComfyUIError, ExecutionFailed, NodeTimeout, NodeUnavailable
from workers.comfyui.models import RunResult

# A node that is down, hangs, loses the prompt or fails while running it: the job moves to another node.
# A graph the node rejected (PromptRejected) would be rejected anywhere: never retried.
RETRYABLE = (NodeUnavailable, ExecutionFailed)


class NoNodeAvailable(Exception):
    """No node of the group can run the job (none eligible, or none freed a slot in time)."""


def is_node_trouble(task: Task[..., Any], task_run: TaskRun, state: State[Any]) -> bool:
    """Retry condition of run-on-node: only failures of the node, never a rejected graph."""
    return isinstance(state.data, RETRYABLE)


async def run_on_some_node(job_id: str, request: GenerationRequest, prepared: PreparedJob) -> NodeRun:
    resumed = await _resume(job_id, prepared)
    if resumed is not None:
        return resumed
    node = await _claim(job_id, request, prepared)
    prompt_id = str(uuid.uuid4())
    attempt_id = await ledger.start_attempt(job_id, node_id=node.node_id, prompt_id=prompt_id)
    await publish(job_id, prepared.client_id, "status", status="running", node_id=node.node_id)
    async with ComfyUIClient(node.base_url, client_id="comfyws") as client:
        try:
            graph = await _upload_inputs(client, prepared)
            result = await client.run(
                graph,
                prompt_id=prompt_id,
                new=True,  # made above, for this attempt only
                on_event=ProgressReporter(job_id, prepared.client_id, node_id=node.node_id),
                idle_timeout=get_flow_settings().idle_timeout_s,
                total_timeout=get_flow_settings().total_timeout_s,
            )
        except BaseException as exc:
            # Shielded: a cancelled run must still stop its prompt on the node and close its attempt.
            with anyio.CancelScope(shield=True):
                if isinstance(exc, NodeTimeout | asyncio.CancelledError):
                    await stop_prompt(client, prompt_id)  # a hung node's queue, or a cancelled job's prompt
                await _attempt_failed(job_id, attempt_id, exc)
            raise
    return await _attempt_succeeded(attempt_id, node, result, prepared)


async def stop_prompt(client: ComfyUIClient, prompt_id: str) -> None:
    """Take the prompt off the node's queue and interrupt it if it runs; a node in trouble is left alone."""
    try:
        await client.delete_from_queue([prompt_id])
        await client.interrupt(prompt_id)
    except ComfyUIError:
        pass  # the node is in trouble anyway; the job has moved on


async def _resume(job_id: str, prepared: PreparedJob) -> NodeRun | None:
    """Pick up the prompt an earlier run of this flow left on a node (its worker died): never run it twice."""
    attempt = await ledger.running_attempt(job_id)
    if attempt is None:
        return None
    node = await node_snapshot(attempt.node_id)
    if node is None:
        await _attempt_failed(job_id, attempt.id, NodeUnavailable(f"node {attempt.node_id} is gone"))
        return None
    async with ComfyUIClient(node.base_url, client_id="comfyws") as client:
        try:
            result = await client.follow(
                attempt.prompt_id,
                on_event=ProgressReporter(job_id, prepared.client_id, node_id=node.node_id),
                idle_timeout=get_flow_settings().idle_timeout_s,
            )
        except (NodeUnavailable, ExecutionFailed) as exc:
            await _attempt_failed(job_id, attempt.id, exc)
            return None
        except BaseException as exc:
            await _attempt_failed(job_id, attempt.id, exc)
            raise
    return await _attempt_succeeded(attempt.id, node, result, prepared)


async def _claim(job_id: str, request: GenerationRequest, prepared: PreparedJob) -> NodeSnapshot:
    """A node with a free slot, chosen by the group's strategy; waits while every eligible node is busy.

    While it waits the job is marked waiting in the ledger, so a freed slot goes to the best waiting job of the
    group (priority, then age) rather than to whichever loop asks first."""
    try:
        return await _claim_loop(job_id, request, prepared)
    except Exception:
        await asyncio.to_thread(registry.stop_waiting, job_id)
        raise


async def _claim_loop(job_id: str, request: GenerationRequest, prepared: PreparedJob) -> NodeSnapshot:
    nodes_config = get_config().nodes
    group = request.node_group
    req = requirements_for(prepared.graph, request.task_type)
    exclude = await ledger.failed_nodes(job_id)
    settings = get_flow_settings()
    deadline = time.monotonic() + settings.slot_wait_s
    default_strategy = nodes_config.group(group).strategy  # claim_node applies the group's admin override
    with waiting_line(group, PRIORITY_RANK.get(request.priority, len(PRIORITY_RANK))) as waiter:
        while True:
            try:
                node = await asyncio.to_thread(
                    registry.claim_node, job_id, group, req, strategy=default_strategy, exclude=exclude,
                    waiter_stale_s=settings.waiter_stale_s,
                )
            except NoEligibleNode as exc:
                if not getattr(exc, "retryable", False):
                    raise NoNodeAvailable(_no_node_message(exc, exclude)) from exc
                if time.monotonic() > deadline:
                    raise NoNodeAvailable(f"no node of group {group!r} freed a slot in time") from exc
                if exc.free_in_group:
                    pass_on(waiter)  # slots this job cannot use (or may not take yet): the next job tries them
            else:
                pass_on(waiter)  # more slots may be free: the next job in line tries
                return node
            await wait_turn(waiter, settings.slot_poll_s, keep_alive_s=settings.waiter_stale_s / 2)


def _no_node_message(exc: NoEligibleNode, exclude: frozenset[str]) -> str:
    tried = f" (already failed on: {', '.join(sorted(exclude))})" if exclude else ""
    return f"no node can run this job{tried}: {exc}"


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


async def _attempt_failed(job_id: str, attempt_id: int, exc: BaseException) -> None:
    cancelled = isinstance(exc, asyncio.CancelledError)
    status = AttemptStatus.CANCELLED if cancelled else AttemptStatus.FAILED
    await ledger.finish_attempt(attempt_id, status, error=None if cancelled else f"{type(exc).__name__}: {exc}")
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


