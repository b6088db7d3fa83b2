"""Planner statistics (storage.maintenance): gathered at start on SQLite, after large ingests on
both databases, and left alone after small ones."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from config.settings import Settings
from hub.admin import add_connector
from hub.bootstrap import Hub, build_hub
from hub.pipeline import sync_all
from storage.maintenance import LARGE_INGEST, optimize
from tests.e2e.conftest import start_server, stop_server

DATA = Path(__file__).parent.parent / "data"
# One call record of tests/data; each copy gets a uniqueid of its own, so each is a new item.
CALL = (DATA / "Master.csv").read_text(encoding="utf-8").splitlines()[0]
INTERACTIONS_INDEXES = {
    "ix_interactions_occurred_at",
    "ix_interactions_channel_occurred_at",
    "ix_interactions_message_id",
    "ix_interactions_thread_id",
}


async def _statistics(engine: AsyncEngine) -> Any:
    """SQLite: the interactions indexes sqlite_stat1 describes (None without the table).
    PostgreSQL: when interactions were last analysed by request, not by autovacuum."""
    async with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            exists = "SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_stat1'"
            if not (await connection.exec_driver_sql(exists)).scalar_one():
                return None
            rows = "SELECT idx FROM sqlite_stat1 WHERE tbl = 'interactions'"
            return {row[0] for row in await connection.exec_driver_sql(rows)}
        when = "SELECT last_analyze FROM pg_stat_user_tables WHERE relname = 'interactions'"
        return (await connection.exec_driver_sql(when)).scalar_one()


async def _sync_calls(hub: Hub, path: Path, count: int) -> int:
    path.write_text(
        "".join(CALL.replace("1704808800.1", f"1704808800.{n}") + "\n" for n in range(count)),
        encoding="utf-8",
    )
    await add_connector(hub, "asterisk-cdr", "calls", {"path": str(path)}, {})
    (report,) = await sync_all(hub)
    return report.new


async def test_optimize_describes_the_interactions_indexes_to_sqlite(
    hub: Hub, tmp_path: Path
) -> None:
    assert await _sync_calls(hub, tmp_path / "Master.csv", 20) == 20
    before = await _statistics(hub.engine)
    await optimize(hub.engine)
    after = await _statistics(hub.engine)
    if hub.engine.dialect.name == "sqlite":
        assert before is None  # a small sync does not analyse
        assert after >= INTERACTIONS_INDEXES
    else:
        assert after == before  # autovacuum's work on PostgreSQL


async def test_a_large_ingest_refreshes_the_statistics(hub: Hub, tmp_path: Path) -> None:
    before = await _statistics(hub.engine)
    assert await _sync_calls(hub, tmp_path / "Master.csv", LARGE_INGEST) == LARGE_INGEST
    after = await _statistics(hub.engine)
    if hub.engine.dialect.name == "sqlite":
        assert before is None
        assert after >= INTERACTIONS_INDEXES
    else:
        assert after is not None and after != before


async def test_a_smaller_ingest_leaves_them(hub: Hub, tmp_path: Path) -> None:
    before = await _statistics(hub.engine)
    assert await _sync_calls(hub, tmp_path / "Master.csv", LARGE_INGEST - 1) == LARGE_INGEST - 1
    assert await _statistics(hub.engine) == before


async def test_serve_gathers_sqlite_statistics_at_start(settings: Settings, tmp_path: Path) -> None:
    """Always on an SQLite file: on PostgreSQL `serve` leaves statistics to autovacuum."""
    url = f"sqlite:///{tmp_path / 'served.db'}"
    hub = build_hub(settings.model_copy(update={"database_url": url}), migrate=True)
    try:
        assert await _sync_calls(hub, tmp_path / "calls.csv", 5) == 5
        assert await _statistics(hub.engine) is None
        server = start_server(url, tmp_path)
        try:
            deadline = time.monotonic() + 10
            while (found := await _statistics(hub.engine)) is None and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
        finally:
            stop_server(server)
        assert found is not None and found >= INTERACTIONS_INDEXES, server.output()
    finally:
        await hub.close()
