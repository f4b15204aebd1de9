"""In-memory queue, history, fault switches and counters of the simulated node (a restart loses them all)."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, Field

MAX_HISTORY = 10000


@dataclass
class QueueItem:
    """One accepted prompt; `as_list()` is the `[number, id, graph, extra_data, outputs]` shape of /queue."""

    number: float
    prompt_id: str
    prompt: dict[str, Any]
    extra_data: dict[str, Any]
    outputs: list[str]

    def as_list(self) -> list[Any]:
        return [self.number, self.prompt_id, self.prompt, self.extra_data, self.outputs]

    @property
    def client_id(self) -> str | None:
        value = self.extra_data.get("client_id")
        return str(value) if value is not None else None


class PromptQueue:
    """A heap like ComfyUI's PromptQueue: lowest number first, one running item, pending shown unsorted."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, QueueItem]] = []
        self._order = itertools.count()
        self._ready = asyncio.Event()
        self.running: QueueItem | None = None
        self.history: dict[str, dict[str, Any]] = {}
        self._number = 0

    def next_number(self, *, front: bool) -> int:
        number = self._number
        self._number += 1
        return -number if front else number

    def put(self, item: QueueItem) -> None:
        heapq.heappush(self._heap, (item.number, next(self._order), item))
        self._ready.set()

    async def get(self) -> QueueItem:
        while not self._heap:
            self._ready.clear()
            await self._ready.wait()
        _, _, item = heapq.heappop(self._heap)
        self.running = item
        return item

    def task_done(self, item: QueueItem, entry: dict[str, Any]) -> None:
        self.running = None
        self.history.pop(item.prompt_id, None)
        self.history[item.prompt_id] = entry
        while len(self.history) > MAX_HISTORY:
            self.history.pop(next(iter(self.history)))

    def pending(self) -> list[QueueItem]:
        return [item for _, _, item in self._heap]

    def remaining(self) -> int:
        return len(self._heap) + (1 if self.running else 0)

    def delete(self, prompt_ids: list[str]) -> int:
        keep = [entry for entry in self._heap if entry[2].prompt_id not in set(prompt_ids)]
        removed = len(self._heap) - len(keep)
        self._heap = keep
        heapq.heapify(self._heap)
        return removed

    def clear(self) -> None:
        self._heap = []

    def history_page(self, *, max_items: int | None, offset: int) -> dict[str, Any]:
        """ComfyUI's get_history: without an offset, the newest `max_items` entries, oldest first."""
        if offset < 0 and max_items is not None:
            offset = len(self.history) - max_items
        page: dict[str, Any] = {}
        for index, key in enumerate(self.history):
            if index >= offset:
                page[key] = self.history[key]
                if max_items is not None and len(page) >= max_items:
                    break
        return page


class ControlRequest(BaseModel):
    """Body of POST /sim/control: any subset of the fault switches."""

    step_delay: float | None = Field(None, ge=0, description="Seconds per sampler step")
    fail_next: int | None = Field(None, ge=0, description="Next N prompts fail mid-run")
    hang_next: int | None = Field(None, ge=0, description="Next N prompts stall until interrupted")
    drop_socket_next: int | None = Field(None, ge=0, description="Next N prompts drop all sockets mid-run")
    reject_all: bool | None = Field(None, description="Every POST /prompt answers 400")
    die_after_steps: int | None = Field(None, ge=0, description="Exit hard after N more sampler steps")
    fail_rate: float | None = Field(None, ge=0, le=1, description="Probability that a prompt fails mid-run")
    node_delay: float | None = Field(None, ge=0, description="Seconds every node without sampler steps takes")


@dataclass
class Faults:
    """Current fault switches; the executor consumes the one-shot counters."""

    step_delay: float = 0.05
    fail_next: int = 0
    hang_next: int = 0
    drop_socket_next: int = 0
    reject_all: bool = False
    die_after_steps: int | None = None
    fail_rate: float = 0.0
    node_delay: float = 0.0

    def apply(self, request: ControlRequest) -> None:
        for key, value in request.model_dump(exclude_unset=True).items():
            setattr(self, key, value)

    def take(self, name: str) -> bool:
        """Consume one unit of a one-shot counter such as `fail_next`."""
        left = getattr(self, name)
        if left > 0:
            setattr(self, name, left - 1)
            return True
        return False

    def roll_failure(self) -> bool:
        return self.take("fail_next") or (self.fail_rate > 0 and random.random() < self.fail_rate)

    def snapshot(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class Counters:
    """What tests read through GET /sim/state to prove nothing ran twice."""

    prompts_received: int = 0
    prompts_accepted: int = 0
    prompts_rejected: int = 0
    executed: int = 0
    succeeded: int = 0
    failed: int = 0
    interrupted: int = 0
    steps: int = 0
    executions: Counter[str] = field(default_factory=Counter)
