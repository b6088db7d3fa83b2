"""ingest(): one batch, one transaction: items, sources, attributions, quarantine and cursor.

Committing the cursor with the items it covers is what makes a crash at any point safe: the next
run starts after the last committed batch, and re-delivered items are recognised by
(connector, external_id) or by the interaction's dedupe key.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hub.model import Attribution, Interaction, Quarantined, RawItem
from storage.blobs import store_blobs
from storage.tables import (
    AttachmentRow,
    AttributionRow,
    ConnectorRow,
    InteractionRow,
    ParticipantRow,
    QuarantineRow,
    SourceRow,
)


@dataclass(frozen=True)
class MatchedParticipant:
    role: str
    kind: str
    address: str
    name: str
    normalized: str | None
    contact_id: int | None


@dataclass(frozen=True)
class StoredItem:
    """A translated item with matching's decision, ready to store."""

    raw: RawItem
    interaction: Interaction
    participants: list[MatchedParticipant]
    attributions: list[Attribution]
    direction: str
    not_logged: str


@dataclass
class IngestCounts:
    new: int = 0
    duplicates: int = 0
    updated: int = 0
    matched: int = 0
    unmatched: int = 0
    quarantined: int = 0

    def add(self, other: IngestCounts) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass
class _Plan:
    existing_sources: dict[str, SourceRow] = field(default_factory=dict)
    by_key: dict[str, InteractionRow] = field(default_factory=dict)


class SqlInteractionStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions

    async def ingest(
        self,
        connector: str,
        items: list[StoredItem],
        quarantined: list[Quarantined],
        cursor: dict[str, Any],
    ) -> IngestCounts:
        counts = IngestCounts()
        async with self.sessions() as session, session.begin():
            plan = await self._plan(session, connector, items)
            blobs = await store_blobs(
                session,
                [i.raw.data for i in items]
                + [q.raw.data for q in quarantined]
                + [a.content for i in items for a in i.interaction.attachments if a.content],
            )
            for item in items:
                self._ingest_one(session, connector, item, plan, blobs, counts)
            await self._quarantine(session, connector, quarantined, blobs, counts)
            row = (
                await session.execute(select(ConnectorRow).where(ConnectorRow.name == connector))
            ).scalar_one_or_none()
            if row is not None:
                row.cursor = cursor
        return counts

    async def _plan(
        self, session: AsyncSession, connector: str, items: list[StoredItem]
    ) -> _Plan:
        plan = _Plan()
        ids = [i.raw.external_id for i in items]
        keys = [i.interaction.dedupe_key for i in items]
        for start in range(0, len(ids), 500):
            rows = await session.execute(
                select(SourceRow).where(
                    SourceRow.connector == connector,
                    SourceRow.external_id.in_(ids[start : start + 500]),
                )
            )
            plan.existing_sources.update({r.external_id: r for r in rows.scalars()})
            found = await session.execute(
                select(InteractionRow).where(InteractionRow.dedupe_key.in_(keys[start : start + 500]))
            )
            plan.by_key.update({r.dedupe_key: r for r in found.scalars()})
        return plan

    def _ingest_one(
        self,
        session: AsyncSession,
        connector: str,
        item: StoredItem,
        plan: _Plan,
        blobs: dict[str, int],
        counts: IngestCounts,
    ) -> None:
        sha = hashlib.sha256(item.raw.data).hexdigest()
        source = plan.existing_sources.get(item.raw.external_id)
        if source is not None:
            counts.duplicates += 1
            return
        existing = plan.by_key.get(item.interaction.dedupe_key)
        source = SourceRow(connector=connector, external_id=item.raw.external_id, content_sha256=sha)
        plan.existing_sources[item.raw.external_id] = source
        if existing is not None:
            existing.sources.append(source)
            counts.duplicates += 1
            return
        row = _interaction_row(item, blobs)
        row.sources.append(source)
        session.add(row)
        plan.by_key[item.interaction.dedupe_key] = row
        counts.new += 1
        if item.attributions:
            counts.matched += 1
        else:
            counts.unmatched += 1

    async def _quarantine(
        self,
        session: AsyncSession,
        connector: str,
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
                    raw_blob_id=blobs.get(hashlib.sha256(q.raw.data).hexdigest()),
                    created_at=now,
                )
            )
            counts.quarantined += 1


def _interaction_row(item: StoredItem, blobs: dict[str, int]) -> InteractionRow:
    it = item.interaction
    return InteractionRow(
        dedupe_key=it.dedupe_key,
        channel=it.channel.value,
        direction=item.direction,
        occurred_at=it.occurred_at,
        ends_at=it.ends_at,
        duration_seconds=it.duration_seconds,
        subject=it.subject,
        snippet=it.snippet,
        body_text=it.body_text,
        body_html=it.body_html,
        message_id=it.message_id,
        thread_id=it.thread_key,
        in_reply_to=it.in_reply_to,
        references=it.references,
        not_logged=item.not_logged[:200],
        raw_blob_id=blobs.get(hashlib.sha256(item.raw.data).hexdigest()),
        extra=dict(it.extra),
        participants=[
            ParticipantRow(
                role=p.role, kind=p.kind, address=p.address[:320], normalized=p.normalized,
                name=p.name[:300], contact_id=p.contact_id,
            )
            for p in item.participants
        ],
        attributions=[
            AttributionRow(
                account_id=a.account_id, contact_id=a.contact_id, rule=a.rule,
                confidence=a.confidence, explanation=a.explanation, manual=a.manual,
            )
            for a in item.attributions
        ],
        attachments=[
            AttachmentRow(
                filename=a.filename[:500], content_type=a.content_type[:200], size=a.size,
                blob_id=blobs.get(hashlib.sha256(a.content).hexdigest()) if a.content else None,
            )
            for a in it.attachments
        ],
    )
