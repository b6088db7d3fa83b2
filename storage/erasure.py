"""Erasing one person (a data-subject request): the writes, in the caller's one transaction.

The hub decides which of the person's items go and which stay for their other outside parties
(hub.privacy); here those items are deleted (storage.deletion) or redacted, and every other
trace is removed: review questions and ignore-keys, quarantined raw items, blocklist entries,
contact records, the person's identifiers in audit entries. What is left of them is a keyed
hash per identifier (erased_identities), so that ingest can refuse them again.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage import directory_search
from storage.deletion import (
    blobs_of,
    chunked,
    delete_items,
    delete_quarantined,
    delete_unreferenced_blobs,
)
from storage.directory import bump_version
from storage.fulltext import reindex_items
from storage.mentions import ERASED, Mentions
from storage.packing import unpack
from storage.tables import (
    AttachmentRow,
    AttributionRow,
    AuditRow,
    BlobRow,
    BlocklistRow,
    CallNoteRow,
    CallPartiesRow,
    ContactEmailRow,
    ContactPhoneRow,
    ContactRow,
    ErasedIdentityRow,
    InteractionRow,
    MeetingReplyRow,
    MissedCallRow,
    ParticipantRow,
    QuarantineRow,
    ReviewIgnoredRow,
    ReviewItemRow,
    SourceRow,
)

SCAN = 1000  # rows per read where no index leads (review questions, the audit log)
RAW_SCAN = 50  # quarantined raw items decompressed per read
ERASED_LINK = "matched a person whose data was erased"


@dataclass(frozen=True)
class Subject:
    """The person: normalised addresses and numbers, contact ids, and how they are written."""

    keys: frozenset[str]
    contact_ids: frozenset[int]
    mentions: Mentions

    def participant(self) -> Any:
        """The condition on participants that are this person."""
        found = ParticipantRow.normalized.in_(self.keys)
        if self.contact_ids:
            return or_(found, ParticipantRow.contact_id.in_(self.contact_ids))
        return found


@dataclass
class Survey:
    """Rows outside the items that name the person, found by reading through and searching."""

    review_items: list[int]
    ignored: list[int]
    blocklist: list[int]
    quarantine: list[int]
    audit: list[int]


@dataclass
class ErasureCounts:
    items_deleted: int = 0
    items_redacted: int = 0
    contacts_deleted: int = 0
    review_questions_removed: int = 0
    quarantined_removed: int = 0
    blocklist_entries_removed: int = 0
    audit_entries_redacted: int = 0
    blobs_deleted: int = 0

    def as_json(self) -> dict[str, int]:
        return asdict(self)


async def survey(session: AsyncSession, subject: Subject) -> Survey:
    m = subject.mentions
    review = []
    async for row in _scan(
        session,
        ReviewItemRow.id,
        ReviewItemRow.key,
        ReviewItemRow.name,
        ReviewItemRow.reason,
        ReviewItemRow.candidates,
    ):
        id_, key, name, reason, candidates = row
        if (
            key in subject.keys
            or any(map(m.in_text, (key, name, reason)))
            or subject.contact_ids.intersection(candidates or ())
        ):
            review.append(id_)
    ignored = await session.execute(
        select(ReviewIgnoredRow.id).where(ReviewIgnoredRow.key.in_(subject.keys))
    )
    blocked = [
        id_
        for id_, entry, user in await session.execute(
            select(BlocklistRow.id, BlocklistRow.entry, BlocklistRow.user)
        )
        if entry in subject.keys or m.in_text(entry) or m.in_text(user)
    ]
    audit = [
        row[0]
        async for row in _scan(
            session, AuditRow.id, AuditRow.actor, AuditRow.target, AuditRow.before, AuditRow.after
        )
        if any(map(m.in_value, row[1:]))
    ]
    return Survey(review, list(ignored.scalars()), blocked, await _quarantined(session, m), audit)


async def _scan(session: AsyncSession, *columns: Any) -> Any:
    """Every row of one table, in id order, SCAN at a time (the first column is the id)."""
    last = 0
    while True:
        rows = (
            await session.execute(
                select(*columns).where(columns[0] > last).order_by(columns[0]).limit(SCAN)
            )
        ).all()
        for row in rows:
            yield tuple(row)
        if len(rows) < SCAN:
            return
        last = rows[-1][0]


async def quarantined_mentioning(session: AsyncSession, mentions: Mentions) -> list[QuarantineRow]:
    """The quarantined items that mention the person (for an export)."""
    ids = await _quarantined(session, mentions)
    rows: list[QuarantineRow] = []
    for chunk in chunked(ids):
        found = await session.execute(select(QuarantineRow).where(QuarantineRow.id.in_(chunk)))
        rows.extend(found.scalars())
    return rows


async def _quarantined(session: AsyncSession, mentions: Mentions) -> list[int]:
    """Quarantine rows whose reason, id or raw bytes (decompressed) mention the person."""
    found = []
    last = 0
    while True:
        rows = (
            await session.execute(
                select(
                    QuarantineRow.id,
                    QuarantineRow.external_id,
                    QuarantineRow.reason,
                    BlobRow.data,
                )
                .outerjoin(BlobRow, BlobRow.id == QuarantineRow.raw_blob_id)
                .where(QuarantineRow.id > last)
                .order_by(QuarantineRow.id)
                .limit(RAW_SCAN)
            )
        ).all()
        for id_, external_id, reason, data in rows:
            if (
                mentions.in_text(external_id)
                or mentions.in_text(reason)
                or (data is not None and mentions.in_bytes(unpack(data)))
            ):
                found.append(id_)
        if len(rows) < RAW_SCAN:
            return found
        last = rows[-1][0]


async def erase(
    session: AsyncSession,
    subject: Subject,
    found: Survey,
    doomed: Collection[int],
    redacted: Collection[int],
    digests: Collection[str],
    now: datetime,
) -> ErasureCounts:
    """Delete `doomed`, redact `redacted`, remove what `found` lists, forget the contacts,
    and keep `digests` (keyed hashes of the identifiers) as erased at `now`."""
    counts = ErasureCounts()
    for chunk in chunked(redacted):
        counts.items_redacted += len(chunk)
        counts.blobs_deleted += await _redact(session, subject, chunk)
    deleted = await delete_items(session, doomed)
    counts.items_deleted = deleted.items
    counts.blobs_deleted += deleted.blobs
    await _unlink_attributions(session, subject)
    for table, ids in (
        (ReviewItemRow, found.review_items),
        (ReviewIgnoredRow, found.ignored),
        (BlocklistRow, found.blocklist),
    ):
        for chunk in chunked(ids):
            await session.execute(delete(table).where(table.id.in_(chunk)))
    counts.review_questions_removed = len(found.review_items) + len(found.ignored)
    counts.blocklist_entries_removed = len(found.blocklist)
    quarantined = await delete_quarantined(session, found.quarantine)
    counts.quarantined_removed = quarantined.items
    counts.blobs_deleted += quarantined.blobs
    counts.contacts_deleted = await _forget_contacts(session, subject.contact_ids)
    counts.audit_entries_redacted = await _redact_audit(session, subject.mentions, found.audit)
    await _remember(session, digests, now)
    return counts


async def _redact(session: AsyncSession, subject: Subject, ids: list[int]) -> int:
    """Keep these items for their other parties: the person's participant rows anonymised;
    body, snippet, raw message and attachments removed; text that names them replaced, and
    the items indexed anew, so that no search finds them by the words removed."""
    m = subject.mentions
    blobs = await blobs_of(session, ids)
    await session.execute(delete(AttachmentRow).where(AttachmentRow.interaction_id.in_(ids)))
    # What agents wrote about the calls, the calls' number pair (kept to join one call from two
    # systems), their missed-call reminders and a reply mail's kept answer are about the
    # person, like the body: gone.
    for table in (CallNoteRow, CallPartiesRow, MissedCallRow, MeetingReplyRow):
        await session.execute(delete(table).where(table.interaction_id.in_(ids)))
    await session.execute(
        update(ParticipantRow)
        .where(ParticipantRow.interaction_id.in_(ids), subject.participant())
        .values(address=ERASED, normalized=None, name="", contact_id=None, rdomain=None)
        .execution_options(synchronize_session=False)
    )
    rows = await session.execute(
        select(
            InteractionRow.id,
            InteractionRow.subject,
            InteractionRow.dedupe_key,
            InteractionRow.message_id,
            InteractionRow.thread_id,
            InteractionRow.in_reply_to,
            InteractionRow.references,
            InteractionRow.extra,
        ).where(InteractionRow.id.in_(ids))
    )
    for id_, text, dedupe_key, message_id, thread_id, in_reply_to, references, extra in rows:
        await session.execute(
            update(InteractionRow)
            .where(InteractionRow.id == id_)
            .values(
                body=None,
                snippet="",
                raw_blob_id=None,
                subject=ERASED if m.in_text(text) else text,
                dedupe_key=f"erased:{id_}" if m.in_text(dedupe_key) else dedupe_key,
                message_id=None if m.in_text(message_id) else message_id,
                thread_id=None if m.in_text(thread_id) else thread_id,
                in_reply_to=[r for r in in_reply_to or [] if not m.in_text(r)],
                references=[r for r in references or [] if not m.in_text(r)],
                extra={k: v for k, v in m.scrub(extra or {}).items() if k != "notes"},
            )
            .execution_options(synchronize_session=False)
        )
    sources = await session.execute(
        select(SourceRow.id, SourceRow.external_id).where(SourceRow.interaction_id.in_(ids))
    )
    for source_id, external_id in sources:
        if m.in_text(external_id):
            await session.execute(
                update(SourceRow)
                .where(SourceRow.id == source_id)
                .values(external_id=f"erased:{source_id}")
            )
    await reindex_items(session, ids)
    await _scrub_attributions(session, subject, AttributionRow.interaction_id.in_(ids))
    return await delete_unreferenced_blobs(session, blobs)


async def _unlink_attributions(session: AsyncSession, subject: Subject) -> None:
    """Links of other items to the person's contact records (manual ones, say) lose the
    contact and any explanation that names them; the link to the company stays."""
    if subject.contact_ids:
        await _scrub_attributions(
            session, subject, AttributionRow.contact_id.in_(subject.contact_ids)
        )


async def _scrub_attributions(session: AsyncSession, subject: Subject, where: Any) -> None:
    rows = await session.execute(
        select(AttributionRow.id, AttributionRow.contact_id, AttributionRow.explanation).where(
            where
        )
    )
    for id_, contact_id, explanation in rows:
        if contact_id in subject.contact_ids or subject.mentions.in_text(explanation):
            await session.execute(
                update(AttributionRow)
                .where(AttributionRow.id == id_)
                .values(
                    contact_id=None if contact_id in subject.contact_ids else contact_id,
                    explanation=ERASED_LINK,
                )
            )


async def _forget_contacts(session: AsyncSession, contact_ids: Collection[int]) -> int:
    if not contact_ids:
        return 0
    ids = sorted(contact_ids)
    await session.execute(delete(ContactEmailRow).where(ContactEmailRow.contact_id.in_(ids)))
    await session.execute(delete(ContactPhoneRow).where(ContactPhoneRow.contact_id.in_(ids)))
    done = await session.execute(delete(ContactRow).where(ContactRow.id.in_(ids)))
    await directory_search.refresh(session, contacts=ids)
    await bump_version(session)  # every process's IdentityIndex forgets them
    return int(getattr(done, "rowcount", 0) or 0)


async def _redact_audit(session: AsyncSession, mentions: Mentions, ids: list[int]) -> int:
    """The entries stay (the log is append-only in every other respect); the person's
    identifiers in them are replaced."""
    for chunk in chunked(ids):
        rows = await session.execute(
            select(
                AuditRow.id, AuditRow.actor, AuditRow.target, AuditRow.before, AuditRow.after
            ).where(AuditRow.id.in_(chunk))
        )
        for id_, actor, target, before, after in rows:
            await session.execute(
                update(AuditRow)
                .where(AuditRow.id == id_)
                .values(
                    actor=mentions.scrub(actor),
                    target=mentions.scrub(target),
                    before=mentions.scrub(before or {}),
                    after=mentions.scrub(after or {}),
                )
            )
    return len(ids)


async def _remember(session: AsyncSession, digests: Collection[str], now: datetime) -> None:
    known = set(
        (
            await session.execute(
                select(ErasedIdentityRow.digest).where(ErasedIdentityRow.digest.in_(digests))
            )
        ).scalars()
    )
    if known:
        await session.execute(
            update(ErasedIdentityRow)
            .where(ErasedIdentityRow.digest.in_(known))
            .values(erased_at=now)
        )
    session.add_all(
        ErasedIdentityRow(digest=digest, erased_at=now)
        for digest in sorted(digests)
        if digest not in known
    )
    await session.flush()
