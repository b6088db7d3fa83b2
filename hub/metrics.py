"""What each crmhub process counts for Prometheus: items ingested, syncs and their errors, HTTP
requests; and how a scrape is answered.

The cluster-wide figures (each connector's lag and state, the job queue) are read from the
database at scrape time by the web process answering /metrics (hub.web.observability), so
every process answers the same whichever ran the sync. What is counted here lives in the
process that did the work:

- `crmhub serve --workers N` (N > 1) counts in prometheus-client's multiprocess mode: the
  parent makes a fresh directory before forking (`multiprocess_directory`), each web process
  writes its counters to files of its own there, and /metrics in any process sums them all.
  The parent removes the directory when the server stops: counters start again from zero with
  the server, as Prometheus expects of a restarted target.
- `crmhub worker --metrics-port P` serves its own counters with prometheus-client's HTTP server
  (`serve_process_metrics`); the cluster-wide figures are at any web process's /metrics.
- `crmhub sync` counts too, but ends before anybody could scrape it.

Labels never carry an id or a personal detail: connectors by name, channels, routes as their
template (`/api/accounts/{id:int}`), methods, status classes.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections import Counter as Tally
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from threading import Thread
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram, values
from prometheus_client.exposition import choose_encoder, start_http_server
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from storage.ingest import IngestCounts, StoredItem

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"  # prometheus-client's own name for it
# Seconds: from an answer out of memory (a few ms) to a slow search or export.
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Seconds: from an incremental pass that finds nothing to a first full read of a big mailbox.
SYNC_BUCKETS = (0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 14400.0)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class ProcessMetrics:
    """This process's counters, in a registry of their own (not prometheus-client's global one,
    which imports elsewhere may fill)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.items = Counter(
            "crmhub_items_ingested",
            "Items in committed batches (new, updated or stored already), by connector and "
            "channel.",
            ("connector", "channel"),
            registry=self.registry,
        )
        self.outcomes = Counter(
            "crmhub_items_stored",
            "What committed batches did with their items, by connector: new, updated, "
            "duplicate (stored already), quarantined (unreadable, kept with its reason).",
            ("connector", "outcome"),
            registry=self.registry,
        )
        self.syncs = Histogram(
            "crmhub_sync_duration_seconds",
            "How long recorded sync runs took, by connector (failed runs included).",
            ("connector",),
            buckets=SYNC_BUCKETS,
            registry=self.registry,
        )
        self.sync_errors = Counter(
            "crmhub_sync_errors",
            "Sync runs that ended with an error, by connector.",
            ("connector",),
            registry=self.registry,
        )
        self.requests = Histogram(
            "crmhub_http_request_duration_seconds",
            "Time to answer HTTP requests, by route template, method and status class.",
            ("route", "method", "status"),
            buckets=HTTP_BUCKETS,
            registry=self.registry,
        )


_process: ProcessMetrics | None = None


def process_metrics() -> ProcessMetrics:
    """Built on first use, in the process that counts: never before a fork (see
    multiprocess_directory), so each web process writes files of its own."""
    global _process
    if _process is None:
        _process = ProcessMetrics()
    return _process


def batch_stored(connector: str, items: Sequence[StoredItem], counts: IngestCounts) -> None:
    """A batch of `connector` was committed (hub.pipeline)."""
    found = process_metrics()
    for channel, count in Tally(item.interaction.channel.value for item in items).items():
        found.items.labels(connector, channel).inc(count)
    for outcome, count in (
        ("new", counts.new),
        ("updated", counts.updated),
        ("duplicate", counts.duplicates),
        ("quarantined", counts.quarantined),
    ):
        if count:
            found.outcomes.labels(connector, outcome).inc(count)


def sync_ended(connector: str, seconds: float, *, failed: bool) -> None:
    """A recorded sync run of `connector` ended (hub.connector_runs), however it ended."""
    found = process_metrics()
    found.syncs.labels(connector).observe(max(seconds, 0.0))
    if failed:
        found.sync_errors.labels(connector).inc()


def request_answered(route: str, method: str, status: int, seconds: float) -> None:
    """An HTTP request was answered; `status` 0 when it failed before any answer (a 500)."""
    status_class = f"{status // 100}xx" if 100 <= status < 600 else "5xx"
    method = method if method in METHODS else "other"
    process_metrics().requests.labels(route, method, status_class).observe(seconds)


class _Fixed(Collector):
    """Families computed before the scrape (the database's figures, read asynchronously)."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self.families = list(families)

    def collect(self) -> Iterable[Metric]:
        return iter(self.families)


class _ThisProcess(Collector):
    """This process's counters, collected live at every scrape."""

    def collect(self) -> Iterable[Metric]:
        return process_metrics().registry.collect()


def scrape_registry(families: Iterable[Metric] = ()) -> CollectorRegistry:
    """What a scrape answers: every web process's counters summed (multiprocess mode) or this
    process's, and `families`."""
    registry = CollectorRegistry(auto_describe=False)
    if os.environ.get(MULTIPROCESS_ENV):
        MultiProcessCollector(registry)
    else:
        registry.register(_ThisProcess())
    registry.register(_Fixed(families))
    return registry


def exposition(accept: str, families: Iterable[Metric] = ()) -> tuple[bytes, str]:
    """The body and content type for a scraper that sent `accept` (text or OpenMetrics)."""
    encoder, content_type = choose_encoder(accept)
    return encoder(scrape_registry(families)), content_type


@contextlib.contextmanager
def multiprocess_directory() -> Iterator[Path]:
    """Multiprocess mode for the processes forked inside: a fresh directory, named in the
    environment they inherit, removed afterwards.

    prometheus-client picks how values are kept when it is imported; it is picked again here,
    after the environment names the directory, and before any process counts.
    """
    global _process
    previous = os.environ.get(MULTIPROCESS_ENV)
    path = Path(tempfile.mkdtemp(prefix="crmhub-metrics-"))
    os.environ[MULTIPROCESS_ENV] = str(path)
    values.ValueClass = values.get_value_class()
    _process = None
    try:
        yield path
    finally:
        if previous is None:
            os.environ.pop(MULTIPROCESS_ENV, None)
        else:
            os.environ[MULTIPROCESS_ENV] = previous
        values.ValueClass = values.get_value_class()
        _process = None
        shutil.rmtree(path, ignore_errors=True)


def serve_process_metrics(host: str, port: int) -> Thread:
    """This process's counters at http://HOST:PORT/metrics, from a thread of their own
    (`crmhub worker --metrics-port`). Raises OSError when the port cannot be bound."""
    _server, thread = start_http_server(port, addr=host, registry=scrape_registry())
    return thread
