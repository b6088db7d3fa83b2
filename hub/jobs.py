"""Who runs syncs: on the embedded default an in-process loop, one pass every sync_interval."""

from __future__ import annotations

import asyncio
import logging

from hub.bootstrap import Hub
from hub.pipeline import sync_all

log = logging.getLogger(__name__)


async def scheduler_loop(hub: Hub) -> None:
    """Sync all enabled connectors, then sleep; a failing pass is logged, never fatal."""
    while True:
        try:
            for report in await sync_all(hub):
                if report.new or report.errors:
                    log.info("sync %s: %s", report.connector, report.as_json())
        except Exception:  # a job edge: log and carry on with the next pass
            log.exception("scheduled sync failed")
        await asyncio.sleep(hub.settings.sync_interval)


def run_worker(hub: Hub) -> int:
    """`crmhub worker`: the scheduler without the web view (procrastinate comes with scale-out)."""

    async def main() -> None:
        try:
            await scheduler_loop(hub)
        finally:
            await hub.close()

    asyncio.run(main())
    return 0
