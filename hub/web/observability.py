"""What operations ask of a running crmhub: `/healthz` (the process answers), `/readyz` (it can
serve: the database answers, at the schema this code expects), `/metrics` (Prometheus), and
the two middlewares that feed them: request ids for the log (hub.logs) and request times.

These routes are for machines (a load balancer, an orchestrator, Prometheus), so they answer
as the API does, JSON errors and a 401 rather than a login page, whatever their path. None
of them shows personal data: /metrics names connectors and counts, the others only states.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hub.bootstrap import Hub
from hub.connector_runs import progress_of
from hub.logs import bind_request_id, request_id_for, unbind_request_id
from hub.metrics import exposition, request_answered
from hub.policy import Permission
from hub.web.endpoints import Answer, Endpoint
from hub.web.http import JSONResponse, hub_of
from hub.web.schemas import STR, obj
from storage.connectors_state import connector_rows
from storage.db import HEAD
from storage.tables import ConnectorRow

log = logging.getLogger(__name__)

# How long /readyz and /metrics wait for the database: a probe that hangs tells nobody anything.
DATABASE_WAIT = 5.0  # seconds
STATUSES = ("new", "ok", "failed")
QUEUE_STATES = ("todo", "doing")
# procrastinate's jobs waiting and running: its partial index on (id, lock) WHERE status IN
# ('todo', 'doing') answers this without reading the finished jobs, however many are kept.
# Its tables are in a schema of their own (migration 0020, hub.queue.SCHEMA: named here, as
# importing hub.queue would load procrastinate into every web process).
QUEUE_TABLE = "procrastinate.procrastinate_jobs"
QUEUE_DEPTH = text(
    f"SELECT status::text, count(*) FROM {QUEUE_TABLE} "
    "WHERE status IN ('todo', 'doing') GROUP BY status"
)


@dataclass(frozen=True)
class MachineEndpoint(Endpoint):
    """A route for machines: refusals as JSON (401 without a login, never a redirect to the
    login page), documented in the OpenAPI document beside the API."""

    @property
    def api(self) -> bool:
        return True


async def healthz(request: Request) -> Response:
    """Liveness: the process answers. No database: a database outage is not cured by
    restarting every web process."""
    return JSONResponse({"status": "ok"})


@dataclass(frozen=True)
class Unready:
    code: str
    message: str


async def readiness(hub: Hub) -> Unready | None:
    """Why this process should get no traffic yet, or None when it can serve."""
    try:
        async with asyncio.timeout(DATABASE_WAIT), hub.reads() as session:
            await session.execute(text("SELECT 1"))
            return await _schema_problem(session)
    except TimeoutError:
        return Unready("database_timeout", f"the database did not answer within {DATABASE_WAIT} s")
    except (DBAPIError, OSError) as e:
        return Unready("database_unreachable", f"the database does not answer: {_reason(e)}")


async def _schema_problem(session: AsyncSession) -> Unready | None:
    try:
        found = list(
            (await session.execute(text("SELECT version_num FROM alembic_version"))).scalars()
        )
    except DBAPIError:
        return Unready("no_schema", "the database has no crmhub schema; run `crmhub db upgrade`")
    if found == [HEAD]:
        return None
    at = ", ".join(found) or "no revision"
    if len(found) == 1 and found[0].isdigit() and int(found[0]) < int(HEAD):
        return Unready(
            "migrations_behind",
            f"migrations behind: database at {at}, code at {HEAD}; run `crmhub db upgrade`",
        )
    if len(found) == 1 and found[0].isdigit():
        return Unready(
            "migrations_ahead",
            f"migrations ahead: database at {at}, code at {HEAD}; this crmhub is older than "
            "its database: deploy the version that migrated it",
        )
    return Unready("unknown_schema", f"unknown schema revision: database at {at}, code at {HEAD}")


def _reason(e: Exception) -> str:
    """The driver's first line: it names host and problem, never the password."""
    cause = e.orig if isinstance(e, DBAPIError) and e.orig is not None else e
    lines = str(cause).strip().splitlines()
    return lines[0][:300] if lines else type(cause).__name__


async def readyz(request: Request) -> Response:
    problem = await readiness(hub_of(request))
    if problem is None:
        return JSONResponse({"status": "ready", "schema": HEAD})
    log.warning("not ready: %s", problem.message)
    return JSONResponse(
        {"status": "unready", "error": {"code": problem.code, "message": problem.message}},
        status_code=503,
    )


async def metrics(request: Request) -> Response:
    hub = hub_of(request)
    body, content_type = exposition(request.headers.get("accept", ""), await cluster(hub))
    return Response(body, headers={"Content-Type": content_type})


async def cluster(hub: Hub) -> list[Metric]:
    """The figures every process reads alike from the database: per connector one row, and
    the job queue through its index; `crmhub_database_up` 0 when the database did not answer
    (the process's own counters are still worth scraping then)."""
    up = GaugeMetricFamily(
        "crmhub_database_up", "Whether the database answered this scrape's reads (1) or not (0)."
    )
    now = datetime.now(UTC)
    try:
        async with asyncio.timeout(DATABASE_WAIT), hub.reads() as session:
            rows = await connector_rows(session)
            queue = await _queue_depth(session)
    except (TimeoutError, DBAPIError, OSError) as e:
        log.warning("metrics: the database did not answer: %s", _reason(e))
        up.add_metric([], 0)
        return [up]
    up.add_metric([], 1)
    return [up, *_connector_families(rows, now), queue]


async def _queue_depth(session: AsyncSession) -> Metric:
    jobs = GaugeMetricFamily(
        "crmhub_queue_jobs",
        "Sync jobs in procrastinate's queue by state: todo (waiting) and doing (running); "
        "0 where no queue is set up (SQLite, the in-process scheduler).",
        labels=("status",),
    )
    counts = dict.fromkeys(QUEUE_STATES, 0)
    bind = session.get_bind()
    if bind.dialect.name == "postgresql":
        exists = await session.execute(text(f"SELECT to_regclass('{QUEUE_TABLE}')"))
        if exists.scalar() is not None:
            counts.update({status: int(n) for status, n in await session.execute(QUEUE_DEPTH)})
    for status, count in counts.items():
        jobs.add_metric([status], count)
    return jobs


def _connector_families(rows: list[ConnectorRow], now: datetime) -> list[Metric]:
    lag = GaugeMetricFamily(
        "crmhub_connector_lag_seconds",
        "Seconds since the connector's last successful sync; +Inf when it never had one.",
        labels=("connector", "kind"),
    )
    duration = GaugeMetricFamily(
        "crmhub_connector_last_sync_duration_seconds",
        "How long the connector's latest recorded sync run took (absent before the first).",
        labels=("connector",),
    )
    status = GaugeMetricFamily(
        "crmhub_connector_status",
        "The outcome of the connector's last sync: 1 for its state (new, ok, failed), 0 else.",
        labels=("connector", "status"),
    )
    error = GaugeMetricFamily(
        "crmhub_connector_error",
        "1 when the connector's last sync ended with an error (see `crmhub status`), else 0.",
        labels=("connector",),
    )
    enabled = GaugeMetricFamily(
        "crmhub_connector_enabled",
        "1 when the connector is synced, 0 when disabled.",
        labels=("connector",),
    )
    running = GaugeMetricFamily(
        "crmhub_connector_syncing",
        "1 while a sync run of the connector is going on in any process, else 0.",
        labels=("connector",),
    )
    for row in rows:
        since = row.last_success_at
        lag.add_metric(
            [row.name, row.kind],
            float("inf") if since is None else max((now - since).total_seconds(), 0.0),
        )
        seconds = _last_duration(row)
        if seconds is not None:
            duration.add_metric([row.name], seconds)
        for state in STATUSES:
            status.add_metric([row.name, state], float(row.status == state))
        error.add_metric([row.name], float(bool(row.last_error)))
        enabled.add_metric([row.name], float(row.enabled))
        running.add_metric([row.name], float(progress_of(row, now).running))
    return [lag, duration, status, error, enabled, running]


def _last_duration(row: ConnectorRow) -> float | None:
    """The run's own measure (the report's seconds), else its recorded start and end."""
    report = (row.run_progress or {}).get("report")
    if isinstance(report, dict) and isinstance(report.get("seconds"), int | float):
        return float(report["seconds"])
    if row.run_started_at is not None and row.run_ended_at is not None:
        return max((row.run_ended_at - row.run_started_at).total_seconds(), 0.0)
    return None


class RequestIds:
    """Gives every request an id (the client's X-Request-Id when it is sane, hub.logs), logs
    under it, and returns it as X-Request-Id.

    Left bound when the request fails: the server's error handler, outside this middleware,
    logs the failure afterwards in the same task, and its lines carry the id too.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next((v for k, v in scope.get("headers", []) if k == b"x-request-id"), None)
        request_id = request_id_for(given.decode("latin-1") if given is not None else None)
        header = (b"x-request-id", request_id.encode())

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                kept = [h for h in message.get("headers", []) if h[0].lower() != header[0]]
                message = {**message, "headers": [*kept, header]}
            await send(message)

        token = bind_request_id(request_id)
        await self.app(scope, receive, sending)
        unbind_request_id(token)


class RequestTimes:
    """Times every request into crmhub_http_request_duration_seconds, by the route's template
    (never the path: ids would make a series per record), method and status class.

    Observed as the answer's last part is handed on, before the client can have it: a scrape
    that follows a request always counts it, whichever process answers the scrape.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 0
        observed = False

        def observe() -> None:
            nonlocal observed
            if not observed:
                observed = True
                seconds = time.perf_counter() - started
                request_answered(_route_of(scope), scope["method"], status, seconds)

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                observe()
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            observe()  # a failure (no answer yet: a 500) or a client gone before the end


def _route_of(scope: Scope) -> str:
    """The template of the route that took the request; "unmatched" for none (a 404)."""
    path = getattr(scope.get("route"), "path", None)
    return path if isinstance(path, str) else "unmatched"


_STATE = {"type": "object", "properties": {"status": {"const": "ok"}}, "required": ["status"]}
_READY = obj(status={"const": "ready"}, schema=STR)

ENDPOINTS: list[Endpoint] = [
    MachineEndpoint(
        "/healthz",
        healthz,
        Permission.PUBLIC,
        summary="liveness: the process answers (no database access)",
        ok=Answer(200, "the process is alive", _STATE),
    ),
    MachineEndpoint(
        "/readyz",
        readyz,
        Permission.PUBLIC,
        summary="readiness: the database answers and its schema is the one this code expects",
        ok=Answer(200, "ready to serve", _READY),
        errors={503: "not ready: the message says what is wrong and what to run"},
    ),
    MachineEndpoint(
        "/metrics",
        metrics,
        Permission.ADMINISTER,
        summary="Prometheus metrics: connector lag and state, queue depth, items ingested, "
        "syncs, HTTP latency (an admin's API token as bearer token)",
        ok=Answer(
            200,
            "Prometheus text format (OpenMetrics when the scraper asks for it)",
            {"type": "string"},
            media="text/plain",
        ),
    ),
]
