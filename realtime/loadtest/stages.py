"""Staged rates: `30s:1000,2m:1000,30s:0` ramps the send rate as k6's stages ramp users.

Each stage moves the rate in a straight line from where the last one left it (0 before the
first) to its own target, over its duration. Send n is due when the number of sends the profile
allows so far reaches n: a steady rate R sends at 0, 1/R, 2/R..., a ramp from a to b sends
ever closer together.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

_STAGE = re.compile(r"\s*(\d+(?:\.\d+)?)(ms|s|m|h)?\s*:\s*(\d+(?:\.\d+)?)\s*")
_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


class StageError(ValueError):
    """Stages that do not parse, or that would send nothing."""


@dataclass(frozen=True)
class Stage:
    seconds: float
    rate: float  # sends a second at the end of the stage


def parse_stages(text: str) -> tuple[Stage, ...]:
    """`DURATION:RATE,...` (DURATION in s, m or h, seconds when bare)."""
    stages = []
    for part in text.split(","):
        match = _STAGE.fullmatch(part)
        if match is None:
            raise StageError(f"{part.strip()!r} is not a stage such as 30s:1000")
        seconds = float(match[1]) * _SECONDS[match[2]]
        if seconds <= 0:
            raise StageError(f"{part.strip()!r}: a stage lasts more than 0 s")
        stages.append(Stage(seconds, float(match[3])))
    if not any(stage.rate > 0 for stage in stages):
        raise StageError("every stage's rate is 0: nothing would be sent")
    return tuple(stages)


def steady(rate: float, seconds: float) -> tuple[float, tuple[Stage, ...]]:
    """A steady rate as a profile: the starting rate, and one stage."""
    return rate, (Stage(seconds, rate),)


def total_seconds(stages: Sequence[Stage]) -> float:
    return sum(stage.seconds for stage in stages)


def send_offsets(stages: Sequence[Stage], start_rate: float = 0.0) -> Iterator[float]:
    """When each send is due, in seconds from the start."""
    begins = 0.0  # the stage's start, in seconds
    allowed = 0.0  # sends the profile allowed before the stage
    number = 0  # the next send
    rate = start_rate
    for stage in stages:
        slope = (stage.rate - rate) / stage.seconds
        during = rate * stage.seconds + slope * stage.seconds ** 2 / 2
        while number < allowed + during - 1e-9:
            yield begins + _time_to_reach(number - allowed, rate, slope)
            number += 1
        begins += stage.seconds
        allowed += during
        rate = stage.rate


def _time_to_reach(sends: float, rate: float, slope: float) -> float:
    """The time within a stage at which `rate t + slope t² / 2` reaches `sends`."""
    if sends <= 0:
        return 0.0
    if abs(slope) < 1e-12:
        return sends / rate
    return (-rate + math.sqrt(max(0.0, rate * rate + 2 * slope * sends))) / slope
