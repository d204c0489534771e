"""How long the tests wait. One factor, REALTIME_TEST_TIME_FACTOR, stretches every wait on a
slow machine; it never stretches a deadline the contract promises (those stay as written)."""

from __future__ import annotations

import asyncio
import inspect
import os
from collections.abc import Awaitable, Callable

TIME_FACTOR = float(os.environ.get("REALTIME_TEST_TIME_FACTOR", "1"))
POLL_INTERVAL = 0.02


async def eventually(
    condition: Callable[[], bool | Awaitable[bool]], what: str, *, within: float = 5.0
) -> None:
    """Wait until `condition()` holds, failing with `what` after `within` scaled seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within * TIME_FACTOR
    while not await _holds(condition):
        if loop.time() > deadline:
            raise AssertionError(f"not within {within * TIME_FACTOR:.1f} s: {what}")
        await asyncio.sleep(POLL_INTERVAL)


async def _holds(condition: Callable[[], bool | Awaitable[bool]]) -> bool:
    result = condition()
    return await result if inspect.isawaitable(result) else result


def bounded(seconds: float) -> asyncio.Timeout:
    """A scaled time limit for something that must not hang."""
    return asyncio.timeout(seconds * TIME_FACTOR)
