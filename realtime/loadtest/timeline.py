"""The run second by second: what the report's charts draw."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from realtime.loadtest.ledger import Ledger
from realtime.loadtest.stats import percentile


@dataclass(frozen=True)
class Timeline:
    """Per second from the first send (second 0 is [0, 1)): sends started, sends failed,
    deliveries, their latency percentiles (ms, of the deliveries that second; None without
    any), and the sockets open at the last look in that second (or the one before)."""

    seconds: list[int] = field(default_factory=list)
    sends: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    deliveries: list[int] = field(default_factory=list)
    p50_ms: list[float | None] = field(default_factory=list)
    p95_ms: list[float | None] = field(default_factory=list)
    p99_ms: list[float | None] = field(default_factory=list)
    sockets: list[int | None] = field(default_factory=list)

    @classmethod
    def from_ledger(cls, ledger: Ledger) -> Timeline:
        if not ledger.started:
            return cls()
        zero = min(ledger.started.values())
        sends: dict[int, int] = defaultdict(int)
        failed: dict[int, int] = defaultdict(int)
        for n, at in ledger.started.items():
            second = int(at - zero)
            sends[second] += 1
            failed[second] += n in ledger.failed
        latencies: dict[int, list[float]] = defaultdict(list)
        for at, latency in zip(ledger.delivered_at, ledger.latencies, strict=True):
            latencies[int(at - zero)].append(latency * 1000)
        sockets = {int(at - zero): count for at, count in ledger.socket_samples if at >= zero}
        last = max([*sends, *latencies, *sockets])
        seconds = list(range(last + 1))
        ordered = {second: sorted(values) for second, values in latencies.items()}

        def share(second: int, of: float) -> float | None:
            values = ordered.get(second)
            return round(percentile(values, of), 3) if values else None

        return cls(
            seconds=seconds,
            sends=[sends.get(s, 0) for s in seconds],
            failed=[failed.get(s, 0) for s in seconds],
            deliveries=[len(latencies.get(s, ())) for s in seconds],
            p50_ms=[share(s, 0.50) for s in seconds],
            p95_ms=[share(s, 0.95) for s in seconds],
            p99_ms=[share(s, 0.99) for s in seconds],
            sockets=_carried_forward([sockets.get(s) for s in seconds]),
        )


def _carried_forward(samples: list[int | None]) -> list[int | None]:
    """A second without a look keeps the last count seen (a look may fall in the next one)."""
    carried: list[int | None] = []
    last = None
    for sample in samples:
        last = sample if sample is not None else last
        carried.append(last)
    return carried
