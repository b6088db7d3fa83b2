"""The blocklist as users and the API change it: entries, and the stored items they remove.

Adding an entry applies it to what is stored already (DESIGN.md "Never stored"): an admin-wide
entry deletes the items whose outside parties are now all blocked; a user's entry removes that
user's sources of such items, and an item left without any source is deleted. Removing an entry
brings nothing back. Both are audited.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from hub.bootstrap import Hub
from matching.blocklist import Blocklist, is_blocked, normalize_entry, normalize_user
from matching.identities import reversed_labels
from matching.parties import external_parties
from storage.audit import record
from storage.blocklist import (
    BlockEntry,
    add_entry,
    entries,
    remove_entry,
    remove_sources,
)
from storage.deletion import DeletionCounts, chunked, delete_items
from storage.parties import stored_parties
from storage.rematch import affected_by

log = logging.getLogger(__name__)


@dataclass
class BlockCounts:
    """What adding an entry did: `added` is False when the entry was there already."""

    entry: str
    user: str
    added: bool = False
    items_deleted: int = 0
    sources_removed: int = 0
    blobs_deleted: int = 0

    def as_json(self) -> dict[str, object]:
        return {
            "entry": self.entry,
            "user": self.user,
            "added": self.added,
            "items_deleted": self.items_deleted,
            "sources_removed": self.sources_removed,
        }


async def add_block(hub: Hub, entry: str, user: str = "", actor: str = "cli") -> BlockCounts:
    """Block an address or domain for everyone (`user` "") or in one user's mailboxes, and
    remove what it blocks from storage. BlockEntryError for text that is neither."""
    key, owner = normalize_entry(entry), normalize_user(user)
    counts = BlockCounts(key, owner)
    async with hub.sessions() as session, session.begin():
        counts.added = await add_entry(session, key, owner, actor)
        listed = Blocklist.of((e.entry, e.user) for e in await entries(session))
        if "@" in key:
            candidates = await affected_by(session, addresses=[key])
        else:
            candidates = await affected_by(session, domain_keys=[reversed_labels(key)])
    index = await hub.identity_index()
    for chunk in chunked(candidates):
        async with hub.sessions() as session, session.begin():
            doomed: list[int] = []
            sources: list[int] = []
            for item_id, stored in (await stored_parties(session, chunk)).items():
                parties = external_parties(stored.participants, index)
                blocked = [sid for sid, o in stored.sources if is_blocked(parties, listed, o)]
                if not stored.sources and is_blocked(parties, listed, ""):
                    doomed.append(item_id)  # no source left to say whose it is: admin-wide only
                elif stored.sources and len(blocked) == len(stored.sources):
                    doomed.append(item_id)
                else:
                    sources.extend(blocked)
            counts.sources_removed += await remove_sources(session, sources)
            deleted: DeletionCounts = await delete_items(session, doomed)
            counts.items_deleted += deleted.items
            counts.blobs_deleted += deleted.blobs
    async with hub.sessions() as session, session.begin():
        record(session, actor, "blocklist.add", after=counts.as_json(), target=key)
    log.info(
        "blocklist: %s added for %s by %s; %d items deleted, %d sources removed",
        key,
        owner or "everyone",
        actor,
        counts.items_deleted,
        counts.sources_removed,
    )
    return counts


async def remove_block(hub: Hub, entry: str, user: str = "", actor: str = "cli") -> bool:
    """Remove an entry; False when there was none. What it removed stays removed."""
    key, owner = normalize_entry(entry), normalize_user(user)
    async with hub.sessions() as session, session.begin():
        removed = await remove_entry(session, key, owner)
        if removed:
            record(session, actor, "blocklist.remove", before={"user": owner}, target=key)
    return removed


async def list_blocks(hub: Hub, user: str | None = None) -> list[BlockEntry]:
    """Every entry, or the entries of one user ("" for the admin-wide ones)."""
    async with hub.sessions() as session:
        return await entries(session, None if user is None else normalize_user(user))
