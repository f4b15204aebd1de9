"""What a running job tells the outside: progress and previews to its owner, progress into the ledger."""

from __future__ import annotations

import base64
import time
from typing import Any

from flows import ledger
from flows.settings import get_flow_settings
from workers.comfyui.events import Event, Executing, ExecutionCached, Preview, Progress
from workers.progress import get_publisher


async def publish(job_id: str, client_id: str, event_type: str, **data: Any) -> None:
    """Send one event to the job's owner; a lost progress event must never fail the job."""
    event = {"type": event_type, "task_id": job_id, "client_id": client_id, **data}
    await get_publisher().publish(event)


class ProgressReporter:
    """Turns node events of one attempt into owner events and throttled ledger writes."""

    def __init__(self, job_id: str, client_id: str, *, node_id: str) -> None:
        self.job_id = job_id
        self.client_id = client_id
        self.node_id = node_id
        self._last_write = 0.0
        self._interval = get_flow_settings().progress_write_interval_s

    async def __call__(self, event: Event) -> None:
        if isinstance(event, Progress):
            await self._progress(event)
        elif isinstance(event, Preview):
            image = base64.b64encode(event.image).decode("ascii")
            await publish(
                self.job_id, self.client_id, "preview", image=f"data:image/{event.image_format};base64,{image}"
            )
        elif isinstance(event, Executing) and event.node is not None:
            await publish(self.job_id, self.client_id, "executing", node=event.node)
        elif isinstance(event, ExecutionCached) and event.nodes:
            await publish(self.job_id, self.client_id, "cached", nodes=list(event.nodes))

    async def _progress(self, event: Progress) -> None:
        total = max(event.max, 1)
        await publish(
            self.job_id,
            self.client_id,
            "progress",
            step=event.value,
            total=total,
            progress=round(event.value / total, 4),
            node_id=self.node_id,
        )
        now = time.monotonic()
        if now - self._last_write >= self._interval or event.value >= total:
            self._last_write = now
            await ledger.update_progress(self.job_id, step=event.value, total=total)
