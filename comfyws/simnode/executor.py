"""Runs queued prompts one at a time and emits the message sequence a real ComfyUI node emits."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from comfyws.simnode import media
from comfyws.simnode.catalog import NodeCatalog
from comfyws.simnode.config import PreviewMethod
from comfyws.simnode.graph import ExecutionList, Graph, describe, signatures, work_seconds
from comfyws.simnode.hub import Client, Hub
from comfyws.simnode.outputs import write_outputs
from comfyws.simnode.state import Counters, Faults, PromptQueue, QueueItem

logger = logging.getLogger(__name__)

# Only these step (send `progress`, and preview frames when previews are on); other nodes just run, as on a
# real node, where only sampling reports progress.
SAMPLERS = {"KSampler", "KSamplerAdvanced", "SamplerCustom", "SamplerCustomAdvanced"}
DEFAULT_STEPS = 10
HANG_AFTER_STEPS = 2
CRASH_EXIT_CODE = 17


class Interrupted(Exception):
    def __init__(self, node_id: str) -> None:
        super().__init__(node_id)
        self.node_id = node_id


class NodeFailed(Exception):
    def __init__(self, node_id: str, cause: BaseException) -> None:
        super().__init__(node_id)
        self.node_id = node_id
        self.cause = cause


class SimulatedFailure(RuntimeError):
    """Raised inside a sampler when a failure was injected (fail_next / fail_rate)."""


@dataclass
class FaultPlan:
    """Faults decided for one run, all acting inside its stepping node."""

    fail: bool = False
    hang: bool = False
    drop_socket: bool = False


@dataclass
class Run:
    """Bookkeeping of one prompt execution: what the history entry will hold."""

    item: QueueItem
    messages: list[list[Any]] = field(default_factory=list)
    progress: dict[str, dict[str, Any]] = field(default_factory=dict)
    executed: list[str] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def prompt_id(self) -> str:
        return self.item.prompt_id

    @property
    def sid(self) -> str | None:
        return self.item.client_id

    @property
    def graph(self) -> Graph:
        return self.item.prompt


class Executor:
    """The prompt worker: one prompt at a time, ComfyUI's classic cache of the last prompt's node outputs.

    The cache is keyed by a node's input signature (its class, widget values and upstream signatures), not by
    its id, so a renumbered graph still hits it; each prompt keeps only the entries it can use.
    """

    def __init__(
        self, *, catalog: NodeCatalog, storage: Any, hub: Hub, queue: PromptQueue, faults: Faults, counters: Counters,
        preview_method: PreviewMethod = PreviewMethod.NONE,
    ) -> None:
        self._catalog = catalog
        self._storage = storage
        self._hub = hub
        self._queue = queue
        self._faults = faults
        self._counters = counters
        self._previews = preview_method != PreviewMethod.NONE
        self._cache: dict[str, dict[str, Any]] = {}
        self._free_after_run = False
        self._interrupt = asyncio.Event()

    async def serve(self) -> None:
        while True:
            item = await self._queue.get()
            await self.send_status()
            try:
                await self.execute(item)
            except Exception:  # the worker must survive any bug in one run
                logger.exception("simnode: run %s crashed", item.prompt_id)
                self._queue.running = None

    def free_memory(self) -> None:
        """POST /free {"free_memory": true}: drop every cached output (after the running prompt, as ComfyUI does)."""
        if self._queue.running is None:
            self._cache.clear()
        else:
            self._free_after_run = True

    def interrupt(self, prompt_id: str | None) -> None:
        running = self._queue.running
        if running is not None and prompt_id in (None, running.prompt_id):
            self._interrupt.set()

    async def send_status(self) -> None:
        await self._hub.send("status", {"status": {"exec_info": {"queue_remaining": self._queue.remaining()}}}, None)

    async def execute(self, item: QueueItem) -> None:
        run = Run(item)
        self._counters.executions[item.prompt_id] += 1
        self._interrupt.clear()
        keys = signatures(run.graph, file_digest=self._file_digest)
        wanted = set(keys.values())
        self._cache = {key: ui for key, ui in self._cache.items() if key in wanted}
        cached = {n for n in run.graph if keys[n] in self._cache}
        await self._message(run, "execution_start", {"prompt_id": run.prompt_id})
        await self._message(run, "execution_cached", {"nodes": [n for n in run.graph if n in cached],
                                                      "prompt_id": run.prompt_id})
        plan = ExecutionList(run.graph, is_output=self._catalog.is_output, cached=cached)
        for output in item.outputs:
            plan.add_node(output)
        stepping = self._stepping_nodes(run.graph, [n for n in plan.pending if n not in cached])
        faults = self._plan_faults(bool(stepping))
        outcome = await self._walk(run, plan, keys, cached, stepping, faults)
        await self._finish(run, outcome)

    async def _walk(
        self, run: Run, plan: ExecutionList, keys: dict[str, str], cached: set[str],
        stepping: dict[str, int], faults: FaultPlan,
    ) -> str:
        try:
            while (node_id := plan.next()) is not None:
                if node_id in cached:
                    await self._replay(run, node_id, keys[node_id])
                else:
                    await self._run_node(run, node_id, keys[node_id], stepping.get(node_id), faults)
                plan.done(node_id)
        except Interrupted as stop:
            await self._interrupted(run, stop.node_id)
            return "interrupted"
        except NodeFailed as failure:
            await self._failed(run, failure)
            return "error"
        return "success"

    def _stepping_nodes(self, graph: Graph, to_run: list[str]) -> dict[str, int]:
        """Samplers step `steps` times; a graph without one sends no progress at all, like a real node."""
        return {n: self._steps_of(graph[n]) for n in to_run if graph[n]["class_type"] in SAMPLERS}

    @staticmethod
    def _steps_of(node: dict[str, Any]) -> int:
        steps = node.get("inputs", {}).get("steps")
        return steps if isinstance(steps, int) and steps > 0 else DEFAULT_STEPS

    def _plan_faults(self, has_steps: bool) -> FaultPlan:
        if not has_steps:
            return FaultPlan()
        return FaultPlan(fail=self._faults.roll_failure(), hang=self._faults.take("hang_next"),
                         drop_socket=self._faults.take("drop_socket_next"))

    async def _replay(self, run: Run, node_id: str, key: str) -> None:
        """A cached output node only replays its `executed` message, then reports itself finished at 1/1."""
        ui = self._cache[key]
        if ui:
            self._record_output(run, node_id, ui)
            await self._to_client(run, "executed", {"node": node_id, "display_node": node_id, "output": ui,
                                                    "prompt_id": run.prompt_id})
        await self._progress(run, node_id, state="finished", done=1)

    async def _run_node(self, run: Run, node_id: str, key: str, steps: int | None, faults: FaultPlan) -> None:
        await self._progress(run, node_id, state="running")
        await self._to_client(run, "executing", {"node": node_id, "display_node": node_id,
                                                 "prompt_id": run.prompt_id})
        # A real node announces the next node, then finds the interrupt flag when that node starts.
        if self._interrupt.is_set():
            raise Interrupted(node_id)
        try:
            if steps:
                await self._steps(run, node_id, steps, faults)
            else:
                await asyncio.sleep(self._faults.node_delay + work_seconds(run.graph, node_id))
            ui = await self._work(run.graph, node_id)
        except Interrupted:
            raise
        except Exception as ex:
            raise NodeFailed(node_id, ex) from ex
        self._cache[key] = ui
        run.executed.append(node_id)
        if ui:
            self._record_output(run, node_id, ui)
            await self._to_client(run, "executed", {"node": node_id, "display_node": node_id, "output": ui,
                                                    "prompt_id": run.prompt_id})
        # A sampler keeps its step count as its final value and max (integers); other nodes finish at 1.0/1.0.
        await self._progress(run, node_id, state="finished", done=steps)

    async def _steps(self, run: Run, node_id: str, total: int, faults: FaultPlan) -> None:
        middle = max(1, total // 2)
        for step in range(1, total + 1):
            await asyncio.sleep(self._faults.step_delay)
            if self._interrupt.is_set():
                raise Interrupted(node_id)
            await self._emit_step(run, node_id, step, total)
            self._count_step()
            if faults.hang and step >= min(HANG_AFTER_STEPS, total):
                await self._interrupt.wait()
                raise Interrupted(node_id)
            if faults.drop_socket and step == middle:
                faults.drop_socket = False
                await self._hub.close_all()
            if faults.fail and step == middle:
                raise SimulatedFailure(f"Simulated failure injected at step {step}/{total}")

    def _count_step(self) -> None:
        self._counters.steps += 1
        left = self._faults.die_after_steps
        if left is None:
            return
        self._faults.die_after_steps = left - 1
        if left - 1 <= 0:
            logger.critical("simnode: die_after_steps reached, exiting hard")
            logging.shutdown()
            os._exit(CRASH_EXIT_CODE)

    async def _emit_step(self, run: Run, node_id: str, step: int, total: int) -> None:
        self._set_progress(run, node_id, state="running", value=step, maximum=total)
        state = json.dumps({"type": "progress_state", "data": {"prompt_id": run.prompt_id, "nodes": run.progress}})
        progress = json.dumps({"type": "progress", "data": {"value": step, "max": total,
                                                            "prompt_id": run.prompt_id, "node": node_id}})
        jpeg = media.preview_jpeg(step, total) if self._previews else None
        for client in self._hub.targets(run.sid):
            await self._send_step(client, state, progress, jpeg, run.prompt_id, node_id)

    async def _send_step(self, client: Client, state: str, progress: str, jpeg: bytes | None, prompt_id: str,
                         node_id: str) -> None:
        # Recorded order: a type-4 preview precedes its `progress`, a legacy type-1 preview follows it; a node
        # started without a preview method sends none.
        await self._hub.send_text(client, state)
        if jpeg is None:
            await self._hub.send_text(client, progress)
        elif client.preview_metadata:
            metadata = {"node_id": node_id, "prompt_id": prompt_id, "display_node_id": node_id,
                        "parent_node_id": None, "real_node_id": node_id, "image_type": "image/jpeg"}
            await self._hub.send_bytes(client, media.preview_frame(jpeg, metadata))
            await self._hub.send_text(client, progress)
        else:
            await self._hub.send_text(client, progress)
            await self._hub.send_bytes(client, media.preview_frame(jpeg, None))

    async def _work(self, graph: Graph, node_id: str) -> dict[str, Any]:
        node = graph[node_id]
        class_type = node["class_type"]
        if class_type == "LoadImage":
            await asyncio.to_thread(self._load_image, str(node["inputs"]["image"]))
        if not self._catalog.is_output(class_type):
            return {}
        shape = describe(graph, node_id, image_size=self._image_size)
        return await asyncio.to_thread(write_outputs, self._storage, class_type, node.get("inputs", {}), shape)

    def _load_image(self, name: str) -> None:
        with Image.open(self._storage.input_path(name)) as image:
            image.load()

    def _image_size(self, graph: Graph, node_id: str) -> tuple[int, int] | None:
        node = graph[node_id]
        if node["class_type"] != "LoadImage":
            return None
        try:
            with Image.open(self._storage.input_path(str(node["inputs"]["image"]))) as image:
                return image.size
        except (OSError, ValueError):
            return None

    def _file_digest(self, graph: Graph, node_id: str) -> str:
        node = graph[node_id]
        if node["class_type"] != "LoadImage":
            return ""
        try:
            return hashlib.sha256(self._storage.input_path(str(node["inputs"]["image"])).read_bytes()).hexdigest()
        except OSError:
            return ""

    def _record_output(self, run: Run, node_id: str, ui: dict[str, Any]) -> None:
        run.outputs[node_id] = ui
        run.meta[node_id] = {"node_id": node_id, "display_node": node_id, "parent_node": None,
                             "real_node_id": node_id}

    def _set_progress(self, run: Run, node_id: str, *, state: str, value: float, maximum: float) -> None:
        # int or float as a real node sends them: clients see the difference in the JSON.
        run.progress[node_id] = {"value": value, "max": maximum, "state": state, "node_id": node_id,
                                 "prompt_id": run.prompt_id, "display_node_id": node_id, "parent_node_id": None,
                                 "real_node_id": node_id}

    async def _progress(self, run: Run, node_id: str, *, state: str, done: int | None = None) -> None:
        """A node starts at 0.0/1.0 and finishes at 1.0/1.0, or at `done`/`done` (integers) when given."""
        if done:
            self._set_progress(run, node_id, state=state, value=done, maximum=done)
        else:
            finished = state == "finished"
            self._set_progress(run, node_id, state=state, value=1.0 if finished else 0.0, maximum=1.0)
        await self._hub.send("progress_state", {"prompt_id": run.prompt_id, "nodes": run.progress}, run.sid)

    async def _to_client(self, run: Run, event: str, data: dict[str, Any]) -> None:
        # Like a real node, per-prompt events go nowhere when the prompt has no client_id.
        if run.sid is not None:
            await self._hub.send(event, data, run.sid)

    async def _message(self, run: Run, event: str, data: dict[str, Any], *, broadcast: bool = False) -> None:
        data = {**data, "timestamp": int(time.time() * 1000)}
        run.messages.append([event, data])
        if run.sid is not None or broadcast:
            await self._hub.send(event, data, run.sid)

    async def _interrupted(self, run: Run, node_id: str) -> None:
        self._counters.interrupted += 1
        await self._message(run, "execution_interrupted", {
            "prompt_id": run.prompt_id, "node_id": node_id, "node_type": run.graph[node_id]["class_type"],
            "executed": list(run.executed)}, broadcast=True)

    async def _failed(self, run: Run, failure: NodeFailed) -> None:
        self._counters.failed += 1
        cause = failure.cause
        node = run.graph[failure.node_id]
        inputs = {k: [v] for k, v in node.get("inputs", {}).items() if not isinstance(v, list)}
        module = type(cause).__module__
        name = type(cause).__qualname__ if module in ("builtins", __name__) else f"{module}.{type(cause).__qualname__}"
        await self._message(run, "execution_error", {
            "prompt_id": run.prompt_id, "node_id": failure.node_id, "node_type": node["class_type"],
            "executed": list(run.executed), "exception_message": f"{cause}\n", "exception_type": name,
            "traceback": traceback.format_tb(cause.__traceback__), "current_inputs": inputs,
            "current_outputs": list(run.graph)})
        logger.warning("simnode: prompt %s failed in node %s: %s", run.prompt_id, failure.node_id, cause)

    async def _finish(self, run: Run, outcome: str) -> None:
        if outcome == "success":
            self._counters.succeeded += 1
            await self._message(run, "execution_success", {"prompt_id": run.prompt_id})
        self._counters.executed += 1
        status = {"status_str": "success" if outcome == "success" else "error",
                  "completed": outcome == "success", "messages": run.messages}
        entry = {"prompt": run.item.as_list(), "outputs": run.outputs, "status": status, "meta": run.meta}
        self._queue.task_done(run.item, entry)
        if self._free_after_run:
            self._free_after_run = False
            self._cache.clear()
        await self.send_status()
        await self._to_client(run, "executing", {"node": None, "prompt_id": run.prompt_id})
        logger.info("simnode: prompt %s finished: %s", run.prompt_id, outcome)
