"""What the hub holds about one person: their contact records, the items they take part in,
and those items in full (for an export). Every lookup goes through an index (participants by
normalised address or contact, contacts by address or number); only the quarantine, which has
no parsed participants, is read through and searched (storage.erasure).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.deletion import chunked
from storage.packing import unpack, unpack_text
from storage.tables import (
    AccountRow,
    BlobRow,
    ContactEmailRow,
    ContactPhoneRow,
    ContactRow,
    InteractionRow,
    ParticipantRow,
)


@dataclass
class Spellings:
    """How the person appears in stored participants: normalised keys, addresses and numbers
    as the sources wrote them, and display names."""

    keys: set[str] = field(default_factory=set)
    written: set[str] = field(default_factory=set)
    names: set[str] = field(default_factory=set)


async def contacts_with(session: AsyncSession, keys: Collection[str]) -> list[ContactRow]:
    """The contacts that have one of these normalised addresses or E.164 numbers."""
    ids: set[int] = set()
    for column, owner in (
        (ContactEmailRow.address, ContactEmailRow.contact_id),
        (ContactPhoneRow.e164, ContactPhoneRow.contact_id),
    ):
        ids.update((await session.execute(select(owner).where(column.in_(keys)))).scalars())
    if not ids:
        return []
    rows = await session.execute(select(ContactRow).where(ContactRow.id.in_(ids)))
    return sorted(rows.scalars(), key=lambda row: row.id)


def _of_person(keys: Collection[str], contact_ids: Collection[int]) -> Any:
    found = ParticipantRow.normalized.in_(keys)
    return or_(found, ParticipantRow.contact_id.in_(contact_ids)) if contact_ids else found


async def items_with(
    session: AsyncSession, keys: Collection[str], contact_ids: Collection[int] = ()
) -> set[int]:
    """Items with a participant at one of `keys`, or linked to one of the contacts."""
    rows = await session.execute(
        select(ParticipantRow.interaction_id).where(_of_person(keys, contact_ids)).distinct()
    )
    return set(rows.scalars())


async def spellings(
    session: AsyncSession, keys: Collection[str], contact_ids: Collection[int] = ()
) -> Spellings:
    found = Spellings(keys=set(keys))
    rows = await session.execute(
        select(ParticipantRow.normalized, ParticipantRow.address, ParticipantRow.name)
        .where(_of_person(keys, contact_ids))
        .distinct()
    )
    for normalized, address, name in rows:
        if normalized:
            found.keys.add(normalized)
        if address:
            found.written.add(address)
        if name:
            found.names.add(name)
    return found


async def item_documents(session: AsyncSession, ids: Iterable[int]) -> list[dict[str, Any]]:
    """Each item with every stored field: body, participants, attributions (with the account's
    name), sources and attachments (with their blob ids, to copy the files)."""
    documents: list[dict[str, Any]] = []
    for chunk in chunked(ids, 100):
        rows = await session.execute(select(InteractionRow).where(InteractionRow.id.in_(chunk)))
        items = list(rows.scalars())
        names = await account_names(
            session, {a.account_id for item in items for a in item.attributions}
        )
        documents.extend(_document(item, names) for item in items)
    return sorted(documents, key=lambda d: (d["occurred_at"], d["id"]))


def _document(item: InteractionRow, account_names: dict[int, str]) -> dict[str, Any]:
    return {
        "id": item.id,
        "channel": item.channel,
        "direction": item.direction,
        "occurred_at": item.occurred_at.isoformat(),
        "ends_at": item.ends_at.isoformat() if item.ends_at else None,
        "duration_seconds": item.duration_seconds,
        "subject": item.subject,
        "snippet": item.snippet,
        "body": unpack_text(item.body),
        "message_id": item.message_id,
        "thread_id": item.thread_id,
        "in_reply_to": item.in_reply_to,
        "references": item.references,
        "not_logged": item.not_logged,
        "extra": item.extra,
        "raw_blob_id": item.raw_blob_id,
        "participants": [
            {
                "role": p.role,
                "kind": p.kind,
                "address": p.address,
                "normalized": p.normalized,
                "name": p.name,
                "contact_id": p.contact_id,
            }
            for p in item.participants
        ],
        "attributions": [
            {
                "account_id": a.account_id,
                "account": account_names.get(a.account_id, ""),
                "contact_id": a.contact_id,
                "rule": a.rule,
                "confidence": a.confidence,
                "explanation": a.explanation,
                "manual": a.manual,
                "removed": a.removed,
            }
            for a in item.attributions
        ],
        "sources": [
            {"connector": s.connector, "external_id": s.external_id, "owner": s.owner}
            for s in item.sources
        ],
        "attachments": [
            {
                "id": a.id,
                "filename": a.filename,
                "content_type": a.content_type,
                "size": a.size,
                "blob_id": a.blob_id,
            }
            for a in item.attachments
        ],
    }


def contact_document(row: ContactRow, account_name: str) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "account_id": row.account_id,
        "account": account_name,
        "owner": row.owner,
        "emails": sorted(e.address for e in row.emails),
        "phones": sorted(p.e164 for p in row.phones),
    }


async def account_names(session: AsyncSession, ids: Collection[int | None]) -> dict[int, str]:
    wanted = [i for i in ids if i is not None]
    if not wanted:
        return {}
    rows = await session.execute(
        select(AccountRow.id, AccountRow.name).where(AccountRow.id.in_(wanted))
    )
    return {id_: name for id_, name in rows}


async def blob_content(session: AsyncSession, blob_id: int) -> bytes:
    data = (await session.execute(select(BlobRow.data).where(BlobRow.id == blob_id))).scalar()
    return unpack(data) if data is not None else b""
