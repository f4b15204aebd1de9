"""Prompts of ours left on a node the job moved away from (the node froze or was cut off, or the job was cancelled
meanwhile): taken off the node once it answers again, so whatever comes back never runs a job twice."""

from __future__ import annotations

import asyncio
import logging
import time

from sqlalchemy import select

from database.engine import session_scope
from database.enums import AttemptStatus, DatabaseName
from database.shared.models import JobAttempt
from workers.comfyui.client import ComfyUIClient
from workers.comfyui.errors import ComfyUIError
from workers.comfyui.models import QueueState

__all__ = ["stop_abandoned", "stop_when_back"]

log = logging.getLogger(__name__)


async def stop_abandoned(client: ComfyUIClient, queue: QueueState) -> None:
    """Stop prompts of ours the node still holds although their job left it (the node was frozen or cut off while
    the job moved on, or the job was cancelled meanwhile): whatever comes back must not run twice."""
    held = [item.prompt_id for item in [*queue.running, *queue.pending]]
    if not held:
        return
    abandoned = await asyncio.to_thread(_abandoned_prompts, held)
    for prompt_id in abandoned:
        log.warning("stopping prompt %s on %s: its job left that node", prompt_id, client.base_url)
        try:
            await client.stop(prompt_id)
        except ComfyUIError:
            return  # the probe itself says whether the node answers; the next round tries again


async def stop_when_back(base_url: str, prompt_id: str, *, within_s: float, every_s: float = 0.25) -> None:
    """A job left a node that stopped answering while it ran the job's prompt: as soon as the node answers again
    (a frozen process resumed, a link came back), take the prompt off it, unless the job came back to it (an
    attempt follows that prompt again). Gives up after `within_s`; the monitor's probes are the fallback."""
    deadline = time.monotonic() + within_s
    async with ComfyUIClient(base_url, timeout=max(every_s * 8, 2.0)) as client:
        while time.monotonic() < deadline:
            try:
                queue = await client.queue()
                held = queue.find(prompt_id) is not None
                abandoned = held and bool(await asyncio.to_thread(_abandoned_prompts, [prompt_id]))
                if abandoned:
                    log.warning("stopping prompt %s on %s: its job left that node", prompt_id, base_url)
                    await client.stop(prompt_id)
                return
            except ComfyUIError:
                await asyncio.sleep(every_s)


def _abandoned_prompts(prompt_ids: list[str]) -> list[str]:
    """Of these prompt ids, those the ledger knows whose attempts all ended (none is still following it)."""
    stmt = select(JobAttempt.prompt_id, JobAttempt.status).where(JobAttempt.prompt_id.in_(prompt_ids))
    with session_scope(DatabaseName.SHARED) as session:
        rows = list(session.execute(stmt))
    live = {prompt_id for prompt_id, status in rows if status == AttemptStatus.RUNNING}
    return sorted({prompt_id for prompt_id, _ in rows} - live)
