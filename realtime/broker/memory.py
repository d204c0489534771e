"""The in-process broker: one node, no network, nothing lost."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from realtime.broker.base import Broker, DeliveryHandler, RecoveryHandler


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

    async def publish(self, messages: Sequence[tuple[UUID, bytes]]) -> None:
        for user_id, payload in messages:
            if user_id in self._subscribed:
                self._deliver(user_id, payload)

    @property
    def healthy(self) -> bool:
        return True
