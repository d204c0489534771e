"""What the load test expected, what arrived, when, and how often."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field


def percentile(ordered: Sequence[float], share: float) -> float:
    """The nearest-rank percentile of sorted values (0 for none)."""
    if not ordered:
        return 0.0
    rank = max(1, math.ceil(share * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass
class Ledger:
    """Sends by number, the sockets each should reach, and every `message.new` that came.

    A send is known by its number `n` (carried in its subject), a socket by its user's index.
    A frame may come before the send's answer names its recipients: both orders count.
    """

    started: dict[int, float] = field(default_factory=dict)  # n -> when the request went
    expected: dict[int, frozenset[int]] = field(default_factory=dict)  # n -> users
    arrived: dict[tuple[int, int], float] = field(default_factory=dict)  # (user, n) -> when
    latencies: list[float] = field(default_factory=list)  # seconds, one per delivery
    recent: list[float] = field(default_factory=list)  # latencies since the last progress line
    send_errors: Counter[str] = field(default_factory=Counter)
    connections_opened: int = 0
    connections_failed: int = 0
    reconnects: int = 0
    sent: int = 0
    expected_events: int = 0
    delivered: int = 0
    duplicated: int = 0
    recipients_mismatched: int = 0

    @property
    def send_failed(self) -> int:
        return sum(self.send_errors.values())

    @property
    def outstanding(self) -> int:
        return self.expected_events - self.delivered

    def sending(self, n: int, at: float) -> None:
        self.started[n] = at

    def send_failed_with(self, reason: str) -> None:
        self.send_errors[reason] += 1

    def expect(self, n: int, users: Iterable[int]) -> None:
        """The send `n` was committed: each of `users` should get its `message.new` once."""
        recipients = frozenset(users)
        self.sent += 1
        self.expected[n] = recipients
        self.expected_events += len(recipients)
        for user in recipients:
            at = self.arrived.get((user, n))
            if at is not None:
                self._delivered(n, at)

    def arrive(self, user: int, n: int, at: float) -> None:
        """A `message.new` of send `n` reached `user`'s socket at `at`."""
        if n not in self.started:
            return  # not a message of this run
        key = (user, n)
        if key in self.arrived:
            self.duplicated += 1
            return
        self.arrived[key] = at
        recipients = self.expected.get(n)
        if recipients is not None and user in recipients:
            self._delivered(n, at)

    def _delivered(self, n: int, at: float) -> None:
        self.delivered += 1
        latency = max(0.0, at - self.started[n])
        self.latencies.append(latency)
        self.recent.append(latency)

    def take_recent(self) -> list[float]:
        recent, self.recent = self.recent, []
        return recent

    def unexpected(self) -> int:
        """Frames for sends that failed, or for users the send did not name."""
        return sum(
            1 for (user, n) in self.arrived if user not in self.expected.get(n, frozenset())
        )
