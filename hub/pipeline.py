"""sync_connector(): connector -> translate -> match -> store, batch by batch."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from connectors.base import Connector, ConnectorError
from connectors.registry import connector_class
from hub.bootstrap import Hub
from hub.model import AddressKind, Interaction, Quarantined, Translated
from hub.rematch import rematch
from matching.autocreate import ContactPolicy, contacts_for_batch
from matching.engine import attribute
from matching.identities import reversed_domain
from matching.index import IdentityIndex
from storage.directory import create_contacts
from storage.ingest import IngestCounts, MatchedParticipant, StoredItem
from storage.rematch import affected_by, replies_to
from storage.tables import ConnectorRow

log = logging.getLogger(__name__)
MAX_THREAD_PASSES = 5  # reply chains deeper than this within one batch wait for re-matching
AHEAD = 1  # one batch fetched ahead already overlaps I/O and CPU; more only costs memory

Progress = Callable[[str, int], None]


@dataclass
class SyncReport:
    connector: str
    kind: str
    fetched: int = 0
    new: int = 0
    duplicates: int = 0
    matched: int = 0
    unmatched: int = 0
    quarantined: int = 0
    errors: int = 0
    contacts_created: int = 0
    error: str = ""
    seconds: float = 0.0
    counts: IngestCounts = field(default_factory=IngestCounts, repr=False)

    def as_json(self) -> dict[str, object]:
        doc = asdict(self)
        doc.pop("counts")
        return doc


async def decide_batch(hub: Hub, items: list[Translated], index: IdentityIndex) -> list[StoredItem]:
    """Decide in order, so that a reply later in the batch inherits its parent's accounts."""
    parents = {message_id for item in items for message_id in _parents(item.interaction)}
    threads = await hub.store.thread_accounts(parents) if parents else {}
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
    return decided


def _parents(interaction: Interaction) -> list[str]:
    return [*interaction.in_reply_to, *interaction.references]


def _remember_thread(stored: StoredItem, threads: dict[str, frozenset[int]]) -> None:
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


def decide(
    item: Translated, index: IdentityIndex, threads: dict[str, frozenset[int]] | None = None
) -> StoredItem:
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


async def sync_connector(
    hub: Hub, name: str, index: IdentityIndex, progress: Progress | None = None
) -> SyncReport:
    """One pass over one connector. Never raises for source trouble: the report carries it."""
    started = time.monotonic()
    async with hub.sessions() as session:
        row = (
            await session.execute(select(ConnectorRow).where(ConnectorRow.name == name))
        ).scalar_one_or_none()
    if row is None:
        return SyncReport(name, "?", errors=1, error=f"no connector named {name!r}")
    report = SyncReport(name, row.kind)
    try:
        cls = connector_class(row.kind)
        connector = cls(name, row.settings, hub.secret_box.open(row.secrets), hub.context)
        policy = ContactPolicy(row.settings.get("create_contacts", ContactPolicy.OFF))
        owner = cls.mailbox_owner(row.settings)
        async for items, cursor, fetched in _translated(hub, connector, row.cursor or {}):
            translated = [i for i in items if isinstance(i, Translated)]
            earlier: set[int] = set()
            if policy is not ContactPolicy.OFF:
                created, earlier = await create_batch_contacts(
                    hub, translated, index, policy, owner
                )
                report.contacts_created += created
            stored = await decide_batch(hub, translated, index)
            bad = [i for i in items if isinstance(i, Quarantined)]
            counts = await hub.store.ingest(name, stored, bad, cursor)
            await follow_late_parents(hub, stored, index)
            if earlier:
                await rematch(hub, earlier, index)
            report.counts.add(counts)
            report.fetched += fetched
            if progress:
                progress(name, report.fetched)
    except (ConnectorError, ValueError) as e:
        report.errors += 1
        report.error = str(e)
        log.warning("connector %s failed: %s", name, e)
    c = report.counts
    report.new, report.duplicates, report.quarantined = c.new, c.duplicates, c.quarantined
    report.matched, report.unmatched = c.matched, c.unmatched
    report.seconds = round(time.monotonic() - started, 3)
    async with hub.sessions() as session, session.begin():
        fresh = await session.get(ConnectorRow, row.id)
        if fresh is not None:
            fresh.status = "failed" if report.errors else "ok"
            fresh.last_error = report.error
            fresh.last_sync_at = datetime.now(UTC)
    return report


_Step = tuple["asyncio.Future[list[Translated | Quarantined]]", dict[str, Any], int]


async def _translated(
    hub: Hub, connector: Connector, cursor: dict[str, Any]
) -> AsyncIterator[tuple[list[Translated | Quarantined], dict[str, Any], int]]:
    """Batches in source order, while the next ones are already being fetched and translated.

    Fetching (I/O), translating (CPU, in worker processes for big batches) and storing run at
    the same time; at most `AHEAD` batches wait, so memory stays bounded. Cursors still commit
    strictly in order, with their items.
    """
    queue: asyncio.Queue[_Step | BaseException | None] = asyncio.Queue(maxsize=AHEAD)

    async def fetch() -> None:
        try:
            async for raws, next_cursor in connector.raw_batches(cursor):
                work = asyncio.ensure_future(hub.translate(connector, raws))
                await queue.put((work, next_cursor, len(raws)))
            await queue.put(None)
        except asyncio.CancelledError:
            raise
        except BaseException as e:  # noqa: BLE001 - handed to the consumer, raised there
            await queue.put(e)

    fetcher = asyncio.create_task(fetch())
    try:
        while (step := await queue.get()) is not None:
            if isinstance(step, BaseException):
                raise step
            work, next_cursor, fetched = step
            yield await work, next_cursor, fetched
        await fetcher
    finally:
        fetcher.cancel()
        while not queue.empty():
            pending = queue.get_nowait()
            if isinstance(pending, tuple):
                pending[0].cancel()


async def sync_all(
    hub: Hub, names: list[str] | None = None, progress: Progress | None = None
) -> list[SyncReport]:
    async with hub.sessions() as session:
        query = select(ConnectorRow.name).order_by(ConnectorRow.id)
        if not names:
            query = query.where(ConnectorRow.enabled.is_(True))
        known = list((await session.execute(query)).scalars())
    targets = names or known
    index = await hub.identity_index()
    return [await sync_connector(hub, name, index, progress) for name in targets]
