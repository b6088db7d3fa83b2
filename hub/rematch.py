"""Retroactive attribution: when the directory or a thread changes, the affected items follow.

The stored participants are matched again against the current directory (and the threads the
item answers), and only the automatic links change; manual ones and tombstones are kept.
Replies of items whose links changed are followed, so a chain updates as a whole.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select

from hub.bootstrap import Hub
from hub.model import AddressKind, Channel, Interaction, Participant, Role
from matching.engine import attribute
from matching.index import IdentityIndex
from storage.rematch import CHUNK, RematchCounts, replace_automatic, replies_to
from storage.review import replace_open
from storage.tables import InteractionRow

MAX_ROUNDS = 20  # a reply chain deeper than this is followed on the next change


async def rematch(
    hub: Hub, interaction_ids: Iterable[int], index: IdentityIndex | None = None
) -> RematchCounts:
    counts = RematchCounts()
    index = index or await hub.identity_index()
    pending = set(interaction_ids)
    seen: set[int] = set()
    for _ in range(MAX_ROUNDS):
        pending -= seen
        if not pending:
            break
        seen |= pending
        changed_parents: dict[str, str] = {}
        ids = sorted(pending)
        for start in range(0, len(ids), CHUNK):
            changed_parents.update(
                await _rematch_chunk(hub, ids[start : start + CHUNK], index, counts)
            )
        async with hub.sessions() as session:
            pending = await replies_to(session, changed_parents)
    return counts


async def _rematch_chunk(
    hub: Hub, ids: list[int], index: IdentityIndex, counts: RematchCounts
) -> dict[str, str]:
    """Re-attribute one chunk in one transaction; returns Message-ID -> thread key of changes."""
    changed: dict[str, str] = {}
    async with hub.sessions() as session, session.begin():
        rows = list(
            (
                await session.execute(select(InteractionRow).where(InteractionRow.id.in_(ids)))
            ).scalars()
        )
        parents = {p for row in rows for p in (*row.in_reply_to, *row.references)}
        threads = await hub.store.thread_accounts(parents) if parents else {}
        for row in rows:
            counts.examined += 1
            if row.not_logged:
                continue
            decision = attribute(_interaction(row), index, threads)
            for stored, resolved in zip(row.participants, decision.participants, strict=False):
                stored.contact_id = resolved.contact_id
            added, removed = await replace_automatic(session, row, decision.attributions)
            await replace_open(session, row.id, decision.review)
            if added or removed:
                counts.changed += 1
                counts.added += added
                counts.removed += removed
                if row.message_id:
                    changed[row.message_id] = row.thread_id or row.message_id
    return changed


def _interaction(row: InteractionRow) -> Interaction:
    return Interaction(
        channel=Channel(row.channel),
        occurred_at=row.occurred_at,
        dedupe_key=row.dedupe_key,
        participants=[
            Participant(Role(p.role), p.address, AddressKind(p.kind), p.name)
            for p in row.participants
        ],
        message_id=row.message_id,
        in_reply_to=list(row.in_reply_to or ()),
        references=list(row.references or ()),
    )
