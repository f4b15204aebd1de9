"""Jobs waiting for a node slot wake when a job of the same worker gives one back, not at the next poll."""

from __future__ import annotations

import asyncio

from flows.slots import release_signal, slot_released, wait_for_release


async def test_a_release_wakes_every_waiting_claim_at_once() -> None:
    loop = asyncio.get_running_loop()
    signal = release_signal()
    waiters = [asyncio.create_task(wait_for_release(signal, 30)) for _ in range(3)]
    await asyncio.sleep(0.01)
    started = loop.time()
    slot_released()
    await asyncio.wait_for(asyncio.gather(*waiters), 1)
    assert loop.time() - started < 0.5


async def test_a_release_between_a_failed_claim_and_the_wait_is_not_missed() -> None:
    signal = release_signal()  # taken before the claim is tried
    slot_released()  # the slot frees while the claim is being refused
    await asyncio.wait_for(wait_for_release(signal, 30), 1)
    assert not release_signal().is_set()  # the next claim waits for the next release


async def test_without_a_release_the_wait_ends_at_the_fallback_poll() -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    await wait_for_release(release_signal(), 0.05)
    assert 0.04 < loop.time() - started < 1
