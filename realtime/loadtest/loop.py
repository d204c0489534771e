"""The load tester's event loop: uvloop where it is installed (with uvicorn's standard extras,
as the server has it), since the tester's CPU per event bounds the load one process makes."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

Result = TypeVar("Result")


def run(main: Coroutine[Any, Any, Result]) -> Result:
    """`asyncio.run(main)` on uvloop when there is one."""
    try:
        import uvloop
    except ImportError:  # not on every platform: the standard loop works, at more CPU
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)
