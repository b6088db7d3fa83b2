"""Who runs syncs, and when each connector is due.

Every connector has an interval (`interval_of`): its kind's own (`Connector.interval`: imap
300 s beside IDLE, m365 and caldav 120 s as their delta and sync tokens make a pass cheap,
others 300 s), or the `sync_interval` setting for all when it is set. A connector is due
(`is_due`) once its interval has passed since its last run started, unless a run of it is
going on.

On the embedded default (`crmhub serve`, and `crmhub worker` on SQLite, which has no queue)
an in-process scheduler looks every PASS_SECONDS for due connectors and syncs them one after
another; connectors that can push (IMAP IDLE) also get a watcher that syncs them as soon as
the source reports new items, and live sources that replay nothing (`connectors.base.Listener`:
the Asterisk Manager Interface) a listener that stores each batch they push as it arrives
(`hub.pipeline.ingest_pushed`), in one process at a time: the one holding the connector's lease
(hub.listener_lease). A watcher or listener whose connector's settings changed is started
again. A lock per connector keeps the scheduled pass and a watcher from syncing the same
connector at once; the run's claim in the database (hub.connector_runs) keeps any other process
from it too. Retention (`retention_days`) and forgetting old failed logins run at the first
pass and every HOUSEKEEPING_SECONDS after.

Scaled out on PostgreSQL, `crmhub worker` takes syncs and watchers from procrastinate's queue
instead (hub.queue) and runs a scheduler here for the live listeners alone (`syncs=False`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections import defaultdict
from collections.abc import Callable, Coroutine, Mapping
from datetime import UTC, datetime
from typing import Any

from config.settings import Settings
from connectors.base import Connector, ConnectorError, Listener
from connectors.registry import connector_class
from hub.bootstrap import Hub
from hub.connector_runs import progress_of, run_sync
from hub.listener_lease import holder_token, listen_while_held
from hub.pipeline import SyncReport, ingest_pushed
from hub.retention import apply_retention
from storage.connectors_state import enabled_rows
from storage.db import parse_url
from storage.maintenance import optimize
from storage.tables import ConnectorRow
from storage.throttle import forget_stale

log = logging.getLogger(__name__)

# How often the in-process scheduler looks for due connectors: a sync starts at most this late,
# and a watcher or listener whose connector changed is restarted within it.
PASS_SECONDS = 30.0
HOUSEKEEPING_SECONDS = 3600.0  # retention and forgetting old failed logins: deadlines in days


def kind_of(row: ConnectorRow) -> type[Connector] | None:
    """The connector class of `row`; None for a kind that cannot be loaded (its sync says why)."""
    try:
        return connector_class(row.kind)
    except ConnectorError:
        return None


def interval_of(
    kind: type[Connector] | None, settings: Settings, own: Mapping[str, Any] | None = None
) -> float:
    """Seconds between scheduled syncs of a connector of `kind`: its own `interval` setting
    (`own`, validated by the connector), else `sync_interval` when set, else the kind's own
    (the default for a kind that cannot be loaded)."""
    mine = str((own or {}).get("interval") or "")
    if mine.isdigit():
        return float(mine)
    if settings.sync_interval:
        return float(settings.sync_interval)
    return (kind or Connector).interval


def is_due(row: ConnectorRow, settings: Settings, now: datetime) -> bool:
    """Whether a scheduled sync of `row` is due at `now`: never run, or its interval has passed
    since its last run started, and no run of it is going on (one that stopped beating died
    with its process: hub.connector_runs.STALE)."""
    if row.run_started_at is None:
        return True
    if progress_of(row, now).running:
        return False
    every = interval_of(kind_of(row), settings, row.settings)
    return (now - row.run_started_at).total_seconds() >= every


class Scheduler:
    def __init__(self, hub: Hub, *, syncs: bool = True) -> None:
        self.hub = hub
        # False: live listeners only, in a worker whose syncs and watchers come from the queue.
        self.syncs = syncs
        self.housekept_at: float | None = None  # time.monotonic() of the last housekeeping
        self.locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self.watchers: dict[str, asyncio.Task[None]] = {}
        self.listeners: dict[str, asyncio.Task[None]] = {}
        # A listener restarted here waits for the one it replaces to release the lease: they
        # share this scheduler's holder token, so the lease alone cannot keep them apart.
        self.leases: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self.holder = holder_token()
        self.started_as: dict[str, tuple[str, str, object]] = {}  # task name -> its row's state

    async def sync(self, name: str) -> SyncReport | None:
        """One recorded pass (hub.connector_runs); None when a run of the connector is going
        on elsewhere ("Sync now" on the admin pages, another machine's worker)."""
        async with self.locks[name]:
            index = await self.hub.identity_index()
            report = await run_sync(self.hub, name, index)
        if report is not None and (report.new or report.errors):
            log.info("sync %s: %s", name, report.as_json())
        return report

    async def run(self) -> None:
        """Sync the connectors that are due, then sleep until the next pass; a failing pass is
        logged, never fatal."""
        try:
            while True:
                try:
                    rows = await self._enabled()
                    self._keep_watchers(rows)
                    if self.syncs:
                        await self._sync_due(rows)
                except Exception:  # a job edge: log and carry on with the next pass
                    log.exception("scheduled sync failed")
                if self.syncs:
                    await self._housekeeping()
                await asyncio.sleep(self.pass_seconds())
        finally:
            tasks = [*self.watchers.values(), *self.listeners.values()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def pass_seconds(self) -> float:
        """PASS_SECONDS, or `sync_interval` when that is shorter (a test's, or a demo's)."""
        return min(PASS_SECONDS, float(self.hub.settings.sync_interval or PASS_SECONDS))

    async def _sync_due(self, rows: list[ConnectorRow]) -> None:
        for row in rows:
            if is_due(row, self.hub.settings, datetime.now(UTC)):
                await self.sync(row.name)

    async def _housekeeping(self) -> None:
        now = time.monotonic()
        if self.housekept_at is not None and now - self.housekept_at < HOUSEKEEPING_SECONDS:
            return
        self.housekept_at = now
        await retain(self.hub)
        await tidy(self.hub)

    async def _enabled(self) -> list[ConnectorRow]:
        async with self.hub.sessions() as session:
            return await enabled_rows(session)

    def _keep_watchers(self, rows: list[ConnectorRow]) -> None:
        """A watcher for each enabled kind that watches (unless the queue runs them), a
        listener for each that listens."""
        if self.syncs:
            self._keep(self.watchers, rows, lambda cls: cls.watches, self._watch, "watch")
        self._keep(
            self.listeners, rows, lambda cls: issubclass(cls, Listener), self._listen, "listen"
        )

    def _keep(
        self,
        tasks: dict[str, asyncio.Task[None]],
        rows: list[ConnectorRow],
        wants: Callable[[type[Connector]], bool],
        start: Callable[[ConnectorRow], Coroutine[Any, Any, None]],
        verb: str,
    ) -> None:
        wanted = {}
        for row in rows:
            try:
                if wants(connector_class(row.kind)):
                    wanted[row.name] = row
            except ConnectorError:
                continue  # the pass reports an unknown kind
        for name in list(tasks):
            now = wanted.get(name)
            if (
                now is None
                or tasks[name].done()
                or self.started_as[f"{verb} {name}"] != watched_state(now)
            ):
                tasks.pop(name).cancel()
        for name, row in wanted.items():
            if name not in tasks:
                self.started_as[f"{verb} {name}"] = watched_state(row)
                tasks[name] = asyncio.create_task(start(row), name=f"{verb} {name}")

    async def _watch(self, row: ConnectorRow) -> None:
        try:
            connector = self.hub.connector(row)
            async with contextlib.aclosing(connector.watch()) as events:
                async for reason in events:
                    log.debug("%s: %s reported new items", row.name, reason)
                    await self.sync(row.name)
        except asyncio.CancelledError:
            raise
        except Exception:  # a job edge: the next pass starts a new watcher
            log.exception("watching %s failed", row.name)

    async def _listen(self, row: ConnectorRow) -> None:
        """Listen to a live source while this process holds its lease, waiting for the lease
        while another process listens."""
        async with self.leases[row.name]:
            try:
                await listen_while_held(self.hub, row.name, self.holder, lambda: self._hear(row))
            except asyncio.CancelledError:
                raise
            except Exception:  # a job edge: the next pass starts a new listener
                log.exception("listening to %s failed", row.name)

    async def _hear(self, row: ConnectorRow) -> None:
        """Store each batch a live source pushes; the listener reconnects by itself."""
        connector = self.hub.connector(row)
        assert isinstance(connector, Listener)
        async with contextlib.aclosing(connector.listen()) as batches:
            async for raws in batches:
                try:
                    report = await ingest_pushed(self.hub, row.name, raws)
                except Exception:  # a job edge: keep listening, say what was not stored
                    ids = ", ".join(raw.external_id for raw in raws[:10])
                    log.exception(
                        "%s: storing %d pushed items (%s) failed", row.name, len(raws), ids
                    )
                    continue
                log.debug("%s: pushed %s", row.name, report.as_json())


async def retain(hub: Hub) -> None:
    """Retention; a failure is logged and tried again the next time."""
    if not hub.settings.retention_days:
        return
    try:
        report = await apply_retention(hub, datetime.now(UTC))
    except Exception:  # a job edge, like a failed sync
        log.exception("retention failed")
        return
    if report.items:
        log.info("retention: %s", "; ".join(report.lines()))


async def tidy(hub: Hub) -> None:
    """Forget failed-login counts that would start over anyway: one row per client address
    that ever failed would otherwise pile up."""
    try:
        async with hub.sessions() as session, session.begin():
            await forget_stale(session, datetime.now(UTC))
    except Exception:  # a job edge: the next time tries again
        log.exception("forgetting old failed logins failed")


def watched_state(row: ConnectorRow) -> tuple[str, str, object]:
    """What a watcher or listener was built from: a change means starting it again."""
    return row.kind, repr(sorted((row.settings or {}).items())), row.secrets


async def scheduler_loop(hub: Hub) -> None:
    await Scheduler(hub).run()


def run_worker(hub: Hub) -> int:
    """`crmhub worker`: on PostgreSQL procrastinate's workers (hub.queue) with this process's
    share of the live listeners; on SQLite, which has no queue, the in-process scheduler
    without the web view, and it says so.

    SIGTERM (a service manager's stop) ends it like Ctrl-C: running syncs get a few seconds to
    finish (hub.queue.SHUTDOWN_GRACE) and the rest go back to the queue, watchers go back at
    once, and listeners release their leases (hub.listener_lease), so that other workers take
    over at once instead of after the lease or the heartbeat went stale."""
    settings = hub.settings
    queued = parse_url(settings.database_url).get_backend_name() == "postgresql"
    if queued:
        print(
            f"crmhub worker: taking jobs from the PostgreSQL queue ({settings.worker_concurrency}"
            f" syncs at once, up to {settings.worker_watchers} IDLE watchers)",
            flush=True,
        )
    else:
        print(
            "crmhub worker: SQLite has no job queue; running the in-process scheduler "
            "(with PostgreSQL, workers on several machines share the syncs)",
            flush=True,
        )

    async def main() -> None:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        loop.add_signal_handler(signal.SIGTERM, task.cancel)
        try:
            await optimize(hub.engine)
            if queued:
                from hub.queue import run_queue  # here: SQLite never loads procrastinate

                await run_queue(hub)
            else:
                await scheduler_loop(hub)
        except asyncio.CancelledError:
            log.info("crmhub worker stopped")
        finally:
            await hub.close()

    asyncio.run(main())
    return 0
