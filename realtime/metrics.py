"""The Prometheus metrics every layer reports to, in one registry of the server's own.

Counters are per process and only go up. The hub's numbers per frame written (how many, and
the latency of each) are plain fields of one `DeliveryTally` per hub, written only by that hub's
event loop and summed at each scrape: a `Counter.inc` and a `Histogram.observe` per frame would
cost several times as much on the hottest path.
"""

from __future__ import annotations

import threading
import time
from bisect import bisect_left
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily, Metric

REGISTRY = CollectorRegistry(auto_describe=True)

# Latencies from 1 ms to 10 s; slower lands in +Inf.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_LATENCY_LE = [*(repr(bound) for bound in LATENCY_BUCKETS), "+Inf"]  # as `le` labels

# Sending and publishing.
messages_sent = Counter(
    "realtime_messages_sent",
    "Messages sent: committed with their recipients' events (one per message, however many "
    "recipients)",
    registry=REGISTRY,
)
events_appended = Counter(
    "realtime_events_appended",
    "Events written to users' logs, one per user and change (new, read, deleted)",
    registry=REGISTRY,
)
events_published = Counter(
    "realtime_events_published",
    "Event frames handed to the broker after their commit, one per user and event (an event "
    "whose message was gone by then has no frame)",
    registry=REGISTRY,
)
publish_batches = Histogram(
    "realtime_publish_batch_events", "Events published together after their commits",
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000), registry=REGISTRY,
)

# Websockets (events delivered and their latency: `DeliveryTally` below).
open_websockets = Gauge(
    "realtime_open_websockets", "Websockets open on this node", registry=REGISTRY
)

# The broker.
broker_connected = Gauge(
    "realtime_broker_connected",
    "1 while the broker carries messages (Redis: connected, its heartbeat coming back), else 0; "
    "read at each scrape",
    registry=REGISTRY,
)
broker_reconnects = Counter(
    "realtime_broker_reconnects",
    "Times the Redis broker connected again after losing its connection (the first connection "
    "is not counted); after each, every socket catches up from the event log",
    registry=REGISTRY,
)
broker_payloads_published = Counter(
    "realtime_broker_payloads_published",
    "Payloads this node handed to the broker: for one user's nodes (audience=user), or one for "
    "every node carrying a new message to many users (audience=every_node)",
    ["audience"],
    registry=REGISTRY,
)
broker_payloads_received = Counter(
    "realtime_broker_payloads_received",
    "Payloads this node received from the broker and opened, by audience (see "
    "realtime_broker_payloads_published); a send to many is one, however many it reaches",
    ["audience"],
    registry=REGISTRY,
)
# The two audiences, bound once (and so present at zero before the first payload).
payloads_published_to_user = broker_payloads_published.labels("user")
payloads_published_to_every_node = broker_payloads_published.labels("every_node")
payloads_received_by_user = broker_payloads_received.labels("user")
payloads_received_by_every_node = broker_payloads_received.labels("every_node")
broker_dropped = Counter(
    "realtime_broker_dropped_payloads",
    "Payloads the Redis broker could not send (disconnected, or the publish failed); the "
    "sockets catch up from the event log",
    registry=REGISTRY,
)
broker_rejected = Counter(
    "realtime_broker_rejected_payloads",
    "Payloads received from Redis that did not open for their channel (forged, altered, copied "
    "from another channel, or sealed under a master key this node does not hold); never delivered",
    registry=REGISTRY,
)

# HTTP.
http_requests = Counter(
    "realtime_http_requests",
    "HTTP requests answered, by route template ('unmatched' for a path no route serves), "
    "method ('other' for an unusual one) and status code",
    ["route", "method", "status"],
    registry=REGISTRY,
)
http_request_seconds = Histogram(
    "realtime_http_request_seconds",
    "Time to answer an HTTP request, by route template, method and status class (2xx, 4xx, "
    "...: the class, not the code, keeps the series few)",
    ["route", "method", "status_class"],
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)

# Expiry.
links_created = Counter(
    "realtime_links_created", "Shareable links created (emailed ones included)", registry=REGISTRY
)
link_views = Counter(
    "realtime_link_views", "Views of shareable links given (each counted against its link)",
    registry=REGISTRY,
)
links_burned = Counter(
    "realtime_links_burned", "Shareable links destroyed by their fifth wrong passphrase",
    registry=REGISTRY,
)
links_deleted = Counter(
    "realtime_links_deleted",
    "Shareable links deleted by the expirer: expired, or at the end of a download window",
    registry=REGISTRY,
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
    "realtime_overdue_messages",
    "Messages past their expiry not deleted yet, counted in the database at each scrape (the "
    "same on every node; NaN when the database did not answer in time)",
    registry=REGISTRY,
)
oldest_overdue = Gauge(
    "realtime_expiry_oldest_overdue_seconds",
    "How long ago the oldest message not deleted yet expired, at each scrape (0 when none is "
    "overdue; NaN when the database did not answer in time)",
    registry=REGISTRY,
)

# Links sent by email, one message per recipient.
mail_sent = Counter(
    "realtime_mail_sent",
    "Messages of links sent by email, one per recipient, by outcome: 'sent' (the relay took "
    "it), 'refused' (the relay refused it, or another message of the same link, for good), "
    "'unavailable' (the relay did not answer, answered 'try later', or failed TLS or login)",
    ["outcome"],
    registry=REGISTRY,
)
# The three outcomes, bound once (and so present at zero before the first mail).
mails_sent = mail_sent.labels("sent")
mails_refused = mail_sent.labels("refused")
mails_unavailable = mail_sent.labels("unavailable")


class DeliveryTally:
    """One hub's frames written to sockets and their latencies, in plain fields: only the
    hub's event loop writes them, a scrape only reads them."""

    __slots__ = ("latency_buckets", "latency_sum", "live", "replayed")

    def __init__(self) -> None:
        self.live = 0  # event frames written as they were published
        self.replayed = 0  # event frames written from the log (resume, gap repair)
        self.latency_buckets = [0] * (len(LATENCY_BUCKETS) + 1)  # the last one is +Inf
        self.latency_sum = 0.0

    def written(self, committed_at: float) -> None:
        """A live event frame was written; time it from `committed_at` (0: not known)."""
        self.live += 1
        if committed_at:
            latency = max(0.0, time.time() - committed_at)  # another node's clock may be ahead
            self.latency_buckets[bisect_left(LATENCY_BUCKETS, latency)] += 1
            self.latency_sum += latency


class _Deliveries:
    """The collector that sums every hub's tally into two metrics."""

    def __init__(self) -> None:
        self._tallies: list[DeliveryTally] = []
        self._lock = threading.Lock()

    def tally(self) -> DeliveryTally:
        tally = DeliveryTally()
        with self._lock:
            self._tallies.append(tally)  # kept for good: a counter never goes down
        return tally

    def describe(self) -> Iterator[Metric]:
        yield from self._families()

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            tallies = list(self._tallies)
        live = replayed = 0
        buckets = [0] * (len(LATENCY_BUCKETS) + 1)
        total = 0.0
        for tally in tallies:
            live += tally.live
            replayed += tally.replayed
            for index, count in enumerate(list(tally.latency_buckets)):
                buckets[index] += count
            total += tally.latency_sum
        delivered, latency = self._families()
        delivered.add_metric(["live"], live)
        delivered.add_metric(["replay"], replayed)
        cumulative, pairs = 0, []
        for le, count in zip(_LATENCY_LE, buckets, strict=True):
            cumulative += count
            pairs.append((le, float(cumulative)))
        latency.add_metric([], pairs, total)
        yield delivered
        yield latency

    @staticmethod
    def _families() -> tuple[CounterMetricFamily, HistogramMetricFamily]:
        delivered = CounterMetricFamily(
            "realtime_events_delivered",
            "Event frames written to websockets on this node, one per event and socket: via "
            "'live' as published, 'replay' from the event log (a resume or a gap repaired)",
            labels=["via"],
        )
        latency = HistogramMetricFamily(
            "realtime_delivery_latency_seconds",
            "Time from an event's commit (the wall clock of the node that published it) to its "
            "frame being written to a websocket (this node's wall clock), observed once per live "
            "frame written: what each open tab waits, its queue included",
        )
        return delivered, latency


_deliveries = _Deliveries()
REGISTRY.register(_deliveries)


def delivery_tally() -> DeliveryTally:
    """A new tally for one hub, counted in the metrics from now on."""
    return _deliveries.tally()


async def exposition() -> bytes:
    """This process's figures as Prometheus text."""
    return generate_latest(REGISTRY)
