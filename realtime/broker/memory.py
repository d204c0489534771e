"""The in-process broker: one node, no network, nothing lost."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from realtime import metrics
from realtime.broker.base import Audience, Broker, DeliveryHandler, RecoveryHandler


class MemoryBroker(Broker):
    """Deliver published payloads straight to this node's subscribers."""

    def __init__(self, *, deliver: DeliveryHandler, recovered: RecoveryHandler) -> None:
        self._deliver = deliver
        self._recovered = recovered
        self._subscribed: set[UUID] = set()

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        self._subscribed.clear()

    async def subscribe(self, user_id: UUID) -> None:
        self._subscribed.add(user_id)

    async def unsubscribe(self, user_id: UUID) -> None:
        self._subscribed.discard(user_id)

    async def publish(self, messages: Sequence[tuple[Audience, bytes]]) -> None:
        to_everyone = received = 0
        for audience, payload in messages:
            if audience is None:
                to_everyone += 1
            elif audience in self._subscribed:
                received += 1
            else:
                continue
            self._deliver(audience, payload)
        metrics.payloads_published_to_every_node.inc(to_everyone)
        metrics.payloads_published_to_user.inc(len(messages) - to_everyone)
        metrics.payloads_received_by_every_node.inc(to_everyone)
        metrics.payloads_received_by_user.inc(received)

    @property
    def healthy(self) -> bool:
        return True
