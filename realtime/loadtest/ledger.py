"""What the load test expected, what arrived, when, and how often."""

from __future__ import annotations

from array import array
from collections import Counter
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Addressed:
    """Whom a send named: a user, or a group's members (a set shared by all its sends)."""

    users: frozenset[int]
    sender: int

    def names(self, user: int) -> bool:
        return user != self.sender and user in self.users


@dataclass
class Ledger:
    """Sends by number, the sockets still owed each one, and every `message.new` that came.

    A send is known by its number `n` (carried in its subject), a socket by its user's index.
    A frame may come before the send's answer names its recipients: both orders count. What is
    kept per delivery is one float (its latency); a send's owed set goes once it is complete.
    """

    online: frozenset[int] = frozenset()  # users whose socket opened: only they can receive
    started: dict[int, float] = field(default_factory=dict)  # n -> when the request went
    addressed: dict[int, Addressed] = field(default_factory=dict)  # answered sends
    owed: dict[int, set[int]] = field(default_factory=dict)  # n -> users still waited for
    early: dict[int, dict[int, float]] = field(default_factory=dict)  # before the answer
    failed: set[int] = field(default_factory=set)
    latencies: array[float] = field(default_factory=lambda: array("d"))  # one per delivery
    delivered_at: array[float] = field(default_factory=lambda: array("d"))  # the same order
    socket_samples: list[tuple[float, int]] = field(default_factory=list)  # when, how many
    recent: list[float] = field(default_factory=list)  # since the last progress line
    send_errors: Counter[str] = field(default_factory=Counter)
    connect_errors: Counter[str] = field(default_factory=Counter)
    connections_opened: int = 0
    connections_failed: int = 0
    sockets_open: int = 0
    reconnects: int = 0
    resyncs: int = 0
    sent: int = 0
    expected_events: int = 0
    delivered: int = 0
    duplicated: int = 0
    unexpected: int = 0
    recipients_mismatched: int = 0

    @property
    def send_failed(self) -> int:
        return sum(self.send_errors.values())

    @property
    def outstanding(self) -> int:
        return self.expected_events - self.delivered

    def sending(self, n: int, at: float) -> None:
        self.started[n] = at

    def send_failed_with(self, n: int, reason: str) -> None:
        """The send `n` got no 201: a frame of it, should one come, was not expected."""
        self.send_errors[reason] += 1
        self.failed.add(n)
        self.unexpected += len(self.early.pop(n, ()))

    def expect(self, n: int, addressed: Addressed) -> int:
        """The send `n` was committed: each user it names with an open socket should get its
        `message.new` once. Return how many recipients it named, online or not."""
        self.sent += 1
        self.addressed[n] = addressed
        named = addressed.users - {addressed.sender}
        owed = named & self.online
        self.expected_events += len(owed)
        if owed:
            self.owed[n] = set(owed)
        for user, at in self.early.pop(n, {}).items():
            self._settle(n, user, at)
        return len(named)

    def arrive(self, user: int, n: int, at: float) -> None:
        """A `message.new` of send `n` reached `user`'s socket at `at`."""
        if n not in self.started:
            return  # not a message of this run
        if n in self.addressed:
            self._settle(n, user, at)
        elif n in self.failed:
            self.unexpected += 1
        else:
            before = self.early.setdefault(n, {})
            if user in before:
                self.duplicated += 1
            else:
                before[user] = at

    def _settle(self, n: int, user: int, at: float) -> None:
        owed = self.owed.get(n)
        if owed is not None and user in owed:
            owed.remove(user)
            if not owed:
                del self.owed[n]
            self.delivered += 1
            latency = max(0.0, at - self.started[n])
            self.latencies.append(latency)
            self.delivered_at.append(at)
            self.recent.append(latency)
        elif self.addressed[n].names(user) and user in self.online:
            self.duplicated += 1
        else:
            self.unexpected += 1

    def take_recent(self) -> list[float]:
        recent, self.recent = self.recent, []
        return recent
