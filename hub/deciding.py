"""Deciding a batch: matching's answer for each item, with threads and contact creation.

Pure matching (matching.engine.attribute) sees one item; here the hub gives it what it needs
from storage: the accounts of stored messages an item answers, contacts a connector's policy
creates on the way, and the re-matching of stored replies whose parent arrives only now.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from hub.bootstrap import Hub
from hub.model import AddressKind, Interaction, Translated
from hub.rematch import rematch
from matching.autocreate import ContactPolicy, contacts_for_batch
from matching.engine import attribute
from matching.identities import reversed_domain
from matching.index import IdentityIndex
from storage.directory import create_contacts
from storage.ingest import MatchedParticipant, StoredItem
from storage.rematch import affected_by, replies_to

log = logging.getLogger(__name__)
MAX_THREAD_PASSES = 5  # reply chains deeper than this within one batch wait for re-matching

Threads = dict[str, frozenset[int]]


async def decide_batch(
    hub: Hub,
    items: list[Translated],
    index: IdentityIndex,
    unstored: Mapping[str, frozenset[int]] | None = None,
) -> tuple[list[StoredItem], Threads]:
    """Decide in order, so that a reply later in the batch inherits its parent's accounts.

    `unstored` holds the threads of a batch decided but not yet committed (the pipeline stores
    one batch while it decides the next). Returns the decisions, and the Message-ID -> accounts
    of this batch's attributed messages, to be handed on as `unstored` to the next batch.
    """
    parents = {message_id for item in items for message_id in _parents(item.interaction)}
    threads = await hub.store.thread_accounts(parents) if parents else {}
    threads.update(unstored or {})
    known = set(threads)
    decided = []
    for item in items:
        stored = decide(item, index, threads)
        _remember_thread(stored, threads)
        decided.append(stored)
    # A reply that came before its parent in the batch (mailboxes are not in thread order)
    # inherits once the parent is decided; each pass settles one more level of a chain.
    for _ in range(MAX_THREAD_PASSES):
        late = [
            n
            for n, stored in enumerate(decided)
            if not stored.attributions
            and not stored.not_logged
            and any(p in threads for p in _parents(stored.interaction))
        ]
        if not late:
            break
        for n in late:
            decided[n] = decide(items[n], index, threads)
            _remember_thread(decided[n], threads)
    return decided, {k: v for k, v in threads.items() if k not in known}


def _parents(interaction: Interaction) -> list[str]:
    return [*interaction.in_reply_to, *interaction.references]


def _remember_thread(stored: StoredItem, threads: Threads) -> None:
    message_id = stored.interaction.message_id
    if message_id and stored.attributions and not stored.not_logged:
        threads[message_id] = frozenset(a.account_id for a in stored.attributions)


async def follow_late_parents(hub: Hub, stored: list[StoredItem], index: IdentityIndex) -> int:
    """Replies stored before their parent arrived are attributed now, through the parent.

    Returns how many stored items changed. Only items of earlier batches or syncs are looked
    at: this batch's own replies were decided with their parents already.
    """
    parents = {
        s.interaction.message_id: s.interaction.thread_key or s.interaction.message_id
        for s in stored
        if s.interaction.message_id and s.attributions and not s.not_logged
    }
    if not parents:
        return 0
    async with hub.sessions() as session:
        earlier = await replies_to(
            session, parents, skip={s.interaction.dedupe_key for s in stored}
        )
    return (await rematch(hub, earlier, index)).changed if earlier else 0


async def create_batch_contacts(
    hub: Hub,
    items: list[Translated],
    index: IdentityIndex,
    policy: ContactPolicy,
    owner: str,
) -> tuple[int, set[int]]:
    """Create the contacts the connector's policy asks for in this batch, before it is decided.

    The new contacts go into `index` too, so the batch is then decided with them. Returns how
    many contacts were created and the ids of items stored earlier that have one of the new
    addresses: they are re-attributed once the batch is in (an index lookup, no rescan).
    """
    wanted = contacts_for_batch(
        ((item.interaction, attribute(item.interaction, index)) for item in items),
        index,
        policy,
        owner,
    )
    if not wanted:
        return 0, set()
    async with hub.sessions() as session, session.begin():
        made = await create_contacts(session, [(w.account_id, w.name, w.address) for w in wanted])
    for contact in made.contacts:
        index.add_contact(contact)
    if made.created:
        log.info("%d contacts created for %s", made.created, ", ".join(sorted(made.addresses)))
    async with hub.sessions() as session:
        earlier = await affected_by(session, made.addresses) if made.addresses else set()
    return made.created, earlier


def decide(item: Translated, index: IdentityIndex, threads: Threads | None = None) -> StoredItem:
    decision = attribute(item.interaction, index, threads)
    return StoredItem(
        raw=item.raw,
        interaction=item.interaction,
        participants=[
            MatchedParticipant(
                role=r.participant.role.value,
                kind=r.participant.kind.value,
                address=r.participant.address,
                name=r.participant.name,
                normalized=r.normalized,
                contact_id=r.contact_id,
                rdomain=reversed_domain(r.normalized)
                if r.normalized and r.participant.kind is AddressKind.EMAIL
                else None,
            )
            for r in decision.participants
        ],
        attributions=decision.attributions,
        direction=decision.direction.value,
        not_logged=decision.not_logged,
        review=decision.review,
    )
