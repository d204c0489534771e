"""Turns: at most so many holders per key at once (a user's writes of upload chunks, say), the
others waiting their turn for a bounded time."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Hashable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from realtime.errors import Unavailable


@dataclass
class _Turns:
    free: asyncio.Semaphore
    holders: int = field(default=0)  # those holding or waiting for a turn


class Turns:
    def __init__(self, at_once: int, wait: float) -> None:
        self.at_once = at_once
        self.wait = wait
        self._keys: dict[Hashable, _Turns] = {}

    @asynccontextmanager
    async def turn(self, key: Hashable) -> AsyncIterator[None]:
        """Hold one of `key`'s turns while the block runs; Unavailable after `wait` seconds
        without one."""
        turns = self._keys.get(key)
        if turns is None:
            turns = self._keys[key] = _Turns(asyncio.Semaphore(self.at_once))
        turns.holders += 1
        try:
            try:
                async with asyncio.timeout(self.wait):
                    await turns.free.acquire()
            except TimeoutError:
                raise Unavailable(1, "too much at once, try again") from None
            try:
                yield
            finally:
                turns.free.release()
        finally:
            turns.holders -= 1
            if not turns.holders:
                del self._keys[key]
