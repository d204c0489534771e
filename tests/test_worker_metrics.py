"""How `/metrics` adds up the workers of `serve --workers`, on real registries: what each kind
of figure becomes in the sum, what a worker that is gone still counts, and workers answering
each other over their unix sockets. The workers as processes are in tests/test_workers.py."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from realtime.worker_metrics import WorkerMetrics, figures_of, summed


class Worker:
    """A worker's registry with one figure of each kind the server has."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.sent = Counter("realtime_messages_sent", "sent", registry=self.registry)
        self.http = Counter("realtime_http_requests", "answered", ["route"],
                            registry=self.registry)
        self.latency = Histogram("realtime_delivery_latency_seconds", "latency",
                                 buckets=(0.01, 0.1), registry=self.registry)
        self.sockets = Gauge("realtime_open_websockets", "open", registry=self.registry)
        self.broker = Gauge("realtime_broker_connected", "broker", registry=self.registry)
        self.overdue = Gauge("realtime_overdue_messages", "overdue", registry=self.registry)


def printed(own: Worker, answering: list[Worker], gone: list[Worker]) -> dict[str, float]:
    """The sum as Prometheus text, read back."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(summed(figures_of(own.registry),
                             [figures_of(w.registry) for w in answering],
                             [figures_of(w.registry) for w in gone]))
    return read(generate_latest(registry))


def test_counters_histograms_and_open_sockets_are_the_sum_of_every_worker() -> None:
    one, two, three = Worker(), Worker(), Worker()
    for worker, sent in ((one, 3), (two, 4), (three, 5)):
        worker.sent.inc(sent)
        worker.sockets.set(sent * 10)
    one.http.labels("/healthz").inc(2)
    three.http.labels("/api/messages").inc(7)  # a label only another worker has seen
    one.latency.observe(0.005)
    two.latency.observe(0.05)
    two.latency.observe(5.0)

    figures = printed(one, [two, three], [])

    assert figures["realtime_messages_sent_total"] == 12
    assert figures["realtime_http_requests_total{route=/healthz}"] == 2
    assert figures["realtime_http_requests_total{route=/api/messages}"] == 7
    assert figures["realtime_delivery_latency_seconds_bucket{le=0.01}"] == 1
    assert figures["realtime_delivery_latency_seconds_bucket{le=0.1}"] == 2
    assert figures["realtime_delivery_latency_seconds_bucket{le=+Inf}"] == 3
    assert figures["realtime_delivery_latency_seconds_count"] == 3
    assert figures["realtime_delivery_latency_seconds_sum"] == 5.055
    assert figures["realtime_open_websockets"] == 120
    assert not [name for name in figures if name.endswith("_created")]


def test_the_broker_is_connected_only_when_it_is_on_every_worker() -> None:
    one, two = Worker(), Worker()
    one.broker.set(1)
    two.broker.set(1)
    assert printed(one, [two], [])["realtime_broker_connected"] == 1
    two.broker.set(0)
    assert printed(one, [two], [])["realtime_broker_connected"] == 0
    assert printed(two, [one], [])["realtime_broker_connected"] == 0


def test_figures_measured_in_the_database_are_the_answering_workers_own() -> None:
    """Every worker counts the same overdue messages: they are not added up."""
    one, two = Worker(), Worker()
    one.overdue.set(40)
    two.overdue.set(41)  # measured a moment later
    assert printed(one, [two], [])["realtime_overdue_messages"] == 40


def test_a_gone_worker_keeps_its_counters_in_the_sum_but_not_its_gauges() -> None:
    live, gone = Worker(), Worker()
    live.sent.inc(2)
    gone.sent.inc(9)
    gone.latency.observe(0.05)
    live.sockets.set(3)
    gone.sockets.set(50)  # its sockets closed as it went
    live.broker.set(1)
    gone.broker.set(0)

    figures = printed(live, [], [gone])

    assert figures["realtime_messages_sent_total"] == 11
    assert figures["realtime_delivery_latency_seconds_count"] == 1
    assert figures["realtime_open_websockets"] == 3
    assert figures["realtime_broker_connected"] == 1


def test_alone_the_sum_is_the_workers_own_figures() -> None:
    alone = Worker()
    alone.sent.inc(6)
    alone.sockets.set(2)
    figures = printed(alone, [], [])
    assert figures["realtime_messages_sent_total"] == 6
    assert figures["realtime_open_websockets"] == 2


def read(text: bytes) -> dict[str, float]:
    """Prometheus text read back: each sample by its name and labels."""
    return {
        sample.name + "".join(f"{{{name}={value}}}" for name, value in sorted(labels.items())):
            sample.value
        for family in text_string_to_metric_families(text.decode()) for sample in family.samples
        for labels in [sample.labels]
    }


@pytest.fixture
def run_directory() -> Iterator[Path]:
    """A directory as the parent makes it: private, with a path short enough for sockets."""
    directory = Path(tempfile.mkdtemp(prefix="realtime-metrics-"))
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


async def test_workers_answer_each_other_and_a_stopped_one_counts_from_its_file(
    run_directory: Path,
) -> None:
    """Worker 1 sums what worker 2 answers over its socket, however large (thousands of label
    values, several reads); once worker 2 has stopped, its counters still count from its last
    file and its open sockets no longer do."""
    one, two = Worker(), Worker()
    one.sent.inc(1)
    one.sockets.set(4)
    two.sent.inc(10)
    two.sockets.set(6)
    for number in range(3_000):
        two.http.labels(f"/route/{number}").inc()
    async with WorkerMetrics.joined(run_directory, one.registry, pid=1) as first:
        async with WorkerMetrics.joined(run_directory, two.registry, pid=2):
            figures = read(await first.exposition())
            assert figures["realtime_messages_sent_total"] == 11
            assert figures["realtime_open_websockets"] == 10
            assert figures["realtime_http_requests_total{route=/route/2999}"] == 1
            two.sent.inc(5)  # counted after the last periodic file: in the last one
        assert not (run_directory / "2.sock").exists()
        figures = read(await first.exposition())
        assert figures["realtime_messages_sent_total"] == 16
        assert figures["realtime_open_websockets"] == 4
