"""The parties and owners of stored items, as the blocklist clean-up and erasure read them:
participants in the form matching takes (so that matching.parties decides who is outside, as
at ingest), and each source with the mailbox owner it came from."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.model import AddressKind, Participant, Role
from storage.deletion import chunked
from storage.tables import ParticipantRow, SourceRow


@dataclass
class StoredParties:
    participants: list[Participant]
    sources: list[tuple[int, str]]  # (source id, owner)


async def stored_parties(session: AsyncSession, ids: list[int]) -> dict[int, StoredParties]:
    """Participants and sources of these items (by the interaction_id indexes)."""
    found = {id_: StoredParties([], []) for id_ in ids}
    for chunk in chunked(ids):
        rows = await session.execute(
            select(
                ParticipantRow.interaction_id,
                ParticipantRow.role,
                ParticipantRow.kind,
                ParticipantRow.address,
                ParticipantRow.name,
            )
            .where(ParticipantRow.interaction_id.in_(chunk))
            .order_by(ParticipantRow.id)
        )
        for interaction_id, role, kind, address, name in rows:
            found[interaction_id].participants.append(
                Participant(Role(role), address, AddressKind(kind), name)
            )
        sources = await session.execute(
            select(SourceRow.interaction_id, SourceRow.id, SourceRow.owner).where(
                SourceRow.interaction_id.in_(chunk)
            )
        )
        for interaction_id, source_id, owner in sources:
            found[interaction_id].sources.append((source_id, owner))
    return found
