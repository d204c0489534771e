"""The Prometheus metrics every layer reports to, in one registry of the server's own."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

messages_sent = Counter(
    "realtime_messages_sent", "Messages committed", registry=REGISTRY
)
events_appended = Counter(
    "realtime_events_appended", "Events written to users' logs", registry=REGISTRY
)
open_websockets = Gauge(
    "realtime_open_websockets", "Websockets open on this node", registry=REGISTRY
)
http_requests = Counter(
    "realtime_http_requests", "HTTP requests answered", ["route", "method", "status"],
    registry=REGISTRY,
)
http_request_seconds = Histogram(
    "realtime_http_request_seconds", "Time to answer an HTTP request", ["route"],
    registry=REGISTRY,
)
events_delivered = Counter(
    "realtime_events_delivered", "Frames written to websockets", registry=REGISTRY
)
publish_batches = Histogram(
    "realtime_publish_batch_events", "Events published together after their commits",
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000), registry=REGISTRY,
)
messages_expired = Counter(
    "realtime_messages_expired", "Messages deleted by the expirer", registry=REGISTRY
)
expiry_lag = Histogram(
    "realtime_expiry_lag_seconds", "Time from a message's expiry to its deletion",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
    registry=REGISTRY,
)
overdue_messages = Gauge(
    "realtime_overdue_messages", "Messages past their expiry not deleted yet, when last looked",
    registry=REGISTRY,
)
