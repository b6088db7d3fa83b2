"""Sync jobs on PostgreSQL: procrastinate's queue, for a company that outgrew one machine.

`crmhub worker` processes on any number of machines take jobs from the queue in the hub's
database (`run_queue`); `crmhub serve --no-scheduler` web processes run none. Nothing here
coordinates by itself: procrastinate's locks decide who runs what.

- `sync_connector(name)`: one recorded pass (hub.connector_runs). Its queueing lock `name`
  lets at most one wait per connector, its lock `name` lets one run at a time in the whole
  cluster. A failed pass is retried with exponential back-off (SYNC_RETRY).
- `watch_connector(name)`: an IMAP IDLE watcher as a long job, one per mailbox in the whole
  cluster (lock and queueing lock "watch:" + name). Each change it hears defers a
  `sync_connector`, so watched syncs take the same path and the same lock as scheduled ones.
  It ends when its connector is disabled or removed, and hands over to a successor when the
  connector's settings changed.
- Periodic jobs: `schedule` (every minute) defers the syncs that are due (hub.jobs.is_due) and
  the watchers that are missing; `retry_stalled` (every 10 s) puts the jobs of a worker that
  stopped beating (killed, machine gone) back in the queue, where another worker resumes a
  sync from its committed cursor; retention and forgetting old failed logins hourly; jobs
  that failed are forgotten after a week (succeeded ones at once). crmhub sends no digests.

Each worker process runs one procrastinate worker per queue, so that watchers, which never
end, cannot take the slots syncs need, and the periodic jobs never wait behind syncs. Live
listeners (asterisk-ami) are no jobs: each worker process keeps them under their lease, as
`crmhub serve` does (hub.jobs, hub.listener_lease). The lease hands a PBX connection over
within seconds of a clean stop and makes a holder that stalled past it hang up, where
procrastinate would start a stalled worker's job elsewhere while the stalled one still listens.

procrastinate's tables live in a PostgreSQL schema of their own, SCHEMA (migration 0020); the
queue's connections find them through their search_path.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from procrastinate import App, PsycopgConnector, RetryStrategy
from procrastinate.exceptions import AlreadyEnqueued, UniqueViolation
from procrastinate.jobs import Status
from psycopg.conninfo import make_conninfo

from connectors.base import Connector, ConnectorError
from hub.admin import UnknownConnector
from hub.bootstrap import Hub
from hub.connector_runs import claim, run_claimed
from hub.jobs import Scheduler, is_due, kind_of, retain, tidy, watched_state
from storage.connectors_state import connector_row, enabled_rows
from storage.db import DatabaseError, sync_url
from storage.tables import ConnectorRow

log = logging.getLogger(__name__)

SCHEMA = "procrastinate"  # created by migration 0020
SYNC, WATCH, CHORES = "sync", "watch", "chores"  # the queues
SYNC_TASK, WATCH_TASK = "crmhub.sync_connector", "crmhub.watch_connector"
CHORE_CONCURRENCY = 2  # retention may take a while; `schedule` and `retry_stalled` never wait
# A worker beats this often; one silent for STALLED_SECONDS (six beats: a busy database may
# hold a beat back) is dead, and its jobs go back to the queue. A killed worker's sync is thus
# retried 25-40 s after the kill (STALLED_SECONDS minus a beat, plus the 10 s check).
HEARTBEAT_SECONDS = 5.0
STALLED_SECONDS = 30.0
TAKEOVER = timedelta(seconds=15)  # see hub.connector_runs.claim
# On SIGTERM a running sync gets this long to finish (a batch in flight usually commits within
# it), then goes back to the queue and resumes from its committed cursor; `docker stop` waits
# 10 s before it kills.
SHUTDOWN_GRACE = 5.0
WATCH_CHECK_SECONDS = 10.0  # how often a watcher looks whether its connector changed
FAILED_JOBS_KEPT = 7 * 24  # hours
# 3, 9, 27, 81 and 243 s after the 1st to 5th failure. Every failure is retried: a report
# cannot tell a server that restarts from a password that IT is fixing meanwhile, and a few
# tries spread over six minutes cost a login each; the next due sync tries again after that.
SYNC_RETRY = RetryStrategy(max_attempts=5, exponential_wait=3)
# A watcher lives until its connector changes: a failed or stopped one comes back soon, always.
WATCH_RETRY = RetryStrategy(wait=5)


class ConnectorBusy(Exception):
    """A run of the connector is going on outside the queue: retried after it, by back-off."""


class SyncFailed(Exception):
    """The pass reported an error (the connector row and the pages show it): retried."""


def conninfo(database_url: str) -> str:
    """libpq's connection string for the hub's SQLAlchemy URL (postgresql+psycopg://...),
    with the queue's schema first on the search path."""
    url = sync_url(database_url)
    params: dict[str, Any] = {
        "host": url.host,
        "port": url.port,
        "user": url.username,
        "password": url.password,
        "dbname": url.database,
    }
    for key, value in url.query.items():
        params[key] = value if isinstance(value, str) else value[-1]
    params["options"] = f"{params.get('options') or ''} -c search_path={SCHEMA}".strip()
    return make_conninfo("", **{k: v for k, v in params.items() if v is not None})


def is_watched(row: ConnectorRow | None) -> bool:
    """Whether `row` wants an IDLE watcher: enabled, and of a kind that watches."""
    if row is None or not row.enabled:
        return False
    kind = kind_of(row)
    return kind is not None and kind.watches


@dataclass
class Queue:
    """The hub's procrastinate app and what its jobs do."""

    hub: Hub
    app: App

    async def defer_sync(self, name: str) -> bool:
        """False when a sync of `name` waits in the queue already (its queueing lock)."""
        return await self._defer(SYNC_TASK, name, name)

    async def defer_watch(self, name: str) -> bool:
        return await self._defer(WATCH_TASK, name, f"watch:{name}")

    async def _defer(self, task: str, name: str, lock: str) -> bool:
        try:
            await self.app.configure_task(task, lock=lock, queueing_lock=lock).defer_async(
                name=name
            )
        except AlreadyEnqueued:
            return False
        return True

    async def schedule(self, now: datetime) -> list[str]:
        """Defer a sync of every enabled connector that is due and a watcher for every one
        whose kind watches; what was deferred (a duplicate hits the queueing lock)."""
        async with self.hub.sessions() as session:
            rows = await enabled_rows(session)
        deferred = []
        for row in rows:
            if is_due(row, self.hub.settings, now) and await self.defer_sync(row.name):
                deferred.append(f"sync {row.name}")
            if is_watched(row) and await self.defer_watch(row.name):
                deferred.append(f"watch {row.name}")
        return deferred

    async def sync(self, name: str) -> None:
        """The job `sync_connector`: one recorded pass over `name`, unless it was disabled or
        removed since it was deferred. Raises ConnectorBusy or SyncFailed to be retried."""
        async with self.hub.sessions() as session:
            row = await connector_row(session, name)
        if row is None or not row.enabled:
            return
        try:
            run = await claim(self.hub, name, stale=TAKEOVER)
        except UnknownConnector:
            return
        if run is None:
            raise ConnectorBusy(f"{name}: a sync started elsewhere is going on")
        report = await run_claimed(self.hub, run, await self.hub.identity_index())
        if report.new or report.errors:
            log.info("sync %s: %s", name, report.as_json())
        if report.errors:
            raise SyncFailed(f"{name}: {report.error}")

    async def watch(self, name: str) -> None:
        """The job `watch_connector`: IDLE on `name`'s mailbox for as long as its connector
        stays enabled and unchanged; a changed one defers its successor (which waits for this
        job's lock) and ends."""
        async with self.hub.sessions() as session:
            row = await connector_row(session, name)
        if row is None or not is_watched(row):
            return
        started_as = watched_state(row)
        try:
            connector = self.hub.connector(row)
        except ConnectorError as e:  # its syncs report it too; the next `schedule` tries again
            log.warning("%s: cannot watch: %s", name, e)
            return
        listening = asyncio.create_task(self._sync_on_news(connector))
        try:
            while True:
                done, _ = await asyncio.wait({listening}, timeout=WATCH_CHECK_SECONDS)
                if done:
                    listening.result()
                    return  # watch() ended by itself; the next `schedule` starts another
                async with self.hub.sessions() as session:
                    row = await connector_row(session, name)
                if row is None or not is_watched(row):
                    return
                if watched_state(row) != started_as:
                    await self.defer_watch(name)
                    return
        finally:
            listening.cancel()
            await asyncio.gather(listening, return_exceptions=True)

    async def _sync_on_news(self, connector: Connector) -> None:
        async with contextlib.aclosing(connector.watch()) as events:
            async for reason in events:
                log.debug("%s: %s reported new items", connector.name, reason)
                await self.defer_sync(connector.name)

    async def retry_stalled(self) -> int:
        """Put the jobs of workers that stopped beating back in the queue; how many. A job
        whose successor waits already (its queueing lock) is ended as aborted instead."""
        manager = self.app.job_manager
        stalled = list(await manager.get_stalled_jobs(seconds_since_heartbeat=STALLED_SECONDS))
        for job in stalled:
            try:
                await manager.retry_job(job)
            except UniqueViolation:
                await manager.finish_job(job, status=Status.ABORTED, delete_job=False)
            log.warning("%s: its worker stopped beating; back in the queue", job.call_string)
        await manager.prune_stalled_workers(STALLED_SECONDS)
        return len(stalled)


def build_queue(hub: Hub) -> Queue:
    """The hub's procrastinate app with crmhub's tasks and periodic jobs."""
    connector = PsycopgConnector(conninfo=conninfo(hub.settings.database_url), max_size=4)
    queue = Queue(hub, App(connector=connector))
    app = queue.app
    app.task(name=SYNC_TASK, queue=SYNC, retry=SYNC_RETRY)(queue.sync)
    app.task(name=WATCH_TASK, queue=WATCH, retry=WATCH_RETRY)(queue.watch)

    async def schedule(timestamp: int) -> None:
        deferred = await queue.schedule(datetime.now(UTC))
        if deferred:
            log.debug("deferred: %s", ", ".join(deferred))

    async def retry_stalled(timestamp: int) -> None:
        await queue.retry_stalled()

    async def retention(timestamp: int) -> None:
        await retain(hub)

    async def forget_failed_logins(timestamp: int) -> None:
        await tidy(hub)

    async def forget_jobs(timestamp: int) -> None:
        await app.job_manager.delete_old_jobs(
            FAILED_JOBS_KEPT, include_failed=True, include_cancelled=True, include_aborted=True
        )

    for cron, chore in (
        ("* * * * *", schedule),
        ("* * * * * */10", retry_stalled),  # a sixth field: seconds
        ("17 * * * *", retention),
        ("47 * * * *", forget_failed_logins),
        ("31 3 * * *", forget_jobs),
    ):
        name = f"crmhub.{chore.__name__}"
        task = app.task(name=name, queue=CHORES, queueing_lock=name)(chore)
        app.periodic(cron=cron, periodic_id=name)(task)
    return queue


async def run_queue(hub: Hub) -> None:
    """The queue side of `crmhub worker`, until cancelled: a procrastinate worker per queue,
    and a scheduler for this process's share of the live listeners. Raises DatabaseError when
    the queue's tables are missing."""
    queue = build_queue(hub)
    settings = hub.settings
    plan = (
        (SYNC, settings.worker_concurrency, SHUTDOWN_GRACE),
        (WATCH, settings.worker_watchers, 0.0),  # watchers go back to the queue at once
        (CHORES, CHORE_CONCURRENCY, SHUTDOWN_GRACE),
    )
    async with queue.app.open_async():
        if not await queue.app.check_connection_async():
            raise DatabaseError("the job queue's tables are missing: run `crmhub db upgrade`")
        workers = [
            asyncio.create_task(
                queue.app.run_worker_async(
                    queues=[name],
                    name=name,
                    concurrency=concurrency,
                    shutdown_graceful_timeout=grace,
                    install_signal_handlers=False,  # hub.jobs.run_worker stops this task
                    delete_jobs="successful",
                    update_heartbeat_interval=HEARTBEAT_SECONDS,
                    stalled_worker_timeout=STALLED_SECONDS,
                ),
                name=f"{name} worker",
            )
            for name, concurrency, grace in plan
            if concurrency
        ]
        listeners = asyncio.create_task(Scheduler(hub, syncs=False).run(), name="listeners")
        log.info("crmhub worker on the job queue: %s", ", ".join(t.get_name() for t in workers))
        try:
            done, _ = await asyncio.wait([*workers, listeners], return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()  # a worker only ends by itself when it failed: say why
        finally:
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            listeners.cancel()
            await asyncio.gather(listeners, return_exceptions=True)
