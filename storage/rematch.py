"""Finding the stored items a directory change affects, and replacing their automatic links.

Re-matching must never be a full rescan: a new address, number or domain is looked up in the
participant indexes (normalized, and rdomain for a domain with all its subdomains), and only
those items are attributed again. Manual links stay; manually removed ones stay removed.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass

from sqlalchemy import and_, delete, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.model import Attribution
from storage.tables import AttributionRow, InteractionRow, ParticipantRow

CHUNK = 500


@dataclass
class RematchCounts:
    examined: int = 0
    changed: int = 0
    added: int = 0
    removed: int = 0


async def affected_by(
    session: AsyncSession,
    addresses: Iterable[str] = (),
    domain_keys: Iterable[str] = (),
) -> set[int]:
    """Ids of items with a participant at one of these normalised addresses or numbers, or at
    one of these domains (given as `reversed_labels` keys) or any subdomain of them."""
    found: set[int] = set()
    keys = sorted(set(addresses))
    for start in range(0, len(keys), CHUNK):
        rows = await session.execute(
            select(ParticipantRow.interaction_id).where(
                ParticipantRow.normalized.in_(keys[start : start + CHUNK])
            )
        )
        found.update(rows.scalars())
    for key in sorted(set(domain_keys)):
        # "de.acme" itself, and "de.acme.<anything>": a range, so the rdomain index serves it
        # ("/" is the character after ".").
        rows = await session.execute(
            select(ParticipantRow.interaction_id).where(
                or_(
                    ParticipantRow.rdomain == key,
                    and_(ParticipantRow.rdomain >= key + ".", ParticipantRow.rdomain < key + "/"),
                )
            )
        )
        found.update(rows.scalars())
    return found


async def replies_to(
    session: AsyncSession, parents: dict[str, str], skip: Collection[str] = ()
) -> set[int]:
    """Stored items that answer one of `parents` (Message-ID -> its thread key), except those
    whose dedupe key is in `skip`."""
    if not parents:
        return set()
    keys = sorted(set(parents) | set(parents.values()))
    found: set[int] = set()
    for start in range(0, len(keys), CHUNK):
        rows = await session.execute(
            select(
                InteractionRow.id,
                InteractionRow.dedupe_key,
                InteractionRow.in_reply_to,
                InteractionRow.references,
            ).where(InteractionRow.thread_id.in_(keys[start : start + CHUNK]))
        )
        for id_, dedupe_key, in_reply_to, references in rows:
            if dedupe_key in skip:
                continue
            if set(in_reply_to or ()) & parents.keys() or set(references or ()) & parents.keys():
                found.add(id_)
    return found


async def replace_automatic(
    session: AsyncSession, row: InteractionRow, wanted: list[Attribution]
) -> tuple[int, int]:
    """Make the automatic links of `row` equal `wanted`; manual links and tombstones win.

    Returns (added, removed).
    """
    blocked = {a.account_id for a in row.attributions if a.removed}
    manual = {(a.account_id, a.contact_id) for a in row.attributions if a.manual and not a.removed}
    current = {
        (a.account_id, a.contact_id): a for a in row.attributions if not a.manual and not a.removed
    }
    desired = {
        (a.account_id, a.contact_id): a
        for a in wanted
        if a.account_id not in blocked and (a.account_id, a.contact_id) not in manual
    }
    stale = [a.id for key, a in current.items() if key not in desired]
    if stale:
        await session.execute(delete(AttributionRow).where(AttributionRow.id.in_(stale)))
    added = 0
    for key, attribution in desired.items():
        existing = current.get(key)
        if existing is not None:
            existing.rule = attribution.rule
            existing.confidence = attribution.confidence
            existing.explanation = attribution.explanation
            continue
        session.add(
            AttributionRow(
                interaction_id=row.id,
                account_id=attribution.account_id,
                contact_id=attribution.contact_id,
                rule=attribution.rule,
                confidence=attribution.confidence,
                explanation=attribution.explanation,
                manual=False,
                removed=False,
                occurred_at=row.occurred_at,
            )
        )
        added += 1
    return added, len(stale)
