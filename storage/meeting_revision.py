"""Revising a stored meeting occurrence that its source delivered anew (moved, re-invited,
answered, cancelled).

A meeting is keyed by UID and RECURRENCE-ID (connectors/calendar.py), so the same source id
delivering other content is the same occurrence changed by its organizer or its attendees; and
another source's first copy of it (the meeting in a second user's calendar) is the same
occurrence too, possibly at a newer revision than the first calendar has yet.
Unlike a call's revision (storage.ingest._revise) everything may change here: time, parties,
answers, place, text and the cancelled mark. Parties changing means the item's attributions
are decided again: matching already decided the new parties for this batch (the StoredItem),
and the stored links are replaced as re-matching replaces them (storage.rematch
`replace_automatic`, storage.review `replace_open`): manual links and tombstones win.

Every table that keeps a copy of the item's time for its index ranges (sources, participants,
attributions, review items, the full-text index) is moved with it, in the same transaction.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.fulltext import forget_items, reindex_items
from storage.packing import raw_digest, stored_body
from storage.rematch import replace_automatic
from storage.review import replace_open
from storage.tables import (
    AttributionRow,
    InteractionRow,
    ParticipantRow,
    ReviewItemRow,
    SourceRow,
)
from storage.upsert import CHUNK

if TYPE_CHECKING:
    from storage.ingest import StoredItem

# The keys of `extra` the shared calendar translator writes: a revision replaces them as a
# whole (an answer or the cancelled mark that is gone is gone); others (a call note's summary,
# what a hub step added) stay.
TRANSLATED_KEYS = frozenset({"location", "answers", "status", "sequence", "all_day"})


def sequence_of(extra: dict[str, Any]) -> int:
    """SEQUENCE as RFC 5545 3.8.7.4 reads a missing one: 0."""
    value = extra.get("sequence")
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def is_older(stored: dict[str, Any], delivered: dict[str, Any]) -> bool:
    """Whether a source's own new revision is older than the stored one (a calendar re-sent a
    stale copy, or two calendars disagree for a while): it must not overwrite it. An equal
    SEQUENCE is newer news: attendees' answers change without the organizer raising it."""
    return sequence_of(delivered) < sequence_of(stored)


def supersedes(stored: dict[str, Any], delivered: dict[str, Any]) -> bool:
    """Whether another source's first copy of a stored meeting (the same meeting in a second
    user's calendar, an ics file and Exchange) is a newer revision: only a higher SEQUENCE
    is. Two calendars' copies of one revision differ in what each knows of the answers, and
    nothing the translator keeps says which is newer (it reads neither DTSTAMP nor
    LAST-MODIFIED): the stored one stays until a source changes its own copy (`is_older`)."""
    return sequence_of(delivered) > sequence_of(stored)


async def revise_meetings(
    session: AsyncSession,
    connector: str,
    revised: list[tuple[int, StoredItem]],
    copies: list[tuple[int, StoredItem]],
) -> list[int]:
    """Bring the stored meetings up to date with their sources' new revisions (`revised`) and
    with other sources' first copies (`copies`) that are newer, whichever calendar delivers a
    revision first; returns the ids of the items changed (a stale one changes nothing)."""
    changed: list[int] = []
    for item_id, item, first_copy in [
        *((i, item, False) for i, item in revised),
        *((i, item, True) for i, item in await _newer_copies(session, copies)),
    ]:
        row = await session.get(InteractionRow, item_id)
        if row is None:
            continue
        stored, delivered = row.extra or {}, item.interaction.extra
        newer = supersedes(stored, delivered) if first_copy else not is_older(stored, delivered)
        if not newer:
            continue
        if _withdrawn(item):
            row.extra = {**(row.extra or {}), "status": "cancelled"}
        else:
            await forget_items(session, [item_id])  # keyed by the old time (SQLite)
            await _rewrite(session, row, item)
        await session.execute(
            update(SourceRow)
            .where(SourceRow.connector == connector, SourceRow.external_id == item.raw.external_id)
            .values(content_sha256=raw_digest(item.raw))
        )
        if not _withdrawn(item):
            await reindex_items(session, [item_id])
        changed.append(item_id)
    return changed


async def _newer_copies(
    session: AsyncSession, copies: list[tuple[int, StoredItem]]
) -> list[tuple[int, StoredItem]]:
    """The copies newer than what is stored, read in chunks: most copies are of a revision
    stored already (a meeting in the calendars of all its attendees), and a first sync of a
    second calendar must not read each of its meetings whole for nothing."""
    ids = sorted({item_id for item_id, _ in copies})
    stored: dict[int, dict[str, Any]] = {}
    for start in range(0, len(ids), CHUNK):
        rows = await session.execute(
            select(InteractionRow.id, InteractionRow.extra).where(
                InteractionRow.id.in_(ids[start : start + CHUNK])
            )
        )
        stored.update((item_id, extra or {}) for item_id, extra in rows)
    return [
        (item_id, item)
        for item_id, item in copies
        if supersedes(stored.get(item_id, {}), item.interaction.extra)
    ]


def _withdrawn(item: StoredItem) -> bool:
    """A cancellation that says nothing else: the event was deleted from a calendar, and all
    the source still knows is which occurrence it was (caldav yields it so). The meeting keeps
    its subject, time and customers, marked cancelled, and stays on their timelines; an
    organizer's CANCEL with its attendees is a revision like any other."""
    new = item.interaction
    return new.extra.get("status") == "cancelled" and not new.participants


async def _rewrite(session: AsyncSession, row: InteractionRow, item: StoredItem) -> None:
    new = item.interaction
    at: datetime = new.occurred_at
    kept = {k: v for k, v in (row.extra or {}).items() if k not in TRANSLATED_KEYS}
    row.subject = new.subject
    row.snippet = new.snippet
    row.body = stored_body(new)
    row.occurred_at = at
    row.ends_at = new.ends_at
    row.not_logged = item.not_logged[:200]
    row.extra = {**kept, **new.extra}
    row.participants = [
        ParticipantRow(
            role=p.role,
            kind=p.kind,
            address=p.address[:320],
            normalized=p.normalized,
            name=p.name[:300],
            contact_id=p.contact_id,
            rdomain=p.rdomain,
            occurred_at=at,
        )
        for p in item.participants
    ]
    await replace_automatic(session, row, item.attributions)
    await replace_open(session, row.id, item.review)
    await session.flush()
    for table in (SourceRow, AttributionRow, ReviewItemRow):
        await session.execute(
            update(table).where(table.interaction_id == row.id).values(occurred_at=at),
            execution_options={"synchronize_session": False},
        )
