"""The collector policy of `realtime serve`: survivors frozen, frozen cycles reclaimed later."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import weakref

from realtime.heap import keep_heap


class Node:
    """An object that can sit in a reference cycle and be watched through a weak reference."""

    def __init__(self) -> None:
        self.other: Node | None = None


def make_cycle() -> Node:
    first, second = Node(), Node()
    first.other, second.other = second, first
    return first


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def test_survivors_are_frozen_out_of_collections_until_the_policy_stops() -> None:
    """Objects alive at a freeze are skipped by collections (a dropped cycle survives them);
    when the policy stops, everything is collectable again."""
    upkeep = asyncio.create_task(keep_heap(freeze_interval=0.05, full_collection_interval=3600))
    try:
        cycle = make_cycle()
        watched = weakref.ref(cycle)
        await asyncio.sleep(0.2)  # the cycle lives through a freeze, then it is dropped
        assert gc.get_freeze_count() > 0
        del cycle
        gc.collect()
        assert watched() is not None, "a frozen cycle is out of the collector's sight"
    finally:
        await stop(upkeep)
    assert gc.get_freeze_count() == 0
    gc.collect()
    assert watched() is None


async def test_a_full_collection_reclaims_the_cycles_that_were_frozen() -> None:
    """The periodic full collection unfreezes and reclaims cycles that died while frozen."""
    upkeep = asyncio.create_task(keep_heap(freeze_interval=0.05, full_collection_interval=0.3))
    try:
        cycle = make_cycle()
        watched = weakref.ref(cycle)
        await asyncio.sleep(0.1)
        del cycle
        gc.collect()
        assert watched() is not None
        await asyncio.sleep(0.6)
        assert watched() is None
    finally:
        await stop(upkeep)
