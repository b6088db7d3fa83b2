"""Deleting stored items: the one mechanism behind erasure, retention and the blocklist.

An item goes with everything that belongs to it (participants, attributions, sources,
attachments, review questions). Blobs (raw messages, attachment bodies) are addressed by
content and shared, so a blob goes only when no item, attachment or quarantined item refers to
it any more. Every step is a lookup by id on an index, in chunks: deleting a few items from a
large database costs what those items cost. With SQLite's secure_delete (storage.db) the freed
bytes are zeroed, in the file and in the WAL.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Delete, Select, delete, exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.fulltext import forget_items
from storage.tables import (
    AttachmentRow,
    AttributionRow,
    BlobRow,
    InteractionRow,
    ParticipantRow,
    QuarantineRow,
    ReviewItemRow,
    SourceRow,
)

CHUNK = 500  # ids per statement; each is an IN (...) list on an indexed column

# The tables whose rows belong to one item, deleted with it; the item's full-text entry goes
# too (storage.fulltext: on SQLite an FTS5 table that no foreign key or cascade reaches).
ITEM_TABLES: tuple[Any, ...] = (
    ReviewItemRow,
    ParticipantRow,
    AttributionRow,
    SourceRow,
    AttachmentRow,
)


@dataclass
class DeletionCounts:
    items: int = 0
    blobs: int = 0

    def add(self, other: DeletionCounts) -> None:
        self.items += other.items
        self.blobs += other.blobs


def chunked(ids: Iterable[int], size: int = CHUNK) -> Iterator[list[int]]:
    ordered = sorted(set(ids))
    for start in range(0, len(ordered), size):
        yield ordered[start : start + size]


async def delete_items(session: AsyncSession, ids: Collection[int]) -> DeletionCounts:
    """Delete these items with all their rows, and the blobs only they referred to.

    Runs in the caller's transaction, so an erasure commits as one; retention and the blocklist
    call it with one chunk per transaction, so that syncs are never held up for long.
    """
    counts = DeletionCounts()
    for chunk in chunked(ids):
        blobs = await blobs_of(session, chunk)
        for table in ITEM_TABLES:
            await session.execute(delete(table).where(table.interaction_id.in_(chunk)))
        await forget_items(session, chunk)
        done = await session.execute(delete(InteractionRow).where(InteractionRow.id.in_(chunk)))
        counts.items += _rowcount(done)
        counts.blobs += await delete_unreferenced_blobs(session, blobs)
    return counts


async def blobs_of(session: AsyncSession, ids: list[int]) -> set[int]:
    """The raw and attachment blobs of these items."""
    raw = await session.execute(
        select(InteractionRow.raw_blob_id).where(
            InteractionRow.id.in_(ids), InteractionRow.raw_blob_id.is_not(None)
        )
    )
    attached = await session.execute(
        select(AttachmentRow.blob_id).where(
            AttachmentRow.interaction_id.in_(ids), AttachmentRow.blob_id.is_not(None)
        )
    )
    return {blob_id for blob_id in [*raw.scalars(), *attached.scalars()] if blob_id is not None}


async def delete_unreferenced_blobs(session: AsyncSession, blob_ids: Iterable[int]) -> int:
    """Delete those of `blob_ids` that no item, attachment or quarantined item refers to."""
    deleted = 0
    for chunk in chunked(blob_ids):
        deleted += _rowcount(await session.execute(unreferenced(chunk)))
    return deleted


def unreferenced(blob_ids: list[int]) -> Delete:
    """DELETE of those blobs that nothing refers to: each check is a lookup on the index of
    the referring column (tests/integration/test_deletion.py reads the plans)."""
    return delete(BlobRow).where(
        BlobRow.id.in_(blob_ids),
        ~exists().where(InteractionRow.raw_blob_id == BlobRow.id),
        ~exists().where(AttachmentRow.blob_id == BlobRow.id),
        ~exists().where(QuarantineRow.raw_blob_id == BlobRow.id),
    )


async def delete_quarantined(session: AsyncSession, ids: Collection[int]) -> DeletionCounts:
    """Delete quarantine rows, and the raw blobs only they referred to."""
    counts = DeletionCounts()
    for chunk in chunked(ids):
        blobs = await session.execute(
            select(QuarantineRow.raw_blob_id).where(
                QuarantineRow.id.in_(chunk), QuarantineRow.raw_blob_id.is_not(None)
            )
        )
        blob_ids = [blob_id for blob_id in blobs.scalars() if blob_id is not None]
        done = await session.execute(delete(QuarantineRow).where(QuarantineRow.id.in_(chunk)))
        counts.items += _rowcount(done)
        counts.blobs += await delete_unreferenced_blobs(session, blob_ids)
    return counts


async def items_older_than(
    session: AsyncSession, channel: str, cutoff: datetime, limit: int = CHUNK
) -> list[int]:
    """Up to `limit` ids of items of `channel` that happened before `cutoff`, oldest first
    (a range on ix_interactions_channel_occurred_at)."""
    return list((await session.execute(older_than(channel, cutoff, limit))).scalars())


def older_than(channel: str, cutoff: datetime, limit: int) -> Select[int]:
    return (
        select(InteractionRow.id)
        .where(InteractionRow.channel == channel, InteractionRow.occurred_at < cutoff)
        .order_by(InteractionRow.occurred_at)
        .limit(limit)
    )


def _rowcount(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)
