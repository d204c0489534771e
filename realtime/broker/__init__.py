"""Brokers carry events between nodes: in-process for one node, Redis pub/sub for several."""

from __future__ import annotations

from realtime.broker.base import Broker, DeliveryHandler, RecoveryHandler


def create_broker(
    url: str | None,
    *,
    deliver: DeliveryHandler,
    recovered: RecoveryHandler,
    prefix: str = "realtime",
) -> Broker:
    """The broker for `url`: none is the in-process one, `redis://` or `rediss://` Redis."""
    if url is None:
        from realtime.broker.memory import MemoryBroker

        return MemoryBroker(deliver=deliver, recovered=recovered)
    if url.startswith(("redis://", "rediss://", "unix://")):
        from realtime.broker.redis import RedisBroker

        return RedisBroker(url, deliver=deliver, recovered=recovered, prefix=prefix)
    raise ValueError("REALTIME_REDIS_URL must start with redis://, rediss:// or unix://")


__all__ = ["Broker", "DeliveryHandler", "RecoveryHandler", "create_broker"]
