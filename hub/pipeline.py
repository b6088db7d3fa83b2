"""sync_connector(): connector -> translate -> match -> store, batch by batch."""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from connectors.base import ConfigurationError, Connector, ConnectorError
from hub.bootstrap import Hub
from hub.deciding import (
    Threads,
    create_batch_contacts,
    decide_batch,
    follow_late_parents,
)
from hub.meeting_replies import apply_replies, mark_replies
from hub.metrics import batch_stored
from hub.model import Quarantined, RawItem, Skipped, Translated
from hub.rematch import rematch
from hub.screening import load_screen, screen_items, screen_quarantined
from matching.autocreate import ContactPolicy
from matching.index import IdentityIndex
from storage.connectors_state import connector_names, connector_row
from storage.ingest import IngestCounts, Provenance, StoredItem
from storage.maintenance import after_ingest
from storage.tables import ConnectorRow

log = logging.getLogger(__name__)
AHEAD = 1  # one batch fetched ahead already overlaps I/O and CPU; more only costs memory
# Every `column.in_(list)` leaves its bound parameter in a reference cycle (SQLAlchemy 2.1:
# the parameter's memoized `_cloned_set` holds the parameter), and each keeps its list of keys
# alive: a batch's external ids, Message-IDs, digests, about 0.17 MiB per batch of 250 mails.
# Only the collector frees them, and at hub.runtime's thresholds it ran once in some 35,000 to
# 70,000 mails of a sync. Collected every few batches, the main process of a 200,000-mail sync
# peaks about 20 MiB lower, within 5 % of a 10,000-mail sync (bench/imap_vs_mbsync.py
# --memory-only), for about 1.5 ms of CPU a collection (every batch: 1-2 % of a sync's CPU).
COLLECT_EVERY = 4  # batches

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
    skipped: int = 0  # private, blocklisted or naming an erased person: never stored anywhere
    errors: int = 0
    contacts_created: int = 0
    error: str = ""
    seconds: float = 0.0
    counts: IngestCounts = field(default_factory=IngestCounts, repr=False)

    def as_json(self) -> dict[str, object]:
        doc = asdict(self)
        doc.pop("counts")
        return doc


async def sync_connector(
    hub: Hub, name: str, index: IdentityIndex, progress: Progress | None = None
) -> SyncReport:
    """One pass over one connector. Never raises for source trouble: the report carries it."""
    started = time.monotonic()
    async with hub.sessions() as session:
        row = await connector_row(session, name)
    if row is None:
        return SyncReport(name, "?", errors=1, error=f"no connector named {name!r}")
    report = SyncReport(name, row.kind)
    try:
        connector = hub.connector(row)
        policy = ContactPolicy(row.settings.get("create_contacts", ContactPolicy.OFF))
        provenance = Provenance(
            connector.mailbox_owner(row.settings), row.settings.get("visibility", "full")
        )
        steps = _translated(hub, connector, row.cursor or {})
        await _sync_batches(hub, connector, steps, index, policy, provenance, report, progress)
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
            if not report.errors:
                fresh.last_success_at = fresh.last_sync_at
    await after_ingest(hub.engine, report.new)
    return report


Step = tuple[list[Translated | Quarantined | Skipped], dict[str, Any] | None, int]


async def ingest_pushed(hub: Hub, name: str, raws: list[RawItem]) -> SyncReport:
    """Store what a source pushed (a webhook's call, a live PBX event) exactly as a sync would
    store it: translated, screened, decided, under the connector's owner and visibility. The
    connector's cursor is left alone: a push is not a position in the source. Raises
    ConfigurationError for an unknown connector; a bad item is quarantined as in a sync."""
    async with hub.sessions() as session:
        row = await connector_row(session, name)
    if row is None:
        raise ConfigurationError(f"no connector named {name!r}")
    report = SyncReport(name, row.kind)
    connector = hub.connector(row)
    policy = ContactPolicy(row.settings.get("create_contacts", ContactPolicy.OFF))
    provenance = Provenance(
        connector.mailbox_owner(row.settings), row.settings.get("visibility", "full")
    )

    async def pushed() -> AsyncIterator[Step]:
        yield await hub.translate(connector, raws), None, len(raws)

    index = await hub.identity_index()
    await _sync_batches(hub, connector, pushed(), index, policy, provenance, report, None)
    c = report.counts
    report.new, report.duplicates, report.quarantined = c.new, c.duplicates, c.quarantined
    report.matched, report.unmatched = c.matched, c.unmatched
    return report


async def _sync_batches(
    hub: Hub,
    connector: Connector,
    steps: AsyncIterator[Step],
    index: IdentityIndex,
    policy: ContactPolicy,
    provenance: Provenance,
    report: SyncReport,
    progress: Progress | None,
) -> None:
    """Decide batch N+1 while batch N is stored: deciding is CPU in this process, storing
    mostly waits for the database, so the two overlap (measured: most of deciding's time comes
    off a 10,000-mail sync). Batches still commit one after another, in order, each with its
    cursor; batch N's threads reach N+1 through `unstored` before N is committed.

    A connector that reads many mailboxes names each batch's mailbox in its raws' `owner`
    (one mailbox per batch): that owner's blocklist screens the batch, their sent mail makes
    contacts, and the items are theirs. Otherwise the connector's `provenance.owner` is."""
    storing: asyncio.Task[IngestCounts] | None = None
    unstored: Threads = {}
    batches = 0

    async def stored() -> None:
        nonlocal storing
        if storing is not None:
            task, storing = storing, None
            report.counts.add(await task)

    try:
        async for items, next_cursor, fetched in steps:
            translated = [i for i in items if isinstance(i, Translated)]
            owner = next((i.raw.owner for i in items if i.raw.owner), "") or provenance.owner
            batch_provenance = replace(provenance, owner=owner)
            # Read per batch, so that an entry added or a person erased during a long sync
            # holds from the next batch on.
            screen = await load_screen(hub)
            translated, refused = screen_items(screen, translated, owner, index)
            earlier: set[int] = set()
            if policy is not ContactPolicy.OFF:
                await stored()  # new contacts change the index the stored batch re-matches with
                created, earlier = await create_batch_contacts(
                    hub, translated, index, policy, owner
                )
                report.contacts_created += created
            decided, unstored = await decide_batch(hub, translated, index, unstored)
            bad, unreadable = screen_quarantined(
                screen, [i for i in items if isinstance(i, Quarantined)]
            )
            report.skipped += len(refused) + len(unreadable)
            report.skipped += sum(isinstance(i, Skipped) for i in items)
            await stored()
            batches += 1
            if batches % COLLECT_EVERY == 0:
                gc.collect(0)  # no store in flight: its statements' cycles are all garbage now
            storing = asyncio.create_task(
                _store_batch(
                    hub, connector.name, decided, bad, next_cursor, index, earlier, batch_provenance
                )
            )
            report.fetched += fetched
            if progress:
                progress(connector.name, report.fetched)
        await stored()
    finally:
        if storing is not None:  # the fetch failed or was cancelled: the last batch still lands
            report.counts.add(await asyncio.shield(storing))


async def _store_batch(
    hub: Hub,
    name: str,
    decided: list[StoredItem],
    bad: list[Quarantined],
    cursor: dict[str, Any] | None,
    index: IdentityIndex,
    earlier: set[int],
    provenance: Provenance,
) -> IngestCounts:
    decided = mark_replies(decided)  # attendees' replies by mail: not logged as mail
    # Missed calls are opened and closed in the batch's own transaction (storage.missed_calls).
    counts = await hub.store.ingest(name, decided, bad, cursor, provenance)
    batch_stored(name, decided, counts)  # committed: counted for /metrics
    if decided:
        await apply_replies(hub, decided)  # their answers go to the meetings
    await follow_late_parents(hub, decided, index)
    if earlier:
        await rematch(hub, earlier, index)
    return counts


_Step = tuple["asyncio.Future[list[Translated | Quarantined | Skipped]]", dict[str, Any], int]


async def _translated(
    hub: Hub, connector: Connector, cursor: dict[str, Any]
) -> AsyncIterator[Step]:
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
    """One pass over `names` in the order given, or over every enabled connector."""
    targets = names
    if not targets:
        async with hub.sessions() as session:
            targets = await connector_names(session, enabled_only=True)
    index = await hub.identity_index()
    return [await sync_connector(hub, name, index, progress) for name in targets]
