"""sync_connector(): connector -> translate -> match -> store, batch by batch."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

from sqlalchemy import select

from connectors.base import ConnectorError
from connectors.registry import connector_class
from hub.bootstrap import Hub
from hub.model import Quarantined, Translated
from matching.engine import attribute
from matching.index import IdentityIndex
from storage.ingest import IngestCounts, MatchedParticipant, StoredItem
from storage.tables import ConnectorRow

log = logging.getLogger(__name__)

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
    error: str = ""
    seconds: float = 0.0
    counts: IngestCounts = field(default_factory=IngestCounts, repr=False)

    def as_json(self) -> dict[str, object]:
        doc = asdict(self)
        doc.pop("counts")
        return doc


def decide(item: Translated, index: IdentityIndex) -> StoredItem:
    decision = attribute(item.interaction, index)
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
            )
            for r in decision.participants
        ],
        attributions=decision.attributions,
        direction=decision.direction.value,
        not_logged=decision.not_logged,
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
        async for batch in connector.batches(row.cursor or {}):
            stored = [decide(i, index) for i in batch.items if isinstance(i, Translated)]
            bad = [i for i in batch.items if isinstance(i, Quarantined)]
            counts = await hub.store.ingest(name, stored, bad, batch.cursor)
            report.counts.add(counts)
            report.fetched += batch.fetched
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
