"""What ingest refuses, as stored: blocklist entries and the keyed hashes of erased identities
(read by hub.screening); and the removal of sources after a new entry.

Entries arrive normalised (matching.blocklist), and which stored items an entry blocks is
matching's decision; the candidates are found by the participant indexes
(storage.rematch.affected_by), never by a scan.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.deletion import chunked
from storage.tables import BlocklistRow, ErasedIdentityRow, SourceRow


@dataclass(frozen=True, slots=True)
class BlockEntry:
    entry: str
    user: str  # "" for admin-wide
    created_by: str
    created_at: datetime


async def add_entry(session: AsyncSession, entry: str, user: str, actor: str) -> bool:
    """Add an entry; False when it is there already."""
    found = await session.execute(
        select(BlocklistRow.id).where(BlocklistRow.entry == entry, BlocklistRow.user == user)
    )
    if found.first() is not None:
        return False
    session.add(BlocklistRow(entry=entry, user=user, created_by=actor, created_at=_now()))
    await session.flush()
    return True


async def remove_entry(session: AsyncSession, entry: str, user: str) -> bool:
    """Remove an entry; False when there was none."""
    done = await session.execute(
        delete(BlocklistRow).where(BlocklistRow.entry == entry, BlocklistRow.user == user)
    )
    return bool(getattr(done, "rowcount", 0))


async def entries(session: AsyncSession, user: str | None = None) -> list[BlockEntry]:
    """Every entry, or those of one user ("" for the admin-wide ones)."""
    query = select(BlocklistRow).order_by(BlocklistRow.user, BlocklistRow.entry)
    if user is not None:
        query = query.where(BlocklistRow.user == user)
    return [
        BlockEntry(row.entry, row.user, row.created_by, row.created_at)
        for row in (await session.execute(query)).scalars()
    ]


async def erased_digests(session: AsyncSession) -> dict[str, datetime]:
    """Keyed hash -> time of erasure, of every erased identity (a short list)."""
    rows = await session.execute(select(ErasedIdentityRow.digest, ErasedIdentityRow.erased_at))
    return {digest: erased_at for digest, erased_at in rows}


async def remove_sources(session: AsyncSession, source_ids: Collection[int]) -> int:
    removed = 0
    for chunk in chunked(source_ids):
        done = await session.execute(delete(SourceRow).where(SourceRow.id.in_(chunk)))
        removed += int(getattr(done, "rowcount", 0) or 0)
    return removed


def _now() -> datetime:
    return datetime.now(UTC)
