"""The load test's figures: a table for people, JSON for scripts, and the progress line."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from realtime import codec
from realtime.loadtest.ledger import Ledger
from realtime.loadtest.options import Options
from realtime.loadtest.stats import percentile
from realtime.loadtest.timeline import Timeline

QUANTILES = (("p50", 0.50), ("p90", 0.90), ("p99", 0.99), ("p999", 0.999))
BUSY_WARNING = 0.85  # of the load tester's cores, busy from the first send to the drain
BEHIND_WARNING = 0.9  # of the asked rate, sent


@dataclass(frozen=True)
class Report:
    """The outcome; `ok` when something was tested and nothing was lost or duplicated."""

    connections_opened: int
    connections_failed: int
    connect_errors: dict[str, int]
    reconnects: int
    resyncs: int
    sent: int
    send_failed: int
    send_errors: dict[str, int]
    expected: int
    delivered: int
    lost: int
    duplicated: int
    unexpected: int
    recipients_mismatched: int
    latency_ms: dict[str, float]
    sends_per_second: float
    rate_asked: float
    sending_seconds: float
    asked: dict[str, object]
    processes: int = 1
    tester_cpu_seconds: float = 0.0  # the load tester's own, from the first send to the drain
    tester_busy: float = 0.0  # of its processes' cores over that time, 0 to 1
    timeline: Timeline = field(default_factory=Timeline, repr=False)  # for the HTML report

    @property
    def tester_cpu_per_send_us(self) -> float:
        return round(self.tester_cpu_seconds / self.sent * 1e6, 1) if self.sent else 0.0

    @property
    def tester_cpu_per_delivery_us(self) -> float:
        return round(self.tester_cpu_seconds / self.delivered * 1e6, 1) if self.delivered else 0.0

    @property
    def tester_warning(self) -> str | None:
        """Why the figures may be the load tester's limits rather than the server's."""
        if self.tester_busy >= BUSY_WARNING:
            return (f"the load tester used {self.tester_busy:.0%} of its {self.processes} "
                    "core(s): it may be the bottleneck; give it --processes or a machine of "
                    "its own")
        if self.rate_asked and self.sends_per_second < BEHIND_WARNING * self.rate_asked:
            return (f"sent {self.sends_per_second:g}/s of the {self.rate_asked:g}/s asked: the "
                    "load tester or the server fell behind")
        return None

    @property
    def tested(self) -> bool:
        """Sockets opened and messages went: a run where none did proves nothing."""
        return self.connections_opened > 0 and self.sent > 0

    @property
    def ok(self) -> bool:
        return self.tested and self.lost == 0 and self.duplicated == 0

    @classmethod
    def from_ledger(
        cls, ledger: Ledger, *, options: Options, sending_seconds: float, processes: int = 1,
        tester_cpu: float = 0.0, tester_window: float = 0.0,
    ) -> Report:
        ordered = sorted(ledger.latencies)
        latency = {name: _ms(percentile(ordered, share)) for name, share in QUANTILES}
        latency["max"] = _ms(ordered[-1] if ordered else 0.0)
        return cls(
            connections_opened=ledger.connections_opened,
            connections_failed=ledger.connections_failed,
            connect_errors=dict(ledger.connect_errors),
            reconnects=ledger.reconnects,
            resyncs=ledger.resyncs,
            sent=ledger.sent,
            send_failed=ledger.send_failed,
            send_errors=dict(ledger.send_errors),
            expected=ledger.expected_events,
            delivered=ledger.delivered,
            lost=ledger.outstanding,
            duplicated=ledger.duplicated,
            unexpected=ledger.unexpected,
            recipients_mismatched=ledger.recipients_mismatched,
            latency_ms=latency,
            sends_per_second=round(ledger.sent / sending_seconds, 1) if sending_seconds else 0.0,
            rate_asked=options.rate_asked,
            sending_seconds=round(sending_seconds, 3),
            asked=options.asked(),
            processes=processes,
            tester_cpu_seconds=round(tester_cpu, 3),
            tester_busy=round(tester_cpu / (processes * tester_window), 3)
            if tester_window > 0 else 0.0,
            timeline=Timeline.from_ledger(ledger),
        )

    @property
    def verdict(self) -> str:
        if not self.tested:
            return "FAILED: nothing was tested (no socket opened, or no message sent)"
        return "ok" if self.ok else "FAILED: events lost or duplicated"

    def as_json(self, judged: Sequence[Any] = ()) -> dict[str, Any]:
        """The figures, `ok`, and each threshold judged (`thresholds`: text, measured, met)."""
        figures = {name: value for name, value in asdict(self).items() if name != "timeline"}
        figures |= {
            "ok": self.ok, "tester_cpu_per_send_us": self.tester_cpu_per_send_us,
            "tester_cpu_per_delivery_us": self.tester_cpu_per_delivery_us,
            "tester_warning": self.tester_warning,
        }
        if judged:
            figures["thresholds"] = [
                {"threshold": j.threshold.text, "measured": j.measured, "met": j.held}
                for j in judged
            ]
            figures["ok"] = self.ok and all(j.held for j in judged)
        return figures

    def write_json(self, path: Path, judged: Sequence[Any] = ()) -> None:
        path.write_bytes(codec.encode(self.as_json(judged)) + b"\n")

    def table(self) -> str:
        latency = self.latency_ms
        rows = [
            ("connections opened", f"{self.connections_opened:,}"),
            ("connections failed",
             f"{self.connections_failed:,}" + _reasons(self.connect_errors)),
            ("reconnections", f"{self.reconnects:,}"),
            ("messages sent", f"{self.sent:,}"),
            ("messages failed", f"{self.send_failed:,}" + _reasons(self.send_errors)),
            ("events expected", f"{self.expected:,}"),
            ("events delivered", f"{self.delivered:,}"),
            ("events lost", f"{self.lost:,}"),
            ("events duplicated", f"{self.duplicated:,}"),
            ("latency p50 / p90", f"{latency['p50']:.1f} / {latency['p90']:.1f} ms"),
            ("latency p99 / p99.9", f"{latency['p99']:.1f} / {latency['p999']:.1f} ms"),
            ("latency max", f"{latency['max']:.1f} ms"),
            ("sends per second", f"{self.sends_per_second:,.1f} (asked {self.rate_asked:g})"),
            ("load tester CPU", f"{self.tester_cpu_per_send_us:,.0f} µs per send, "
             f"{self.tester_cpu_per_delivery_us:,.0f} µs per delivery "
             f"({self.tester_busy:.0%} of {self.processes} core(s))"),
        ]
        if self.tester_warning:
            rows.append(("warning", self.tester_warning))
        if self.unexpected:
            rows.append(("events unexpected", f"{self.unexpected:,} (of failed sends)"))
        if self.resyncs:
            rows.append(("resyncs", f"{self.resyncs:,} (not replayed: counted as lost)"))
        if self.recipients_mismatched:
            rows.append(("recipient counts off", f"{self.recipients_mismatched:,} sends"))
        rows.append(("result", self.verdict))
        width = max(len(name) for name, _ in rows)
        return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def progress_line(elapsed: float, phase: str, ledger: Ledger, users: int) -> str:
    recent = sorted(ledger.take_recent())
    p99 = f"{_ms(percentile(recent, 0.99)):.1f} ms" if recent else "-"
    return (
        f"{elapsed:6.0f}s {phase:<9} sockets open {ledger.sockets_open}/{users}"
        f" (failed {ledger.connections_failed})  sent {ledger.sent}"
        f" (failed {ledger.send_failed})  delivered {ledger.delivered}/{ledger.expected_events}"
        f"  duplicated {ledger.duplicated}  p99 {p99}"
    )


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def _reasons(errors: dict[str, int]) -> str:
    if not errors:
        return ""
    shown = ", ".join(f"{reason}: {count}" for reason, count in sorted(errors.items()))
    return f" ({shown})"
