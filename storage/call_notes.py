"""Call notes: what an agent wrote about a call and the outcome word they chose.

A note stays with its call (deleted with it), in the order written, with its author and time.
Its words are the call's words: the call is re-indexed with its notes in the full-text body
(storage.fulltext.reindex_items), which callers who may read a call's notes search
(hub.policy.shows_body: the call center from SUBJECT on). The latest outcome and note are
also kept on the call (`extra["notes"]`), so that a timeline row shows them without another
query per row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.fulltext import reindex_items
from storage.tables import CallNoteRow, InteractionRow

# What happened, in the words a call center reports by: a short fixed list, so that outcomes
# can be counted and filtered; anything else goes into the note's text.
OUTCOMES = ("reached", "callback", "voicemail", "wrong-number", "not-interested", "order")
MAX_TEXT = 4000  # characters; a note, not a transcript
SUMMARY = 140  # characters of the latest note kept on the call for timeline rows


class BadNote(ValueError):
    """The note cannot be stored as given; the message says which field and why."""


@dataclass(frozen=True, slots=True)
class CallNote:
    id: int
    interaction_id: int
    author: str
    written_at: datetime
    outcome: str
    text: str

    def as_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "author": self.author,
            "written_at": self.written_at.isoformat(),
            "outcome": self.outcome,
            "text": self.text,
        }


def checked(outcome: object, text: object) -> tuple[str, str]:
    """The outcome and text as stored: the outcome one of OUTCOMES or empty, the text trimmed,
    at most MAX_TEXT; at least one of them given."""
    if not isinstance(outcome, str) or not isinstance(text, str):
        raise BadNote("outcome and text must be strings")
    outcome, text = outcome.strip().lower(), text.strip()
    if outcome and outcome not in OUTCOMES:
        raise BadNote(f"outcome: {outcome[:40]!r} is not one of {', '.join(OUTCOMES)}")
    if len(text) > MAX_TEXT:
        raise BadNote(f"text: {len(text)} characters; a note holds at most {MAX_TEXT}")
    if not outcome and not text:
        raise BadNote("give an outcome, a text, or both")
    return outcome, text


async def add_note(
    session: AsyncSession, interaction_id: int, author: str, outcome: str, text: str
) -> CallNote:
    """Store a checked note (see `checked`) in the caller's transaction, keep the call's
    summary, and index the note's words with the call."""
    row = CallNoteRow(
        interaction_id=interaction_id,
        author=author,
        written_at=datetime.now(UTC),
        outcome=outcome,
        text=text,
    )
    session.add(row)
    await session.flush()
    extra = await session.scalar(
        select(InteractionRow.extra).where(InteractionRow.id == interaction_id)
    )
    summary = {"count": await _count(session, interaction_id), "outcome": outcome}
    summary["text"] = text[:SUMMARY]
    await session.execute(
        update(InteractionRow)
        .where(InteractionRow.id == interaction_id)
        .values(extra={**(extra or {}), "notes": summary})
    )
    await reindex_items(session, [interaction_id])
    return _note(row)


async def _count(session: AsyncSession, interaction_id: int) -> int:
    counted = await session.scalar(
        select(func.count()).where(CallNoteRow.interaction_id == interaction_id)
    )
    return int(counted or 0)


async def notes_of(session: AsyncSession, interaction_id: int) -> list[CallNote]:
    """The call's notes, oldest first (a range of ix_call_notes_item)."""
    rows = await session.execute(
        select(CallNoteRow)
        .where(CallNoteRow.interaction_id == interaction_id)
        .order_by(CallNoteRow.id)
    )
    return [_note(r) for r in rows.scalars()]


def _note(row: CallNoteRow) -> CallNote:
    return CallNote(row.id, row.interaction_id, row.author, row.written_at, row.outcome, row.text)
