"""ingest(): one batch, one transaction: items, sources, attributions, quarantine and cursor.

Committing the cursor with the items it covers is what makes a crash at any point safe: the next
run starts after the last committed batch, and re-delivered items are recognised by
(connector, external_id) or by the interaction's dedupe key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hub.model import (
    Attachment,
    Attribution,
    Channel,
    Interaction,
    Quarantined,
    RawItem,
    ReviewCase,
)
from storage.blobs import Blob, store_blobs
from storage.call_merge import PARTY_COLUMNS, SameCall, party_rows, same_calls, wins
from storage.fulltext import ItemText, index_items, reindex_items
from storage.meeting_answers import answer_from_replies
from storage.meeting_revision import revise_meetings
from storage.missed_calls import follow_up
from storage.packing import (
    PackedAttachment,
    PackedRaw,
    attachment_digest,
    body_text,
    kept,
    raw_digest,
    stored_body,
)
from storage.review import open_cases
from storage.tables import (
    AttachmentRow,
    AttributionRow,
    CallPartiesRow,
    ConnectorRow,
    InteractionRow,
    NativeIdRow,
    ParticipantRow,
    QuarantineRow,
    SourceRow,
)
from storage.upsert import insert_new, insert_rows, stored_ids


@dataclass(frozen=True)
class MatchedParticipant:
    role: str
    kind: str
    address: str
    name: str
    normalized: str | None
    contact_id: int | None
    rdomain: str | None = None


@dataclass(frozen=True)
class StoredItem:
    """A translated item with matching's decision, ready to store."""

    raw: RawItem
    interaction: Interaction
    participants: list[MatchedParticipant]
    attributions: list[Attribution]
    direction: str
    not_logged: str
    review: list[ReviewCase] = field(default_factory=list)


@dataclass(frozen=True)
class Provenance:
    """Whose a connector's items are ("" for nobody's) and what others may see of them (its
    visibility cap): recorded on every new source (DESIGN.md "Who sees what")."""

    owner: str = ""
    visibility: str = "full"


@dataclass
class IngestCounts:
    new: int = 0
    duplicates: int = 0
    updated: int = 0
    matched: int = 0
    unmatched: int = 0
    quarantined: int = 0

    def demote(self, item: StoredItem) -> None:
        """`item` was counted as new, but turned out to be stored already."""
        self.new -= 1
        self.duplicates += 1
        if item.attributions:
            self.matched -= 1
        else:
            self.unmatched -= 1

    def add(self, other: IngestCounts) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass
class _Plan:
    """What the database already knows about this batch, and what the batch adds to it."""

    known_sources: set[str] = field(default_factory=set)
    by_key: dict[str, int] = field(default_factory=dict)
    new_items: dict[str, StoredItem] = field(default_factory=dict)
    sources: list[tuple[str, str, str]] = field(default_factory=list)  # key, external id, sha
    known_sha: dict[str, tuple[int, str]] = field(default_factory=dict)  # eid -> item, sha
    native_ids: list[tuple[str, str]] = field(default_factory=list)  # key, native id
    revised: list[tuple[int, StoredItem]] = field(default_factory=list)  # item id, new state
    copies: list[tuple[str, StoredItem]] = field(default_factory=list)  # key, another's meeting
    same_calls: dict[str, SameCall] = field(default_factory=dict)  # key -> another's call


class SqlInteractionStore:
    """Writes in bulk (one INSERT per table and batch): the ORM's unit of work cost 20x more."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions

    async def ingest(
        self,
        connector: str,
        items: list[StoredItem],
        quarantined: list[Quarantined],
        cursor: dict[str, Any] | None,
        provenance: Provenance = Provenance(),
    ) -> IngestCounts:
        """Store one batch and, unless `cursor` is None, the connector's new cursor with it.

        None leaves the cursor as it is: a mail sent through a connector that also syncs
        (exchange, m365) is logged outside its sync, whose cursor it must not move back."""
        counts = IngestCounts()
        async with self.sessions() as session, session.begin():
            plan = await self._plan(session, connector, items)
            for item in items:
                _sort(item, plan, counts)
            _join_same_calls(plan, items)
            blobs = await store_blobs(
                session,
                [_blob(i.raw) for i in plan.new_items.values()]
                + [_blob(q.raw) for q in quarantined]
                + [
                    _attachment_blob(a)
                    for i in plan.new_items.values()
                    for a in i.interaction.attachments
                    if kept(a)
                ],
            )
            source = (connector, provenance.owner, provenance.visibility)
            await self._insert(session, source, plan, blobs, counts)
            await self._quarantine(session, connector, provenance.owner, quarantined, blobs, counts)
            if items:  # in the batch's transaction: a crash cannot store calls without them
                await follow_up(session, connector, [i.raw.external_id for i in items])
            if cursor is not None:
                await session.execute(
                    update(ConnectorRow).where(ConnectorRow.name == connector).values(cursor=cursor)
                )
        return counts

    async def thread_accounts(self, message_ids: set[str]) -> dict[str, frozenset[int]]:
        """Accounts of the stored, logged messages with these Message-IDs (for the thread rule)."""
        found: dict[str, set[int]] = {}
        ids = sorted(message_ids)
        async with self.sessions() as session:
            for start in range(0, len(ids), 500):
                rows = await session.execute(
                    select(InteractionRow.message_id, AttributionRow.account_id)
                    .join(AttributionRow, AttributionRow.interaction_id == InteractionRow.id)
                    .where(
                        InteractionRow.message_id.in_(ids[start : start + 500]),
                        InteractionRow.not_logged == "",
                        AttributionRow.removed.is_(False),
                    )
                )
                for message_id, account_id in rows:
                    if message_id is None:  # cannot be: NULL is never IN (...)
                        continue
                    found.setdefault(message_id, set()).add(account_id)
        return {k: frozenset(v) for k, v in found.items()}

    async def _plan(self, session: AsyncSession, connector: str, items: list[StoredItem]) -> _Plan:
        plan = _Plan()
        ids = [i.raw.external_id for i in items]
        keys = [i.interaction.dedupe_key for i in items]
        for start in range(0, len(ids), 500):
            rows = await session.execute(
                select(
                    SourceRow.external_id, SourceRow.interaction_id, SourceRow.content_sha256
                ).where(
                    SourceRow.connector == connector,
                    SourceRow.external_id.in_(ids[start : start + 500]),
                )
            )
            for external_id, interaction_id, sha in rows:
                plan.known_sources.add(external_id)
                plan.known_sha[external_id] = (interaction_id, sha)
        plan.by_key.update(await stored_ids(session, InteractionRow.__table__, "dedupe_key", keys))
        unknown = [
            i
            for i in items
            if i.raw.external_id not in plan.known_sources
            and i.interaction.dedupe_key not in plan.by_key
        ]
        plan.same_calls = await same_calls(session, connector, unknown)
        for key, same in plan.same_calls.items():
            plan.by_key[key] = same.interaction_id
        return plan

    async def _insert(
        self,
        session: AsyncSession,
        source: tuple[str, str, str],
        plan: _Plan,
        blobs: dict[str, int],
        counts: IngestCounts,
    ) -> None:
        ids, inserted = await insert_new(
            session,
            InteractionRow.__table__,
            _INTERACTION_COLUMNS,
            [_interaction_values(i, blobs) for i in plan.new_items.values()],
            "dedupe_key",
        )
        plan.by_key.update(ids)
        for key in [k for k in plan.new_items if k not in inserted]:
            # a concurrent sync stored it first: here it is one more source
            item = plan.new_items.pop(key)
            counts.demote(item)
            _another_copy(item, plan)
        by_key, new_items = plan.by_key, plan.new_items.items()
        times = await _times(session, plan)
        rows = (
            (
                SourceRow,
                [(by_key[key], *source, eid, sha, times[key]) for key, eid, sha in plan.sources],
            ),
            (
                ParticipantRow,
                [
                    _participant(by_key[k], i.interaction.occurred_at, p)
                    for k, i in new_items
                    for p in i.participants
                ],
            ),
            (
                AttributionRow,
                [
                    _attribution(by_key[k], i.interaction.occurred_at, a)
                    for k, i in new_items
                    for a in i.attributions
                ],
            ),
            (
                AttachmentRow,
                [
                    _attachment(by_key[k], a, blobs)
                    for k, i in new_items
                    for a in i.interaction.attachments
                ],
            ),
        )
        for table, values in rows:
            await insert_rows(session, table.__table__, _COLUMNS[table], values)
        await insert_rows(
            session, CallPartiesRow.__table__, PARTY_COLUMNS, party_rows(by_key, new_items)
        )
        await _add_native_ids(session, {(by_key[k], n) for k, n in plan.native_ids})
        meeting = Channel.MEETING
        await _revise(
            session, source[0], [r for r in plan.revised if r[1].interaction.channel != meeting]
        )
        await index_items(session, [_text(by_key[k], i) for k, i in new_items])
        await open_cases(
            session,
            (
                (plan.by_key[key], case)
                for key, item in plan.new_items.items()
                for case in item.review
            ),
        )
        # Last: a newer copy of a meeting this batch stores revises it as stored in full.
        revised = await revise_meetings(
            session,
            source[0],
            [r for r in plan.revised if r[1].interaction.channel == meeting],
            [(by_key[key], item) for key, item in plan.copies],
        )
        new_meetings = [by_key[k] for k, i in new_items if i.interaction.channel == meeting]
        await answer_from_replies(session, [*new_meetings, *revised])

    async def _quarantine(
        self,
        session: AsyncSession,
        connector: str,
        owner: str,
        quarantined: list[Quarantined],
        blobs: dict[str, int],
        counts: IngestCounts,
    ) -> None:
        if not quarantined:
            return
        ids = [q.raw.external_id for q in quarantined]
        known = set(
            (
                await session.execute(
                    select(QuarantineRow.external_id).where(
                        QuarantineRow.connector == connector, QuarantineRow.external_id.in_(ids)
                    )
                )
            ).scalars()
        )
        now = datetime.now(UTC)
        for q in quarantined:
            if q.raw.external_id in known:
                continue
            known.add(q.raw.external_id)
            session.add(
                QuarantineRow(
                    connector=connector,
                    external_id=q.raw.external_id,
                    reason=q.reason[:2000],
                    raw_blob_id=blobs.get(raw_digest(q.raw)),
                    created_at=now,
                    owner=owner,
                )
            )
            counts.quarantined += 1


def _text(interaction_id: int, item: StoredItem) -> ItemText:
    """The words to index (a body the translation worker packed is unpacked for it)."""
    it = item.interaction
    return ItemText(interaction_id, it.occurred_at, it.subject, it.snippet, body_text(it))


def _attachment_blob(attachment: Attachment) -> Blob:
    if isinstance(attachment, PackedAttachment):
        return Blob(attachment.digest, attachment.size, attachment.packed)
    return Blob.of(attachment.content or b"")


# Channels whose items change after they are first seen: a call goes from ringing to completed,
# a text from queued to delivered, a meeting occurrence is moved, answered or cancelled. The
# same source delivering other content revises the item (meetings: storage.meeting_revision);
# a mail never changes under the same source id.
REVISABLE = frozenset({Channel.CALL, Channel.SMS, Channel.IM, Channel.MEETING})
# A call's status once it is over; a late "ringing" callback must not turn it back.
FINAL_STATUSES = frozenset({"completed", "busy", "no-answer", "failed", "canceled"})


async def _add_native_ids(session: AsyncSession, rows: set[tuple[int, str]]) -> None:
    """Record each item's native ids; one another source of the item recorded already stays."""
    if not rows:
        return
    connection = await session.connection()
    into = pg_insert if connection.dialect.name == "postgresql" else sqlite_insert
    statement = into(NativeIdRow.__table__).on_conflict_do_nothing()
    await connection.execute(
        statement, [{"interaction_id": item, "native_id": native} for item, native in sorted(rows)]
    )


async def _revise(
    session: AsyncSession, connector: str, revised: list[tuple[int, StoredItem]]
) -> None:
    """Bring calls and texts whose source reported a new state up to date: status, length,
    text and what the source adds; never a final status back to an open one (callbacks come
    out of order and twice). Parties and time stay as first stored: matching decided on them."""
    if not revised:
        return
    ids = sorted({item_id for item_id, _ in revised})
    rows = await session.execute(
        select(InteractionRow.id, InteractionRow.extra).where(InteractionRow.id.in_(ids))
    )
    stored: dict[int, dict[str, Any]] = {item_id: extra or {} for item_id, extra in rows}
    texts: list[int] = []
    for item_id, item in revised:
        old = stored.get(item_id) or {}
        new = item.interaction
        if old.get("status") in FINAL_STATUSES and new.extra.get("status") not in FINAL_STATUSES:
            continue
        values: dict[str, Any] = {
            "subject": new.subject,
            "snippet": new.snippet,
            "duration_seconds": new.duration_seconds,
            "ends_at": new.ends_at,
            "extra": {**old, **new.extra},
        }
        if body_text(new):  # a transcription that came later; a report without one keeps it
            values["body"] = stored_body(new)
            texts.append(item_id)
        await session.execute(
            update(InteractionRow).where(InteractionRow.id == item_id).values(**values)
        )
        await session.execute(
            update(SourceRow)
            .where(SourceRow.connector == connector, SourceRow.external_id == item.raw.external_id)
            .values(content_sha256=raw_digest(item.raw))
        )
        stored[item_id] = {**old, **new.extra}
    if texts:
        await reindex_items(session, sorted(set(texts)))  # the search finds the new words


def _blob(raw: RawItem) -> Blob:
    """The raw bytes as a blob: packed by the translation worker, or packed here."""
    if isinstance(raw, PackedRaw):
        return Blob(raw.digest, len(raw.data), raw.packed)
    return Blob.of(raw.data)


def _join_same_calls(plan: _Plan, items: list[StoredItem]) -> None:
    """A report of a call another system reported first is one more source of it (sorted as a
    duplicate); where it knows more (storage.call_merge.wins), it revises the stored call."""
    for item in items:
        same = plan.same_calls.get(item.interaction.dedupe_key)
        if same is not None and wins(item.interaction, same):
            plan.revised.append((same.interaction_id, item))


def _another_copy(item: StoredItem, plan: _Plan) -> None:
    """A meeting stored already, or earlier in this batch, that this source holds too (a
    second user's calendar): its copy revises the meeting when it is a newer revision
    (storage.meeting_revision.supersedes), whichever calendar delivers that first."""
    if item.interaction.channel is Channel.MEETING:
        plan.copies.append((item.interaction.dedupe_key, item))


def _sort(item: StoredItem, plan: _Plan, counts: IngestCounts) -> None:
    """New interaction, another source of a known one, or a re-delivery of a known source."""
    if item.raw.external_id in plan.known_sources:
        known = plan.known_sha.get(item.raw.external_id)
        if known and item.interaction.channel in REVISABLE and known[1] != raw_digest(item.raw):
            plan.revised.append((known[0], item))
            counts.updated += 1
        else:
            counts.duplicates += 1
            if known is None:  # twice in this batch: one event in two calendars of the source
                _another_copy(item, plan)
        return
    plan.known_sources.add(item.raw.external_id)
    key = item.interaction.dedupe_key
    plan.sources.append((key, item.raw.external_id, raw_digest(item.raw)))
    for native in item.interaction.extra.get("native_ids") or ():
        plan.native_ids.append((key, str(native)[:200]))
    if key in plan.by_key or key in plan.new_items:
        counts.duplicates += 1
        _another_copy(item, plan)
        return
    plan.new_items[key] = item
    counts.new += 1
    if item.attributions:
        counts.matched += 1
    else:
        counts.unmatched += 1


_COLUMNS: dict[type, tuple[str, ...]] = {
    SourceRow: (
        "interaction_id", "connector", "owner", "visibility", "external_id", "content_sha256",
        "occurred_at",
    ),
    ParticipantRow: (
        "interaction_id", "role", "kind", "address", "normalized", "name", "contact_id", "rdomain",
        "occurred_at",
    ),
    AttributionRow: (
        "interaction_id", "account_id", "contact_id", "rule", "confidence", "explanation",
        "manual", "removed", "occurred_at",
    ),
    AttachmentRow: ("interaction_id", "filename", "content_type", "size", "blob_id"),
}  # fmt: skip


async def _times(session: AsyncSession, plan: _Plan) -> dict[str, datetime]:
    """Each source's item time, copied onto the source for the owner's newest-first listing:
    that of the new item, or, for one more source of a stored item, the stored item's."""
    times = {key: item.interaction.occurred_at for key, item in plan.new_items.items()}
    times.update((key, same.occurred_at) for key, same in plan.same_calls.items())
    stored = sorted({key for key, _, _ in plan.sources} - times.keys())
    for start in range(0, len(stored), 500):
        rows = await session.execute(
            select(InteractionRow.dedupe_key, InteractionRow.occurred_at).where(
                InteractionRow.dedupe_key.in_(stored[start : start + 500])
            )
        )
        times.update((key, at) for key, at in rows)
    return times


def _participant(interaction_id: int, at: datetime, p: MatchedParticipant) -> tuple[Any, ...]:
    return (
        interaction_id, p.role, p.kind, p.address[:320], p.normalized, p.name[:300],
        p.contact_id, p.rdomain, at,
    )  # fmt: skip


def _attribution(interaction_id: int, at: datetime, a: Attribution) -> tuple[Any, ...]:
    return (
        interaction_id, a.account_id, a.contact_id, a.rule, a.confidence, a.explanation,
        a.manual, False, at,
    )  # fmt: skip


def _attachment(interaction_id: int, a: Attachment, blobs: dict[str, int]) -> tuple[Any, ...]:
    blob_id = blobs.get(attachment_digest(a)) if kept(a) else None
    return (interaction_id, a.filename[:500], a.content_type[:200], a.size, blob_id)


_INTERACTION_COLUMNS = (
    "dedupe_key", "channel", "direction", "occurred_at", "ends_at", "duration_seconds",
    "subject", "snippet", "body", "message_id", "thread_id", "in_reply_to", "references",
    "not_logged", "raw_blob_id", "extra",
)  # fmt: skip


def _interaction_values(item: StoredItem, blobs: dict[str, int]) -> tuple[Any, ...]:
    """One row for `_INTERACTION_COLUMNS`, in their order."""
    it = item.interaction
    return (
        it.dedupe_key,
        it.channel.value,
        item.direction,
        it.occurred_at,
        it.ends_at,
        it.duration_seconds,
        it.subject,
        it.snippet,
        stored_body(it),
        it.message_id,
        it.thread_key,
        it.in_reply_to,
        it.references,
        item.not_logged[:200],
        blobs.get(raw_digest(item.raw)),
        dict(it.extra),
    )
