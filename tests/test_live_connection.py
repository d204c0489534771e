"""A socket's write run at once: finished in the fan-out's own step when the transport takes it,
carried on by a writer when it has to wait, with its errors and cancellation where a task's
would go."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

import pytest

from realtime.live.connection import run_eagerly


async def test_a_write_that_never_waits_is_done_before_run_eagerly_returns() -> None:
    """A write the transport takes at once is finished when run_eagerly returns: nothing is
    left to await, and no task was made for it."""
    written: list[str] = []

    async def write(frame: str) -> None:
        written.append(frame)

    tasks_before = len(asyncio.all_tasks())
    assert run_eagerly(write("a")) is None
    assert written == ["a"]
    assert len(asyncio.all_tasks()) == tasks_before


async def test_a_write_that_waits_goes_on_where_it_stopped_when_awaited() -> None:
    """A write that has to wait (the transport pushing back) has begun, stops at its wait, and
    goes on to its end, in order, once awaited and the wait is over."""
    steps: list[str] = []
    writable = asyncio.Event()

    async def write(frame: str) -> None:
        steps.append(f"begin {frame}")
        await writable.wait()
        steps.append(f"end {frame}")
        await asyncio.sleep(0)  # a later wait goes through the awaiting task too
        steps.append(f"after {frame}")

    rest = run_eagerly(write("b"))
    assert rest is not None and steps == ["begin b"]
    finishing = asyncio.ensure_future(_await(rest))
    await asyncio.sleep(0.01)
    assert steps == ["begin b"] and not finishing.done()
    writable.set()
    await asyncio.wait_for(finishing, 1)
    assert steps == ["begin b", "end b", "after b"]


async def test_a_write_that_fails_raises_at_once_or_where_it_is_awaited() -> None:
    """A write that fails in its first step raises from run_eagerly; one that fails after a wait
    raises where it is awaited."""
    async def broken_at_once(frame: str) -> None:
        raise ConnectionResetError("the client went away")

    with pytest.raises(ConnectionResetError):
        run_eagerly(broken_at_once("c"))

    async def broken_later(frame: str) -> None:
        await asyncio.sleep(0.01)
        raise ConnectionResetError("the client went away")

    rest = run_eagerly(broken_later("d"))
    assert rest is not None
    with pytest.raises(ConnectionResetError):
        await _await(rest)


async def test_cancelling_the_task_finishing_a_write_cancels_the_write_itself() -> None:
    """Cancelling the writer that awaits an unfinished write reaches the write at its wait: its
    clean-up runs, and the writer ends cancelled."""
    cleaned = asyncio.Event()

    async def write(frame: str) -> None:
        try:
            await asyncio.Event().wait()  # a transport that never drains
        finally:
            cleaned.set()

    rest = run_eagerly(write("e"))
    assert rest is not None
    finishing = asyncio.ensure_future(_await(rest))
    await asyncio.sleep(0.01)
    finishing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await finishing
    assert cleaned.is_set()


async def _await(rest: Awaitable[None]) -> None:
    await rest
