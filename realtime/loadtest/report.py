"""The load test's figures: a table for people, JSON for scripts, and the progress line."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from realtime import codec
from realtime.loadtest.ledger import Ledger
from realtime.loadtest.options import Options
from realtime.loadtest.stats import percentile

QUANTILES = (("p50", 0.50), ("p90", 0.90), ("p99", 0.99), ("p999", 0.999))


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

    @property
    def tested(self) -> bool:
        """Sockets opened and messages went: a run where none did proves nothing."""
        return self.connections_opened > 0 and self.sent > 0

    @property
    def ok(self) -> bool:
        return self.tested and self.lost == 0 and self.duplicated == 0

    @classmethod
    def from_ledger(
        cls, ledger: Ledger, *, options: Options, sending_seconds: float
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
        )

    @property
    def verdict(self) -> str:
        if not self.tested:
            return "FAILED: nothing was tested (no socket opened, or no message sent)"
        return "ok" if self.ok else "FAILED: events lost or duplicated"

    def as_json(self, judged: Sequence[Any] = ()) -> dict[str, Any]:
        """The figures, `ok`, and each threshold judged (`thresholds`: text, measured, met)."""
        figures = asdict(self) | {"ok": self.ok}
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
        ]
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
