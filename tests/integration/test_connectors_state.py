"""storage.connectors_state on a real database (SQLite, or PostgreSQL in CI): a connector's
newest item and its items per day are ranges of its part of ix_sources_connector_time, not a
walk through the tables, a sync run is claimed by one caller at a time, and the repository's
reads give each caller the connectors it asks for, in the order it relies on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert

from hub.admin import add_connector, change_connector
from hub.bootstrap import Hub
from storage.connectors_state import (
    activity,
    beat_run,
    claim_run,
    connector_exists,
    connector_names,
    connector_row,
    connector_rows,
    enabled_rows,
    end_run,
    kinds_and_settings,
    settings_by_name,
)
from storage.maintenance import optimize
from storage.tables import ConnectorRow, InteractionRow, SourceRow
from tests.integration.test_query_plans import _plans
from tests.rows import item_row

NOW = datetime(2025, 3, 15, 12, 0, tzinfo=UTC)
DAYS = [NOW.replace(hour=0) - timedelta(days=n) for n in range(13, -1, -1)]
CONNECTORS = ("mail", "calls", "calendar", "archive")
PER_CONNECTOR = 1_500  # one item every 4 hours: 250 days back from NOW


async def _fill(hub: Hub) -> None:
    items, sources = [], []
    for c, connector in enumerate(CONNECTORS):
        for k in range(PER_CONNECTOR):
            n = c * PER_CONNECTOR + k + 1
            at = NOW - timedelta(hours=4 * k, minutes=c)
            items.append(item_row(n, at))
            sources.append(
                {"interaction_id": n, "connector": connector, "external_id": f"e{n}",
                 "owner": "", "visibility": "full", "occurred_at": at}
            )  # fmt: skip
    # A meeting to come: not the newest item seen, and counted on no past day.
    items.append(item_row(len(items) + 1, NOW + timedelta(days=3)))
    sources.append(
        {"interaction_id": len(items), "connector": "calendar", "external_id": "future",
         "owner": "", "visibility": "full", "occurred_at": NOW + timedelta(days=3)}
    )  # fmt: skip
    async with hub.sessions() as session, session.begin():
        await session.execute(insert(InteractionRow), items)
        await session.execute(insert(SourceRow), sources)
    await optimize(hub.engine)
    if hub.engine.dialect.name == "postgresql":
        async with hub.engine.connect() as connection:
            await connection.exec_driver_sql("ANALYZE")
            await connection.commit()


async def test_newest_item_and_items_per_day_are_ranges_of_one_connector(hub: Hub) -> None:
    await _fill(hub)
    found: list[Any] = []

    async def read(session: Any) -> None:
        found.append(await activity(session, "calendar", DAYS, NOW))

    plans = await _plans(hub, read)
    (seen,) = found
    # Every 4 hours from NOW - 2 min: six a day, and the two of today before noon, plus NOW's.
    assert seen.per_day == (6,) * 13 + (3,), seen
    assert seen.newest == NOW - timedelta(minutes=2)
    statements = [plan for sql, plan in plans.plans if "FROM sources" in sql]
    assert len(statements) == len(plans.plans) == 2, plans.plans
    for plan in statements:
        assert "ix_sources_connector_time" in plan, plan
        assert "SCAN" not in plan and "Seq Scan" not in plan, plan
        assert "TEMP B-TREE" not in plan and '"Sort"' not in plan, plan


async def test_a_run_is_claimed_by_one_caller_until_it_ends_or_stops_beating(hub: Hub) -> None:
    await add_connector(hub, "mbox", "mail", {"path": "/nowhere.mbox"}, {})
    later = NOW + timedelta(seconds=5)

    async def claim(at: datetime, stale_before: datetime) -> bool:
        async with hub.sessions() as session, session.begin():
            return await claim_run(session, "mail", at, stale_before, {"fetched": 0})

    assert await claim(NOW, NOW - timedelta(seconds=60))
    assert not await claim(later, later - timedelta(seconds=60)), "one run at a time"
    async with hub.sessions() as session, session.begin():
        await beat_run(session, "mail", NOW, later, {"fetched": 7})
    assert not await claim(later, later - timedelta(seconds=60))
    # Its process died: no beat since `later`, and a minute has passed.
    gone = later + timedelta(seconds=61)
    assert await claim(gone, gone - timedelta(seconds=60))
    async with hub.sessions() as session, session.begin():
        await end_run(session, "mail", NOW, gone, {"fetched": 99})  # the dead run's: ignored
        row = await session.get(ConnectorRow, 1)
        assert row is not None and row.run_started_at == gone and row.run_ended_at is None
        assert row.run_progress == {"fetched": 0}
        await end_run(session, "mail", gone, gone, {"fetched": 3})
    assert await claim(gone, gone - timedelta(seconds=60)), "ended: the next one may start"
    async with hub.sessions() as session:
        assert not await claim_run(session, "no-such", NOW, NOW, {})


async def test_the_repository_reads_connectors_by_name_order_and_state(hub: Hub) -> None:
    """Added z, a, m (in that order), m disabled: listings go by name, syncs by the order the
    connectors were added, and only the enabled ones sync unasked."""
    for name, settings in (
        ("z-mail", {"path": "/z.mbox", "audit_reads": "on"}),
        ("a-send", {"host": "smtp.ourco.example", "owner": "anna@ourco.example"}),
        ("m-cal", {"path": "/m.ics"}),
    ):
        kind = {"z": "mbox", "a": "smtp", "m": "ics"}[name[0]]
        await add_connector(hub, kind, name, settings, {"password": "pw"} if kind == "smtp" else {})
    await change_connector(hub, "m-cal", {}, enabled=False)
    async with hub.sessions() as session:
        assert [r.name for r in await connector_rows(session)] == ["a-send", "m-cal", "z-mail"]
        assert [r.name for r in await enabled_rows(session)] == ["z-mail", "a-send"]
        assert await connector_names(session, enabled_only=True) == ["z-mail", "a-send"]
        assert await connector_names(session, enabled_only=False) == ["z-mail", "a-send", "m-cal"]
        assert await connector_exists(session, "m-cal")
        assert not await connector_exists(session, "M-CAL")
        found = await connector_row(session, "a-send")
        assert found is not None and found.kind == "smtp" and found.secrets
        assert await connector_row(session, "gone") is None
    async with hub.reads() as session:
        assert (await settings_by_name(session))["z-mail"]["audit_reads"] == "on"
        assert await kinds_and_settings(session) == [
            ("a-send", "smtp", {"host": "smtp.ourco.example", "owner": "anna@ourco.example"}),
            ("m-cal", "ics", {"path": "/m.ics"}),
            ("z-mail", "mbox", {"path": "/z.mbox", "audit_reads": "on"}),
        ]
