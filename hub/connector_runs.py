"""Sync runs that report their progress: one pass of `hub.pipeline.sync_connector`, claimed in
the connector's row so that one runs per connector whichever process starts it (the scheduler,
or "Sync now" in any web process), with the items fetched so far recorded as it goes.

The progress is honest about what is known: items fetched so far, and whether the run began
without a cursor (a first, full read of the source). No source says ahead how many items it
will give, so there is no percentage.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from hub.admin import UnknownConnector
from hub.bootstrap import Hub
from hub.metrics import sync_ended
from hub.pipeline import SyncReport, sync_connector
from matching.index import IdentityIndex
from storage import audit
from storage.connectors_state import beat_run, claim_run, connector_row, end_run
from storage.tables import ConnectorRow

log = logging.getLogger(__name__)

BEAT_SECONDS = 1.0  # how often a run records its progress: the pages poll about as often
# A run not heard from this long died with its process (killed, or its machine gone): a new
# one may start, and the pages show it as interrupted. Far above BEAT_SECONDS, as a busy
# database may hold a beat back a while. A queued job may take over sooner (`claim`'s `stale`).
STALE = timedelta(seconds=60)
STATES = ("none", "running", "done", "failed", "interrupted")


@dataclass(frozen=True, slots=True)
class Run:
    name: str
    started: datetime
    initial: bool


@dataclass(frozen=True, slots=True)
class SyncProgress:
    """The latest run of a connector as the pages and GET /api/connectors/{name}/sync show it."""

    state: str  # one of STATES; "none": no run recorded
    initial: bool
    fetched: int
    started_at: datetime | None
    updated_at: datetime | None
    ended_at: datetime | None
    report: dict[str, Any] | None  # the counts of `crmhub sync --json`, once ended

    @property
    def running(self) -> bool:
        return self.state == "running"

    def as_json(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "initial": self.initial,
            "fetched": self.fetched,
            "started_at": _iso(self.started_at),
            "updated_at": _iso(self.updated_at),
            "ended_at": _iso(self.ended_at),
            "report": self.report,
        }


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at else None


def progress_of(row: ConnectorRow, now: datetime) -> SyncProgress:
    recorded = dict(row.run_progress or {})
    report = recorded.get("report")
    if row.run_started_at is None:
        state = "none"
    elif row.run_ended_at is None:
        alive = row.run_beat_at is not None and row.run_beat_at >= now - STALE
        state = "running" if alive else "interrupted"
    else:
        state = "failed" if report and report.get("errors") else "done"
    return SyncProgress(
        state,
        bool(recorded.get("initial", False)),
        int(recorded.get("fetched", 0)),
        row.run_started_at,
        row.run_beat_at,
        row.run_ended_at,
        report if isinstance(report, dict) else None,
    )


async def claim(
    hub: Hub, name: str, *, actor: str | None = None, stale: timedelta = STALE
) -> Run | None:
    """Start a run of `name`, or None when one is running already: not ended, and heard from
    within `stale`. A run started by a person (`actor`) is audited. Raises UnknownConnector.

    A job of the queue (hub.queue) passes a shorter `stale` (hub.queue.TAKEOVER, 15 s): a
    worker killed mid-sync leaves its claim behind, and its job, put back in the queue by
    procrastinate's stalled-job check no sooner than 25 s after the kill, must not wait for
    STALE as well. Another queued run of the connector cannot hold the claim (procrastinate's
    lock), and a person's "Sync now" or an in-process scheduler beats every BEAT_SECONDS.
    """
    now = datetime.now(UTC)
    async with hub.sessions() as session, session.begin():
        row = await connector_row(session, name)
        if row is None:
            raise UnknownConnector(f"no connector named {name!r}")
        run = Run(name, now, initial=not row.cursor)
        progress = {"fetched": 0, "initial": run.initial}
        if not await claim_run(session, name, now, now - stale, progress):
            return None
        if actor is not None:
            audit.record(session, actor, "connector.sync", after=progress, target=name)
    return run


async def run_claimed(hub: Hub, run: Run, index: IdentityIndex | None = None) -> SyncReport:
    """The pass itself, beating with the items fetched so far until it ends, however it ends."""
    fetched = 0

    def progress(_name: str, count: int) -> None:
        nonlocal fetched
        fetched = count

    def recorded(**more: Any) -> dict[str, Any]:
        return {"fetched": fetched, "initial": run.initial, **more}

    async def beat() -> None:
        while True:
            await asyncio.sleep(BEAT_SECONDS)
            try:
                async with hub.sessions() as session, session.begin():
                    await beat_run(session, run.name, run.started, datetime.now(UTC), recorded())
            except Exception:  # a missed beat is no reason to stop the sync; the next one tries
                log.warning("recording the progress of %s failed", run.name, exc_info=True)

    beating = asyncio.create_task(beat())
    outcome = recorded(report={"errors": 1, "error": "the sync ended early; see the server log"})
    try:
        report = await sync_connector(hub, run.name, index or await hub.identity_index(), progress)
        doc = report.as_json()
        outcome = recorded(report={k: v for k, v in doc.items() if k not in ("connector", "kind")})
        return report
    finally:
        beating.cancel()
        await asyncio.gather(beating, return_exceptions=True)
        seconds = (datetime.now(UTC) - run.started).total_seconds()
        sync_ended(run.name, seconds, failed=bool(outcome["report"].get("errors")))
        async with hub.sessions() as session, session.begin():
            await end_run(session, run.name, run.started, datetime.now(UTC), outcome)


async def run_sync(hub: Hub, name: str, index: IdentityIndex | None = None) -> SyncReport | None:
    """One recorded pass over `name`; None when a run of it is going on elsewhere, or it was
    removed since the caller listed it."""
    try:
        run = await claim(hub, name)
    except UnknownConnector:
        return None
    return None if run is None else await run_claimed(hub, run, index)


async def latest_run(hub: Hub, name: str) -> SyncProgress:
    """Raises UnknownConnector."""
    async with hub.reads() as session:
        row = await connector_row(session, name)
    if row is None:
        raise UnknownConnector(f"no connector named {name!r}")
    return progress_of(row, datetime.now(UTC))


class SyncRuns:
    """The runs one web process started ("Sync now"): kept, so that none is collected while it
    runs, and stopped before the process closes the database."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.tasks: set[asyncio.Task[None]] = set()

    async def start(self, name: str, actor: str) -> bool:
        """False when a run of `name` is going on (here or elsewhere): nothing is started."""
        run = await claim(self.hub, name, actor=actor)
        if run is None:
            return False
        task = asyncio.create_task(self._run(run), name=f"sync {name}")
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return True

    async def _run(self, run: Run) -> None:
        try:
            report = await run_claimed(self.hub, run)
        except Exception:  # a job edge: the run is recorded as stopped; say why here
            log.exception("sync of %s failed", run.name)
            return
        log.info("sync %s: %s", run.name, report.as_json())

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
