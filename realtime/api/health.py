"""What /readyz and /metrics look at besides the registry: the database, the broker, and the
expiry backlog measured at the scrape."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from realtime.broker.base import Broker
from realtime.metrics import broker_connected


class Health:
    """This node's dependencies as the operations endpoints report them."""

    def __init__(
        self, *, database_answers: Callable[[], Awaitable[bool]], broker: Broker,
        measure_backlog: Callable[[], Awaitable[None]],
        exposition: Callable[[], Awaitable[bytes]],
    ) -> None:
        """`exposition` prints the metrics: this process's, or with workers every worker's."""
        self._database_answers = database_answers
        self._broker = broker
        self._measure_backlog = measure_backlog
        self._exposition = exposition

    async def checks(self) -> dict[str, bool]:
        """Whether the database answers now, and whether the broker carries messages."""
        return {"database": await self._database_answers(), "broker": self._broker.healthy}

    def measure_broker(self) -> None:
        """Set the broker's gauge to its state now (also when another worker asks for it)."""
        broker_connected.set(1 if self._broker.healthy else 0)

    async def measure(self) -> None:
        """Set the gauges measured at the scrape: the broker's state and the expiry backlog."""
        self.measure_broker()
        await self._measure_backlog()

    async def metrics(self) -> bytes:
        """The Prometheus text, measured now."""
        await self.measure()
        return await self._exposition()
