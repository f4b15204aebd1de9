"""The lines (one per node group) of this process's jobs waiting for a node slot, woken one at a time.

Waiting jobs used to re-try their claim on a timer (transactions on two databases each time, for every waiting
job), and later all woke at every release: with eight jobs waiting, eight claims for one slot. Now a release here
wakes the first job in each line (priority, then how long it waited); a job whose claim got a slot, or saw slots it
could not use, passes the turn to the next one, so a chain stops at the first claim that found nothing free.
Slots freed by other processes are found by the fallback poll: every `COMFYWS_FLOW_SLOT_POLL_S` for the first job
in line, `BEHIND_POLL_FACTOR` times slower for the others (yet often enough that their waiting heartbeat in
the ledger stays fresh).
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import itertools
import time
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field

BEHIND_POLL_FACTOR = 5

_order = itertools.count()


@dataclass(order=True)
class Waiter:
    """One claim loop's place in its group's line; `woken` is set when it is its turn to try."""

    key: tuple[int, float, int]
    group: str = field(compare=False)
    woken: asyncio.Event = field(default_factory=asyncio.Event, compare=False)


_lines: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, list[Waiter]]] = weakref.WeakKeyDictionary()


def _line(group: str) -> list[Waiter]:
    return _lines.setdefault(asyncio.get_running_loop(), {}).setdefault(group, [])


@contextlib.contextmanager
def waiting_line(group: str, rank: int) -> Iterator[Waiter]:
    """Stand in the group's line (lower `rank` first, then first come) for as long as the claim loop runs."""
    waiter = Waiter((rank, time.monotonic(), next(_order)), group)
    line = _line(group)
    bisect.insort(line, waiter)
    try:
        yield waiter
    finally:
        line.remove(waiter)


def slot_released() -> None:
    """A job of this process left its node (finished, failed or moved on): the first job in each line tries."""
    for line in _lines.get(asyncio.get_running_loop(), {}).values():
        _wake_first(line)


def pass_on(waiter: Waiter) -> None:
    """`waiter` took a slot or saw free ones it could not use: the next job in line behind it tries too."""
    line = _line(waiter.group)
    _wake_first(line[bisect.bisect_right(line, waiter):])


def _wake_first(waiters: list[Waiter]) -> None:
    for other in waiters:
        if not other.woken.is_set():
            other.woken.set()
            return


async def wait_turn(waiter: Waiter, poll_s: float, *, keep_alive_s: float = float("inf")) -> None:
    """Until it is `waiter`'s turn, or its fallback poll is due (first in line: `poll_s`, others slower but at
    least every `keep_alive_s`: each try refreshes the job's waiting heartbeat, which must not go stale)."""
    line = _line(waiter.group)
    timeout = poll_s if line and line[0] is waiter else min(poll_s * BEHIND_POLL_FACTOR, keep_alive_s)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(waiter.woken.wait(), timeout)
    waiter.woken.clear()
