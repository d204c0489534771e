"""`/metrics` under `serve --workers`: the figures of every worker, summed at each scrape.

Each worker process counts in a registry of its own, and a scrape of the port reaches one of
them. So the parent makes a directory for the run that only its user may enter. In it, every
worker listens on a unix socket, `<pid>.sock`, that answers its figures as they are now, and
writes them to `<pid>.json` every few seconds and once more as it stops.

The worker a scrape reaches asks every other one over its socket and adds their figures to its
own. Counters and histograms are summed, so they only go up, and so are the open websockets. The
broker counts as connected only when it is on every worker. The figures measured in the database
(the same on every worker) are the answering worker's own. A worker that is gone, or that does
not answer within a second, counts with its last file: its counters stay in the sums, its gauges
leave them. A worker killed outright loses what it counted since its last file, and the sum goes
down by that much: Prometheus takes that for a restart, as it would for a node's.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from prometheus_client import generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector, CollectorRegistry

log = logging.getLogger(__name__)

ASK_TIMEOUT = 1.0  # seconds a worker has to answer another's scrape
WRITE_INTERVAL = 5.0  # seconds between a worker's files of its figures
READ_LIMIT = 16 * 1024 * 1024  # the most one worker's figures may take

# How a gauge is taken across workers; any other gauge is the answering worker's own.
SUMMED_GAUGES = frozenset({"realtime_open_websockets"})
LEAST_GAUGES = frozenset({"realtime_broker_connected"})  # 1 only when 1 on every worker

# One worker's figures: its metric families as JSON-ready lists,
# [name, type, documentation, [[sample name, {label: value}, value], ...]].
Figures = list[list[Any]]


def figures_of(registry: CollectorRegistry) -> Figures:
    """The registry's families as they are now, without the `_created` samples (a time per
    worker, which no sum means anything for)."""
    return [
        [family.name, family.type, family.documentation,
         [[sample.name, sample.labels, sample.value] for sample in family.samples
          if not sample.name.endswith("_created")]]
        for family in registry.collect()
    ]


class Summed(Collector):
    """Families summed across workers, as a collector that `generate_latest` can print."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterable[Metric]:
        return self.families


def summed(own: Figures, answering: Sequence[Figures], gone: Sequence[Figures]) -> Summed:
    """`own` (the answering worker's), plus the other workers that answered, plus those gone
    (their counters and histograms only), family by family in `own`'s order."""
    # Each other worker's samples by family name, and whether it is still running.
    others = [({family[0]: family[3] for family in figures}, alive)
              for group, alive in ((answering, True), (gone, False)) for figures in group]
    families = []
    for name, kind, documentation, samples in own:
        totals = {_key(sample_name, labels): float(value)
                  for sample_name, labels, value in samples}
        how = _how(name, kind)
        for samples_by_family, alive in others if how != "own" else []:
            if not alive and kind == "gauge":  # a gone worker holds no socket, no broker
                continue
            for sample_name, labels, value in samples_by_family.get(name, []):
                key, number = _key(sample_name, labels), float(value)
                if key not in totals:
                    totals[key] = number
                elif how == "sum":
                    totals[key] += number
                else:
                    totals[key] = min(totals[key], number)
        family = Metric(name, documentation, kind)
        for (sample_name, labels), value in totals.items():
            family.add_sample(sample_name, dict(labels), value)
        families.append(family)
    return Summed(families)


def _key(sample_name: str, labels: dict[str, str]) -> tuple[str, tuple[tuple[str, str], ...]]:
    return sample_name, tuple(sorted(labels.items()))


def _how(name: str, kind: str) -> str:
    """How a family is taken across workers: "sum", "least" or "own"."""
    if kind != "gauge" or name in SUMMED_GAUGES:
        return "sum"
    return "least" if name in LEAST_GAUGES else "own"


async def _read_to_the_end(reader: asyncio.StreamReader) -> bytes:
    """Everything until the other side closes, at most READ_LIMIT bytes (ValueError past it)."""
    chunks, size = [], 0
    while chunk := await reader.read(64 * 1024):
        size += len(chunk)
        if size > READ_LIMIT:
            raise ValueError("the figures are too large")
        chunks.append(chunk)
    return b"".join(chunks)


class WorkerMetrics:
    """This worker's place in the run's directory: its socket, its file, and the sum."""

    def __init__(
        self, directory: Path, registry: CollectorRegistry, *, pid: int | None = None
    ) -> None:
        """`pid` names the worker in the directory: this process's by default."""
        self._directory = directory
        self._registry = registry
        self._pid = os.getpid() if pid is None else pid
        self._socket_path = directory / f"{self._pid}.sock"
        self._file = directory / f"{self._pid}.json"
        self._measure: Callable[[], None] = lambda: None

    def measure_with(self, measure: Callable[[], None]) -> None:
        """Call `measure` before this worker's figures go to another worker or to its file:
        what a scrape measures (the broker's state) is then as fresh there as in a scrape."""
        self._measure = measure

    @classmethod
    @contextlib.asynccontextmanager
    async def joined(
        cls, directory: Path, registry: CollectorRegistry, *, pid: int | None = None
    ) -> AsyncIterator[WorkerMetrics]:
        """Answer the other workers and write this one's file until the context ends, then
        write it a last time."""
        worker = cls(directory, registry, pid=pid)
        server = await asyncio.start_unix_server(worker._answer, path=worker._socket_path)
        writer = asyncio.create_task(worker._write_every_interval(), name="worker-metrics")
        try:
            yield worker
        finally:
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
            server.close()
            with contextlib.suppress(FileNotFoundError):
                worker._socket_path.unlink()
            worker._write()  # what it counted to the end stays in the sums

    async def exposition(self) -> bytes:
        """The Prometheus text of every worker's figures summed."""
        own = figures_of(self._registry)
        others = sorted(
            ({path.stem for path in self._directory.glob("*.sock")}
             | {path.stem for path in self._directory.glob("*.json")})
            - {str(self._pid)}
        )
        asked = await asyncio.gather(*(self._ask(pid) for pid in others))
        answering, gone = [], []
        for pid, figures in zip(others, asked, strict=True):
            if figures is not None:
                answering.append(figures)
            elif (last := self._read_file(pid)) is not None:
                gone.append(last)
        registry = CollectorRegistry(auto_describe=False)
        registry.register(summed(own, answering, gone))
        return generate_latest(registry)

    async def _ask(self, pid: str) -> Figures | None:
        """Another worker's figures now, or None when it is gone or did not answer in time."""
        path = self._directory / f"{pid}.sock"
        if not path.exists():
            return None
        try:
            async with asyncio.timeout(ASK_TIMEOUT):
                reader, writer = await asyncio.open_unix_connection(path)
                try:
                    answer = await _read_to_the_end(reader)
                finally:
                    writer.close()
            figures: Figures = json.loads(answer)
        except (OSError, TimeoutError, ValueError) as error:
            log.info("worker %s did not give its figures (%s); its last file counts",
                     pid, type(error).__name__)
            return None
        return figures

    def _read_file(self, pid: str) -> Figures | None:
        try:
            figures: Figures = json.loads((self._directory / f"{pid}.json").read_bytes())
        except (OSError, ValueError):
            return None
        return figures

    def _figures(self) -> Figures:
        self._measure()
        return figures_of(self._registry)

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            writer.write(json.dumps(self._figures()).encode())
            await writer.drain()
        except OSError:
            pass  # the asking worker went away: nothing to answer
        finally:
            writer.close()

    async def _write_every_interval(self) -> None:
        while True:
            self._write()
            await asyncio.sleep(WRITE_INTERVAL)

    def _write(self) -> None:
        """This worker's figures to its file, whole or not at all."""
        partial = self._file.with_suffix(".partial")
        try:
            partial.write_text(json.dumps(self._figures()))
            partial.replace(self._file)
        except OSError as error:
            log.warning("cannot write this worker's figures (%s)", error.strerror or error)
