"""Deleting items (storage.deletion), the mechanism under erasure, retention and the blocklist:
an item goes with its rows, a shared blob only with its last reference, and every statement is
an index lookup on SQLite and PostgreSQL (the plans are read, not assumed)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.dialects import sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from hub.bootstrap import Hub
from hub.model import Quarantined, RawItem
from storage.audit import record
from storage.deletion import (
    ITEM_TABLES,
    delete_items,
    delete_quarantined,
    older_than,
    unreferenced,
)
from storage.erasure import Subject
from storage.mentions import Mentions
from storage.packing import unpack
from storage.privacy import items_with
from storage.tables import (
    AttachmentRow,
    AuditRow,
    BlobRow,
    InteractionRow,
    ParticipantRow,
    QuarantineRow,
    ReviewItemRow,
    SourceRow,
)
from tests.integration.person import ADDRESS, ATTACHMENT_PHRASE, store_person


async def _ids(hub: Hub) -> dict[str, int]:
    async with hub.sessions() as session:
        rows = await session.execute(select(InteractionRow.subject, InteractionRow.id))
        return {subject.split()[0]: id_ for subject, id_ in rows}


async def _count(session: AsyncSession, table: Any, *where: Any) -> int:
    query = select(func.count()).select_from(table)
    return int((await session.execute(query.where(*where) if where else query)).scalar_one())


async def test_an_item_goes_with_its_rows_and_a_shared_blob_with_its_last_reference(
    hub: Hub, tmp_path: Path
) -> None:
    await store_person(hub, tmp_path)
    ids = await _ids(hub)
    first = ids["Befund"]
    async with hub.sessions() as session:
        (attachment_blob,) = (
            await session.execute(
                select(AttachmentRow.blob_id).where(AttachmentRow.interaction_id == first)
            )
        ).scalars()
        content = unpack(
            (
                await session.execute(select(BlobRow.data).where(BlobRow.id == attachment_blob))
            ).scalar_one()
        )
    assert ATTACHMENT_PHRASE.encode() in content
    # The same bytes quarantined elsewhere: one blob, now referenced twice.
    await hub.store.ingest("mail", [], [Quarantined(RawItem("copy", content), "test")], {})
    async with hub.sessions() as session, session.begin():
        record(session, "anna@ourco.example", "attribution.set", interaction_id=first)
        counts = await delete_items(session, [first, 999_999])
    assert (counts.items, counts.blobs) == (1, 1)  # the raw mail; the attachment stays
    async with hub.sessions() as session:
        for table in ITEM_TABLES:
            assert await _count(session, table, table.interaction_id == first) == 0
        assert await _count(session, InteractionRow, InteractionRow.id == first) == 0
        assert await _count(session, BlobRow, BlobRow.id == attachment_blob) == 1
        audit = (await session.execute(select(AuditRow.interaction_id))).scalars().all()
        assert None in audit and first not in audit
        (quarantined,) = (
            await session.execute(
                select(QuarantineRow.id).where(QuarantineRow.raw_blob_id == attachment_blob)
            )
        ).scalars()
    async with hub.sessions() as session, session.begin():
        gone = await delete_quarantined(session, [quarantined])
    assert (gone.items, gone.blobs) == (1, 1)
    async with hub.sessions() as session:
        assert await _count(session, BlobRow, BlobRow.id == attachment_blob) == 0
        assert await _count(session, InteractionRow) == 4
        assert await _count(session, ReviewItemRow) == 3


async def test_every_lookup_is_an_index_lookup(hub: Hub, tmp_path: Path) -> None:
    await store_person(hub, tmp_path)
    subject = Subject(frozenset({ADDRESS}), frozenset({1, 2}), Mentions.of([]))
    statements = {
        "blobs": unreferenced([1, 2]),
        "retention": older_than("call", datetime(2024, 1, 1, tzinfo=UTC), 500),
        "person": select(ParticipantRow.interaction_id).where(subject.participant()),
        **{
            table.__tablename__: delete(table).where(table.interaction_id.in_([1, 2]))
            for table in ITEM_TABLES
        },
        "their sources": select(SourceRow.id, SourceRow.owner).where(
            SourceRow.interaction_id.in_([1, 2])
        ),
    }
    async with hub.sessions() as session, session.begin():
        plans = {name: await _plan(session, s) for name, s in statements.items()}
        assert await items_with(session, [ADDRESS], [1]), "the statement finds her items"
    for name, plan in plans.items():
        assert "SCAN" not in plan and "Seq Scan" not in plan, f"{name}:\n{plan}"
    for index in ("ix_interactions_raw_blob_id", "ix_attachments_blob_id", "ix_quarantine_raw"):
        assert index in plans["blobs"], plans["blobs"]
    assert "ix_interactions_channel_occurred_at" in plans["retention"], plans["retention"]
    assert "ix_participants_normalized" in plans["person"], plans["person"]
    assert "ix_participants_contact_timeline" in plans["person"], plans["person"]


async def _plan(session: AsyncSession, statement: Any) -> str:
    """The query plan of `statement` with its own parameters: EXPLAIN QUERY PLAN on SQLite;
    EXPLAIN on PostgreSQL with sequential scans priced out, so that a missing index shows as
    a Seq Scan even on tables this small."""
    connection = await session.connection()
    options = {"render_postcompile": True}
    if connection.dialect.name == "sqlite":
        compiled = statement.compile(
            dialect=sqlite.dialect(paramstyle="named"), compile_kwargs=options
        )
        params = {
            k: v.replace(tzinfo=None).isoformat(" ") if isinstance(v, datetime) else v
            for k, v in compiled.params.items()
        }
        rows = await connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}", params)
        return "\n".join(str(row[-1]) for row in rows)
    await connection.exec_driver_sql("SET LOCAL enable_seqscan = off")
    compiled = statement.compile(dialect=connection.dialect, compile_kwargs=options)
    rows = await connection.exec_driver_sql(f"EXPLAIN {compiled}", compiled.params)
    return "\n".join(str(row[0]) for row in rows)
