"""Argon2id work (account passwords, links' passphrases) in threads of its own, a few at once:
each takes its memory (19 MiB) while it runs, so a burst costs the node a bounded amount of it,
and every wait for a turn is bounded."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, TypeVar

from realtime.errors import Unavailable

HASHING_AT_ONCE = 2
HASHING_WAIT = 10.0  # seconds a request may wait for a turn; past it, 503
_HASHERS = ThreadPoolExecutor(max_workers=HASHING_AT_ONCE, thread_name_prefix="realtime-hash")
T = TypeVar("T")


async def hashing(work: Callable[..., T], *args: Any) -> T:
    """Run `work(*args)` in a hashing thread, waiting at most HASHING_WAIT for one."""
    try:
        async with asyncio.timeout(HASHING_WAIT):
            return await asyncio.get_running_loop().run_in_executor(
                _HASHERS, partial(work, *args)
            )
    except TimeoutError:
        raise Unavailable(1, "too many passwords being checked at once, try again") from None
