"""Wakes this process's jobs that wait for a node slot as soon as one of its jobs gives a slot back.

Waiting jobs used to re-try their claim every 0.2 s (transactions on two databases each time, for every waiting
job) and a freed slot stayed idle until the next try. Now a release here wakes them at once; slots freed by other
processes are found by the slower fallback poll (`COMFYWS_FLOW_SLOT_POLL_S`).
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref

_freed: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Event] = weakref.WeakKeyDictionary()


def release_signal() -> asyncio.Event:
    """The event the next release sets; take it before trying to claim, so a release in between is not missed."""
    loop = asyncio.get_running_loop()
    event = _freed.get(loop)
    if event is None:
        event = _freed[loop] = asyncio.Event()
    return event


def slot_released() -> None:
    """A job of this process left its node (finished, failed or moved on): wake every waiting claim."""
    event = _freed.pop(asyncio.get_running_loop(), None)
    if event is not None:
        event.set()


async def wait_for_release(signal: asyncio.Event, timeout: float) -> None:
    """Until a release sets `signal`, at most `timeout` seconds (the fallback poll)."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(signal.wait(), timeout)
