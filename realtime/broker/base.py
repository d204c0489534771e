"""The `Broker` interface: route each user's events to the nodes where that user has sockets,
and a payload for many users to every node."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from uuid import UUID

# Who a payload is for: a user (the nodes subscribed to them) or, None, every node.
Audience = UUID | None
# Called with the audience and the bytes published for it, on every node it reaches.
DeliveryHandler = Callable[[Audience, bytes], None]
# Called after the broker lost messages (a reconnect, a silent link): sockets must resume.
RecoveryHandler = Callable[[], Awaitable[None]]


class Broker(ABC):
    """Per-user routing of published bytes between nodes, and a channel every node hears.

    Delivery is at most once and may be lost when the broker fails; the event log is the truth.
    After any possible loss the broker calls its recovery handler once it works again, so that
    the node makes its sockets resume from the log.
    """

    @abstractmethod
    async def start(self) -> None:
        """Connect and begin receiving; returns once the broker can be used (or is retrying)."""

    @abstractmethod
    async def close(self) -> None:
        """Stop receiving and release every connection; idempotent."""

    @abstractmethod
    async def subscribe(self, user_id: UUID) -> None:
        """Receive the user's events on this node from now on; idempotent.

        When it returns, every later publish for the user reaches this node (while healthy).
        """

    @abstractmethod
    async def unsubscribe(self, user_id: UUID) -> None:
        """Stop receiving the user's events on this node; idempotent."""

    @abstractmethod
    async def publish(self, messages: Sequence[tuple[Audience, bytes]]) -> None:
        """Send each payload to every node subscribed to its user, or to every node when its
        audience is None, in the order given; never raises for an outage."""

    @property
    @abstractmethod
    def healthy(self) -> bool:
        """Whether messages flow now (false while disconnected or silent)."""
