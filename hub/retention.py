"""Retention: items older than their channel's `retention_days` are deleted (default: kept).

Run by the scheduler once per pass and by `crmhub privacy retention`. Each chunk is deleted in
a transaction of its own, so a first run over years of calls never holds up a sync for long,
and an interrupted run simply continues on the next pass.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from hub.bootstrap import Hub
from storage.deletion import CHUNK, DeletionCounts, delete_items, items_older_than

log = logging.getLogger(__name__)


@dataclass
class RetentionReport:
    """What one run deleted, per channel that has a retention period."""

    days: dict[str, int] = field(default_factory=dict)
    deleted: dict[str, DeletionCounts] = field(default_factory=dict)

    @property
    def items(self) -> int:
        return sum(counts.items for counts in self.deleted.values())

    def lines(self) -> list[str]:
        if not self.days:
            return ["no retention_days set: every channel is kept"]
        return [
            f"{channel}: {self.deleted[channel].items} items older than {days} days deleted"
            for channel, days in sorted(self.days.items())
        ]


async def apply_retention(hub: Hub, now: datetime) -> RetentionReport:
    """Delete the items of each channel with a retention period that happened before
    `now` minus that period, with the deletion mechanism erasure uses."""
    report = RetentionReport(days=dict(hub.settings.retention_days))
    for channel, days in sorted(report.days.items()):
        cutoff = now - timedelta(days=days)
        counts = report.deleted.setdefault(channel, DeletionCounts())
        while True:
            async with hub.sessions() as session, session.begin():
                ids = await items_older_than(session, channel, cutoff, CHUNK)
                deleted = await delete_items(session, ids)
            counts.add(deleted)
            if not deleted.items:  # none left (or none deletable: never loop on the same ids)
                break
        if counts.items:
            log.info(
                "retention: %d %s items older than %d days deleted", counts.items, channel, days
            )
    return report
