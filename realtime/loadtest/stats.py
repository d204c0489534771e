"""Figures drawn from measurements, shared by the load tester and the benchmarks."""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(ordered: Sequence[float], share: float, *, empty: float = 0.0) -> float:
    """The nearest-rank percentile of sorted values; `empty` when there are none."""
    if not ordered:
        return empty
    rank = max(1, math.ceil(share * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]
