"""Planner statistics kept fresh: at the start of a long-running process and after large ingests.

Both databases choose a read path's index by their statistics (issue 18). PostgreSQL's
autovacuum gathers them on its own; SQLite only when told to, and without them it planned a
95-item account's timeline as a walk over half the interactions table.
"""

from __future__ import annotations

import logging
import time

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

log = logging.getLogger(__name__)

# New items in one sync run from which the statistics are refreshed at its end. Measured on a
# 1,000,000-item SQLite file: the refresh took 3-7 ms (13-56 ms on a new connection), storing
# 1,000 items takes about a second.
LARGE_INGEST = 1_000
# Rows SQLite's ANALYZE samples per index. Measured on 1,000,000 items (SQLite 3.40.1): 7 ms
# against 2.3 s for a full ANALYZE; the timeline indexes' rows per key came out as the full one's
# (account 91 against 100, contact 10 and 20 as 10 and 20), the table sizes at 0.4-1.2x.
ANALYSIS_LIMIT = 1_000
_SQLITE = (f"PRAGMA analysis_limit={ANALYSIS_LIMIT}", "ANALYZE")
# autovacuum_analyze_scale_factor's default: the growth at which PostgreSQL re-analyses by itself.
POSTGRES_GROWTH = 0.1
# What a sync writes and the read paths plan on.
INGESTED_TABLES = ("interactions", "attributions", "participants", "sources")
_ANALYSED_ROWS = "SELECT reltuples FROM pg_class WHERE oid = 'interactions'::regclass"


async def optimize(engine: AsyncEngine) -> None:
    """At the start of a long-running process (serve, worker): statistics for SQLite's planner.

    This is the ANALYZE that `PRAGMA optimize` runs when it decides to, bounded as it bounds it.
    `PRAGMA optimize` itself is not used: before SQLite 3.46 it decides from the queries its
    own connection has run, so on a fresh connection it does nothing (measured on 3.40.1, the
    version Debian 12 ships: no sqlite_stat1 after it, even on 1,000,000 items). On PostgreSQL
    this does nothing: autovacuum keeps the statistics.
    """
    if engine.dialect.name == "sqlite":
        await _analyze(engine, _SQLITE, "at start")


async def after_ingest(engine: AsyncEngine, new_items: int) -> bool:
    """After a sync run: refresh the statistics if it stored LARGE_INGEST items or more.

    On PostgreSQL only once the ingest grew the interactions table by a tenth, the change at
    which autovacuum would analyse it within its next minute anyway: analysing the tables a sync
    writes costs 1.8-3.8 s there at 1,000,000 items (measured), a waste after 1,000 more. What it
    buys is the first import into an empty database, planned on statistics of its real size
    instead of an empty table's. Returns whether the statistics were refreshed.
    """
    if new_items < LARGE_INGEST:
        return False
    when = f"after {new_items} new items"
    if engine.dialect.name == "sqlite":
        return await _analyze(engine, _SQLITE, when)
    try:
        async with engine.connect() as connection:
            # Interactions at the last ANALYZE or VACUUM of them; -1 if never analysed.
            analysed = (await connection.exec_driver_sql(_ANALYSED_ROWS)).scalar_one()
    except DBAPIError as e:
        log.warning("planner statistics not refreshed %s: %s", when, e)
        return False
    if new_items < POSTGRES_GROWTH * float(analysed):
        return False
    return await _analyze(engine, (f"ANALYZE {', '.join(INGESTED_TABLES)}",), when)


async def _analyze(engine: AsyncEngine, statements: tuple[str, ...], when: str) -> bool:
    """Run the statements; a failure is logged, never raised: the statistics only speed reads
    up, and the sync or the server that asked has done its own work already."""
    started = time.perf_counter()
    try:
        async with engine.connect() as connection:
            for statement in statements:
                await connection.exec_driver_sql(statement)
            await connection.commit()
    except DBAPIError as e:
        log.warning("planner statistics not refreshed %s: %s", when, e)
        return False
    log.info(
        "planner statistics refreshed %s in %.0f ms", when, (time.perf_counter() - started) * 1000
    )
    return True
