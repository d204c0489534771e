"""Thresholds that pass or fail a load test run, as in CI: `p99<100ms`, `lost==0`."""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from realtime.loadtest.report import Report

# The figures a threshold may name: the latency percentiles (in milliseconds; `ms` or `s` may
# follow the value) and the counts and rates of the report.
LATENCIES = ("p50", "p90", "p99", "p999", "max")
COUNTS = (
    "lost", "duplicated", "unexpected", "send_failed", "connections_failed", "reconnects",
    "resyncs", "recipients_mismatched", "sent", "delivered", "connections_opened",
    "sends_per_second",
)
_OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le, ">=": operator.ge, "==": operator.eq, "!=": operator.ne,
    "<": operator.lt, ">": operator.gt,
}
_FORM = re.compile(
    r"\s*(?P<figure>[a-z_0-9]+)\s*(?P<op><=|>=|==|!=|<|>)\s*"
    r"(?P<value>\d+(?:\.\d+)?)\s*(?P<unit>ms|s)?\s*"
)


class ThresholdError(ValueError):
    """A threshold that does not parse: what was wrong with it."""


@dataclass(frozen=True)
class Threshold:
    text: str
    figure: str
    op: str
    value: float  # in milliseconds for a latency

    @classmethod
    def parse(cls, text: str) -> Threshold:
        match = _FORM.fullmatch(text)
        if match is None:
            raise ThresholdError(
                f"{text!r} is not a threshold such as p99<100ms or lost==0"
            )
        figure, unit = match["figure"], match["unit"]
        if figure not in LATENCIES and figure not in COUNTS:
            raise ThresholdError(
                f"{text!r}: {figure} is none of {', '.join(LATENCIES + COUNTS)}"
            )
        value = float(match["value"])
        if figure in LATENCIES:
            value *= 1000 if unit == "s" else 1
        elif unit is not None:
            raise ThresholdError(f"{text!r}: {figure} is a count, without a unit")
        return cls(text.strip(), figure, match["op"], value)

    def measured(self, report: Report) -> float:
        if self.figure in LATENCIES:
            return float(report.latency_ms[self.figure])
        return float(getattr(report, self.figure))

    def holds(self, report: Report) -> bool:
        return _OPERATORS[self.op](self.measured(report), self.value)


@dataclass(frozen=True)
class Judged:
    threshold: Threshold
    measured: float
    held: bool


def judge(thresholds: Sequence[Threshold], report: Report) -> list[Judged]:
    return [Judged(t, t.measured(report), t.holds(report)) for t in thresholds]


def judged_lines(judged: Sequence[Judged]) -> str:
    """One line a threshold: met or MISSED, with the figure measured."""
    return "\n".join(
        f"  [{'met' if j.held else 'MISSED'}] {j.threshold.text}"
        f" (measured {j.measured:g}{' ms' if j.threshold.figure in LATENCIES else ''})"
        for j in judged
    )
