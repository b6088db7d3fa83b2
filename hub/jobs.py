"""Who runs syncs on the embedded default: an in-process scheduler.

Every `sync_interval` it passes over all enabled connectors; connectors that can push (IMAP
IDLE) also get a watcher that syncs them as soon as the source reports new items, and live
sources that replay nothing (`connectors.base.Listener`: the Asterisk Manager Interface) a
listener that stores each batch they push as it arrives (`hub.pipeline.ingest_pushed`), in one
process at a time: the one holding the connector's lease (hub.listener_lease). A watcher or
listener whose connector's settings changed is started again. A lock per connector keeps the
scheduled pass and a watcher from syncing the same connector at once; the run's claim in the
database (hub.connector_runs) keeps any other process from it too.
Each pass ends with retention (`retention_days`): items past their channel's period go.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections import defaultdict
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Any

from connectors.base import Connector, ConnectorError, Listener
from connectors.registry import connector_class
from hub.bootstrap import Hub
from hub.connector_runs import run_sync
from hub.listener_lease import holder_token, listen_while_held
from hub.pipeline import SyncReport, ingest_pushed
from hub.retention import apply_retention
from storage.connectors_state import enabled_rows
from storage.maintenance import optimize
from storage.tables import ConnectorRow
from storage.throttle import forget_stale

log = logging.getLogger(__name__)


class Scheduler:
    def __init__(self, hub: Hub) -> None:
        self.hub = hub
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
        """Sync all enabled connectors, then sleep; a failing pass is logged, never fatal."""
        try:
            while True:
                try:
                    rows = await self._enabled()
                    self._keep_watchers(rows)
                    for row in rows:
                        await self.sync(row.name)
                except Exception:  # a job edge: log and carry on with the next pass
                    log.exception("scheduled sync failed")
                await self.retain()
                await self.tidy()
                await asyncio.sleep(self.hub.settings.sync_interval)
        finally:
            tasks = [*self.watchers.values(), *self.listeners.values()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def retain(self) -> None:
        """Retention once per pass; a failure is logged and tried again on the next pass."""
        if not self.hub.settings.retention_days:
            return
        try:
            report = await apply_retention(self.hub, datetime.now(UTC))
        except Exception:  # a job edge, like a failed sync
            log.exception("retention failed")
            return
        if report.items:
            log.info("retention: %s", "; ".join(report.lines()))

    async def tidy(self) -> None:
        """Forget failed-login counts that would start over anyway: one row per client address
        that ever failed would otherwise pile up."""
        try:
            async with self.hub.sessions() as session, session.begin():
                await forget_stale(session, datetime.now(UTC))
        except Exception:  # a job edge: the next pass tries again
            log.exception("forgetting old failed logins failed")

    async def _enabled(self) -> list[ConnectorRow]:
        async with self.hub.sessions() as session:
            return await enabled_rows(session)

    def _keep_watchers(self, rows: list[ConnectorRow]) -> None:
        """A watcher for each enabled kind that watches, a listener for each that listens."""
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
                or self.started_as[f"{verb} {name}"] != _state(now)
            ):
                tasks.pop(name).cancel()
        for name, row in wanted.items():
            if name not in tasks:
                self.started_as[f"{verb} {name}"] = _state(row)
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


def _state(row: ConnectorRow) -> tuple[str, str, object]:
    """What a watcher or listener was built from: a change means starting it again."""
    return row.kind, repr(sorted((row.settings or {}).items())), row.secrets


async def scheduler_loop(hub: Hub) -> None:
    await Scheduler(hub).run()


def run_worker(hub: Hub) -> int:
    """`crmhub worker`: the scheduler without the web view (procrastinate comes with scale-out).

    SIGTERM (a service manager's stop) ends it like Ctrl-C: the scheduler is cancelled, so its
    listeners release their leases (hub.listener_lease) and another process takes over at
    once instead of after the lease went stale."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        loop.add_signal_handler(signal.SIGTERM, task.cancel)
        try:
            await optimize(hub.engine)
            await scheduler_loop(hub)
        except asyncio.CancelledError:
            log.info("crmhub worker stopped")
        finally:
            await hub.close()

    asyncio.run(main())
    return 0
