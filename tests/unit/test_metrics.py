"""What a process counts and how a scrape reads it: labels (route templates, status classes,
channels), content negotiation, the request middlewares, and multiprocess mode summing the
counters of forked processes."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from hub.logs import JsonFormatter, current_request_id
from hub.metrics import (
    MULTIPROCESS_ENV,
    batch_stored,
    exposition,
    multiprocess_directory,
    process_metrics,
    request_answered,
)
from hub.model import Channel, Interaction, RawItem
from hub.web.observability import RequestIds, RequestTimes
from storage.ingest import IngestCounts, StoredItem

REQUESTS = "crmhub_http_request_duration_seconds"


def count(route: str, method: str = "GET", status: str = "2xx") -> float:
    value = process_metrics().registry.get_sample_value(
        f"{REQUESTS}_count", {"route": route, "method": method, "status": status}
    )
    return value or 0.0


def samples(body: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }


def stored(channel: Channel, n: int) -> list[StoredItem]:
    at = datetime(2024, 1, 9, tzinfo=UTC)
    return [
        StoredItem(
            RawItem(f"{channel.value}-{i}", b""),
            Interaction(channel, at, f"key-{channel.value}-{i}"),
            [],
            [],
            "inbound",
            "",
        )
        for i in range(n)
    ]


def test_committed_batches_count_items_by_channel_and_outcome() -> None:
    found = process_metrics().registry.get_sample_value
    before = found("crmhub_items_ingested_total", {"connector": "pbx-t", "channel": "call"}) or 0
    batch_stored(
        "pbx-t",
        [*stored(Channel.CALL, 3), *stored(Channel.SMS, 2)],
        IngestCounts(new=4, duplicates=1, quarantined=2),
    )
    batch_stored("pbx-t", stored(Channel.CALL, 1), IngestCounts(duplicates=1))
    assert found("crmhub_items_ingested_total", {"connector": "pbx-t", "channel": "call"}) == (
        before + 4
    )
    assert found("crmhub_items_ingested_total", {"connector": "pbx-t", "channel": "sms"}) == 2
    outcome = {
        o: found("crmhub_items_stored_total", {"connector": "pbx-t", "outcome": o})
        for o in ("new", "duplicate", "quarantined", "updated")
    }
    assert outcome == {"new": 4, "duplicate": 2, "quarantined": 2, "updated": None}


def test_requests_are_labelled_by_status_class_and_known_methods() -> None:
    before = (count("/t/{id:int}", "GET", "4xx"), count("/t/{id:int}", "other", "5xx"))
    request_answered("/t/{id:int}", "GET", 404, 0.01)
    request_answered("/t/{id:int}", "BREW", 0, 0.01)  # failed before any answer
    after = (count("/t/{id:int}", "GET", "4xx"), count("/t/{id:int}", "other", "5xx"))
    assert after == (before[0] + 1, before[1] + 1)


def test_a_scrape_is_text_or_openmetrics_as_the_scraper_asks() -> None:
    extra = GaugeMetricFamily("crmhub_test_figure", "a figure read elsewhere", value=7)
    body, kind = exposition("", [extra])
    assert kind.startswith("text/plain; version=0.0.4")
    assert samples(body)[("crmhub_test_figure", ())] == 7
    body, kind = exposition("application/openmetrics-text; version=1.0.0", [extra])
    assert kind.startswith("application/openmetrics-text")
    assert body.rstrip().endswith(b"# EOF")


async def _thing(request: Request) -> Response:
    logging.getLogger("crmhub.test_metrics").warning("looked at %s", request.path_params["id"])
    return JSONResponse({"request_id": current_request_id()})


async def _fail(request: Request) -> Response:
    raise RuntimeError("broken on purpose")


@pytest.fixture
def app() -> Starlette:
    return Starlette(
        routes=[Route("/things/{id:int}", _thing), Route("/fail", _fail)],
        middleware=[Middleware(RequestIds), Middleware(RequestTimes)],
    )


@pytest.fixture
def json_log() -> Iterator[list[str]]:
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    handler = Collect()
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("crmhub.test_metrics")
    logger.addHandler(handler)
    yield lines
    logger.removeHandler(handler)


async def test_the_middlewares_time_by_template_and_carry_the_request_id(
    app: Starlette, json_log: list[str]
) -> None:
    before = {r: count(r) for r in ("/things/{id:int}", "unmatched")}
    failed = count("/fail", status="5xx")
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        own = await client.get("/things/7", headers={"X-Request-Id": "abc"})
        made = await client.get("/things/8", headers={"X-Request-Id": "no spaces please"})
        missing = await client.get("/nothing/here/9")
        assert current_request_id() is None, "an answered request leaves no id behind"
        broken = await client.get("/fail")  # leaves it bound for the error log, see RequestIds
    assert own.headers["x-request-id"] == "abc" == own.json()["request_id"]
    assert made.headers["x-request-id"] == made.json()["request_id"] != "no spaces please"
    assert len(made.headers["x-request-id"]) == 32
    assert missing.status_code == 404 and missing.headers["x-request-id"]
    assert broken.status_code == 500
    assert count("/things/{id:int}") == before["/things/{id:int}"] + 2
    assert count("unmatched", status="4xx") >= 1
    assert count("/fail", status="5xx") == failed + 1
    body, _ = exposition("")
    assert b'route="/things/7"' not in body and b"/nothing/here" not in body
    ids = [json.loads(line)["request_id"] for line in json_log]
    assert ids == ["abc", made.headers["x-request-id"]]


def test_forked_processes_are_summed_and_the_directory_goes(tmp_path: Path) -> None:
    """`crmhub serve --workers N`: each process counts into files of its own; a scrape in any
    process (here the parent, which counted nothing) sums them."""
    route = f"/forked/{os.getpid()}"
    with multiprocess_directory() as directory:
        assert os.environ[MULTIPROCESS_ENV] == str(directory)
        children = []
        for n in range(3):
            pid = os.fork()
            if pid == 0:  # pragma: no cover - the child's exit status is checked below
                code = 1
                try:
                    for _ in range(n + 1):
                        request_answered(route, "GET", 200, 0.002)
                    code = 0
                finally:
                    os._exit(code)
            children.append(pid)
        assert [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in children] == [0] * 3
        body, _ = exposition("")
        key = (f"{REQUESTS}_count", (("method", "GET"), ("route", route), ("status", "2xx")))
        assert samples(body)[key] == 1 + 2 + 3
        assert len(list(directory.iterdir())) == 3, "a file per process"
    assert not directory.exists()
    assert MULTIPROCESS_ENV not in os.environ
    assert count(route) == 0, "the parent's own counters never saw the children's requests"
