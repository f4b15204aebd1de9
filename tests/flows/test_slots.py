"""The lines of claims waiting for a slot: one release wakes one claim per group, best first; turns pass down
the line."""

from __future__ import annotations

import asyncio

from flows.slots import pass_on, slot_released, wait_turn, waiting_line


async def _turn(waiter, poll_s: float = 30, keep_alive_s: float = 60) -> str:  # type: ignore[no-untyped-def]
    await wait_turn(waiter, poll_s, keep_alive_s=keep_alive_s)
    return "woken"


async def test_a_release_wakes_only_the_first_claim_in_line_and_turns_pass_on() -> None:
    with waiting_line("g", 1) as normal, waiting_line("g", 2) as low, waiting_line("g", 0) as high, \
            waiting_line("other", 1) as elsewhere:
        turns = {name: asyncio.create_task(_turn(w)) for name, w in
                 (("normal", normal), ("low", low), ("high", high))}
        await asyncio.sleep(0.01)
        slot_released()
        await asyncio.sleep(0.01)
        assert [name for name, t in turns.items() if t.done()] == ["high"]  # priority first, whatever the age
        assert elsewhere.woken.is_set()  # and the first of every other group's line
        pass_on(high)  # it got a slot (or saw ones it could not use): the next one tries
        await asyncio.sleep(0.01)
        assert [name for name, t in turns.items() if t.done()] == ["normal", "high"]
        pass_on(normal)
        await asyncio.wait_for(turns["low"], 1)


async def test_a_release_during_a_claim_is_not_lost() -> None:
    with waiting_line("g", 1) as waiter:
        slot_released()  # the slot frees while the claim is being refused
        await asyncio.wait_for(wait_turn(waiter, 30), 1)
        assert not waiter.woken.is_set()  # the next try waits for the next release


async def test_without_a_release_the_first_in_line_polls_sooner_than_those_behind() -> None:
    with waiting_line("g", 1) as first, waiting_line("g", 1) as second:
        head = asyncio.create_task(_turn(first, 0.05))
        behind = asyncio.create_task(_turn(second, 0.05))
        await asyncio.wait_for(head, 1)
        assert not behind.done()  # it polls 5 times less often
        await asyncio.wait_for(behind, 1)


async def test_those_behind_still_try_often_enough_to_keep_their_waiting_heartbeat_fresh() -> None:
    with waiting_line("g", 1), waiting_line("g", 1) as second:
        started = asyncio.get_running_loop().time()
        await asyncio.wait_for(_turn(second, poll_s=1.0, keep_alive_s=0.1), 1)  # not 5 x 1 s
        assert asyncio.get_running_loop().time() - started < 0.5
