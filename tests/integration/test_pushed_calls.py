"""Pushed calls (webhooks, live PBX events) through `hub.pipeline.ingest_pushed`: stored like a
sync batch, found again by their native ids, and brought up to date when the source reports a
new state, without a late callback turning a finished call back to ringing.

The connector is the test-only kind of tests/integration/pushed_items.py, loaded by its dotted
path, reading one JSON call per item through the shared call translator; SQLite, or PostgreSQL
in CI.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from hub.admin import add_connector
from hub.bootstrap import Hub
from hub.model import RawItem
from hub.pipeline import ingest_pushed
from storage.tables import ConnectorRow, InteractionRow, NativeIdRow, SourceRow
from tests.integration.pushed_items import KIND, pushed


def _push(sid: str, status: str, seconds: int | None = None, **more: Any) -> RawItem:
    return pushed(
        "call",
        sid,
        "2026-12-01T09:30:00+00:00",
        "+4917612345678",
        "+49511123456",
        status=status,
        seconds=seconds,
        **more,
    )


async def _item(hub: Hub, native_id: str) -> tuple[int, str, dict[str, Any]]:
    async with hub.sessions() as session:
        row = (
            await session.execute(
                select(InteractionRow.id, InteractionRow.subject, InteractionRow.extra)
                .join(NativeIdRow, NativeIdRow.interaction_id == InteractionRow.id)
                .where(NativeIdRow.native_id == native_id)
            )
        ).one()
    return row.id, row.subject, row.extra


async def test_a_pushed_call_is_stored_under_the_connector_and_found_by_its_ids(hub: Hub) -> None:
    await add_connector(hub, KIND, "phones", {"owner": "anna@ourco.example"}, {})
    async with hub.sessions() as session, session.begin():
        row = await session.execute(select(ConnectorRow).where(ConnectorRow.name == "phones"))
        row.scalar_one().cursor = {"since": "kept"}

    report = await ingest_pushed(hub, "phones", [_push("CA1", "ringing", legs=["CA1-leg"])])
    assert (report.new, report.duplicates, report.errors) == (1, 0, 0)
    item, subject, extra = await _item(hub, "CA1")
    assert (await _item(hub, "CA1-leg"))[0] == item
    assert subject == "Call +4917612345678 → +49511123456 (ringing, 0:00)"
    assert extra["status"] == "ringing"
    async with hub.sessions() as session:
        owner = await session.scalar(select(SourceRow.owner).where(SourceRow.external_id == "CA1"))
        cursor = await session.scalar(
            select(ConnectorRow.cursor).where(ConnectorRow.name == "phones")
        )
    assert owner == "anna@ourco.example"
    assert cursor == {"since": "kept"}, "a push is not a position in the source"


async def test_a_new_state_updates_the_call_and_a_late_one_does_not_regress_it(hub: Hub) -> None:
    await add_connector(hub, KIND, "phones", {}, {})
    await ingest_pushed(hub, "phones", [_push("CA2", "in-progress")])
    report = await ingest_pushed(hub, "phones", [_push("CA2", "completed", 250)])
    assert (report.new, report.counts.updated) == (0, 1)
    _, subject, extra = await _item(hub, "CA2")
    assert subject == "Call +4917612345678 → +49511123456 (answered, 4:10)"
    assert extra["status"] == "completed"

    late = await ingest_pushed(hub, "phones", [_push("CA2", "ringing")])  # out of order
    again = await ingest_pushed(hub, "phones", [_push("CA2", "completed", 250)])  # twice
    assert late.new == again.new == 0
    assert (again.counts.updated, again.duplicates) == (0, 1)
    _, subject, extra = await _item(hub, "CA2")
    assert extra["status"] == "completed" and "4:10" in subject
    async with hub.sessions() as session:
        calls = await session.scalar(select(func.count()).select_from(InteractionRow))
    assert calls == 1
