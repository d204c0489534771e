"""Brokers carry events between nodes: in-process for one node, Redis pub/sub for several."""

from __future__ import annotations

from realtime.broker.base import Broker, DeliveryHandler, RecoveryHandler
from realtime.crypto import BrokerSeal


def create_broker(
    url: str | None,
    *,
    deliver: DeliveryHandler,
    recovered: RecoveryHandler,
    seal: BrokerSeal,
    prefix: str = "realtime",
    timeout: float = 2.0,
) -> Broker:
    """The broker for `url`: none is the in-process one, `redis://` or `rediss://` Redis.

    Payloads leaving the process are sealed by `seal`; in-process ones never leave it.
    """
    if url is None:
        from realtime.broker.memory import MemoryBroker

        return MemoryBroker(deliver=deliver, recovered=recovered)
    if url.startswith(("redis://", "rediss://", "unix://")):
        from realtime.broker.redis import RedisBroker

        return RedisBroker(
            url, deliver=deliver, recovered=recovered, seal=seal, prefix=prefix, timeout=timeout
        )
    raise ValueError("REALTIME_REDIS_URL must start with redis://, rediss:// or unix://")


__all__ = ["Broker", "DeliveryHandler", "RecoveryHandler", "create_broker"]
