"""Attendees' answers from iMIP replies by mail (hub.meeting_replies), kept for the meetings
they answer, whichever arrives first.

A reply mail is often synced before the calendar that holds its meeting, or before the
meeting's revision it answers; and a revision replaces the answers a calendar gives as a
whole (storage.meeting_revision). So every reply is kept (`meeting_replies`, one row per
answer, deleted with its mail), applied when it arrives (`apply_reply`), and applied again
whenever a meeting of its UID is stored or revised (`answer_from_replies`, a range of the
table's UID index per batch). Either way only the sender's own answer counts (the hub keeps
no other), for an attendee the meeting names, and never for an older SEQUENCE than the
meeting holds (RFC 5546 3.2.3).

Which is newer when both speak of the same SEQUENCE follows the order of arrival: a reply that
arrives after the meeting wins over the answer the meeting gives; a meeting copy that arrives
after the reply keeps the answer it gives, and takes the reply's only where it knows none
(none at all, or needs-action). A calendar that has processed a later answer than the mail
therefore never has it undone, and one that processes no mail loses none.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from storage.meeting_revision import sequence_of
from storage.tables import InteractionRow, MeetingReplyRow
from storage.upsert import CHUNK, stored_ids

UNANSWERED = "needs-action"
_MEETING_KEY = "ics:"  # connectors/calendar.py: dedupe key and thread of every meeting


@dataclass(frozen=True)
class Reply:
    """One attendee's answer by mail to the series `uid` (`occurrence` None) or to one of its
    occurrences (`occurrence` as in the meeting's dedupe key), for revision `sequence`."""

    uid: str
    occurrence: str | None
    sequence: int
    address: str  # lower-case
    answer: str  # PARTSTAT, lower-case
    sent_at: datetime


async def keep_replies(session: AsyncSession, replies: Iterable[tuple[str, Reply]]) -> None:
    """Keep each reply (with the dedupe key of its stored mail) for the meetings that arrive
    or change after it. A reply kept already (a re-sync, the mail in two mailboxes) stays."""
    replies = list(replies)
    mails = await stored_ids(
        session, InteractionRow.__table__, "dedupe_key", sorted({key for key, _ in replies})
    )
    rows = [
        {
            "interaction_id": mails[key],
            "uid": reply.uid[:512],
            "occurrence": None if reply.occurrence is None else reply.occurrence[:512],
            "sequence": reply.sequence,
            "address": reply.address[:320],
            "answer": reply.answer[:32],
            "sent_at": reply.sent_at,
        }
        for key, reply in replies
        if key in mails
    ]
    if not rows:
        return
    connection = await session.connection()
    into = pg_insert if connection.dialect.name == "postgresql" else sqlite_insert
    await connection.execute(into(MeetingReplyRow.__table__).on_conflict_do_nothing(), rows)


async def apply_reply(session: AsyncSession, reply: Reply) -> list[int]:
    """Record a reply that has just arrived on the stored meeting: its occurrence, or every
    stored occurrence of the series. Returns the items changed."""
    where = (
        InteractionRow.dedupe_key == f"{_MEETING_KEY}{reply.occurrence}"
        if reply.occurrence is not None
        else InteractionRow.thread_id == f"{_MEETING_KEY}{reply.uid}"
    )
    rows = (
        await session.execute(
            select(InteractionRow).where(where, InteractionRow.channel == "meeting")
        )
    ).scalars()
    return [row.id for row in rows if _answer(row, [reply], arrived_last=True)]


async def answer_from_replies(session: AsyncSession, item_ids: Iterable[int]) -> list[int]:
    """Give the meetings just stored or revised the answers of the replies kept for them;
    returns the items changed. Two index lookups per chunk of items: their thread (the UID)
    by primary key, then the UIDs' range of `ix_meeting_replies_uid`."""
    by_uid: dict[str, list[int]] = {}
    ids = sorted(set(item_ids))
    for start in range(0, len(ids), CHUNK):
        rows = await session.execute(
            select(InteractionRow.id, InteractionRow.thread_id).where(
                InteractionRow.id.in_(ids[start : start + CHUNK]),
                InteractionRow.channel == "meeting",
            )
        )
        for item_id, thread in rows:
            if thread and thread.startswith(_MEETING_KEY):
                by_uid.setdefault(thread.removeprefix(_MEETING_KEY), []).append(item_id)
    kept: dict[str, list[Reply]] = {}
    uids = sorted(by_uid)
    for start in range(0, len(uids), CHUNK):
        found = await session.scalars(
            select(MeetingReplyRow).where(MeetingReplyRow.uid.in_(uids[start : start + CHUNK]))
        )
        for r in found:
            reply = Reply(r.uid, r.occurrence, r.sequence, r.address, r.answer, r.sent_at)
            kept.setdefault(r.uid, []).append(reply)
    changed = []
    for uid, replies in kept.items():
        for item_id in by_uid[uid]:
            row = await session.get(InteractionRow, item_id)
            if row is not None and _answer(row, replies, arrived_last=False):
                changed.append(item_id)
    return changed


def _answer(row: InteractionRow, replies: list[Reply], *, arrived_last: bool) -> bool:
    """Set the answers `replies` give for this occurrence; whether anything changed.

    Per attendee the newest reply counts (higher SEQUENCE, then sent later). `arrived_last`:
    the replies came after the meeting's copy, and their answers win at its SEQUENCE;
    otherwise they only fill in what the copy does not know (module docstring)."""
    extra = dict(row.extra or {})
    held = sequence_of(extra)
    occurrence = row.dedupe_key.removeprefix(_MEETING_KEY)
    named = {p.address.lower() for p in row.participants}
    newest: dict[str, Reply] = {}
    for reply in sorted(replies, key=lambda r: (r.sequence, r.sent_at)):
        if (
            reply.sequence >= held
            and reply.address in named
            and reply.occurrence in (None, occurrence)
        ):
            newest[reply.address] = reply
    known = dict(extra.get("answers") or {})
    given = {
        address: reply.answer
        for address, reply in newest.items()
        if arrived_last or reply.sequence > held or known.get(address, UNANSWERED) == UNANSWERED
    }
    if all(known.get(address) == answer for address, answer in given.items()):
        return False
    extra["answers"] = {**known, **given}
    row.extra = extra
    return True
