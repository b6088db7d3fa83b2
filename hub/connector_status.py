"""The connector table of the admin pages and GET /api/connectors: each connector's settings
(never a secret's value), state, how recent and how busy its items are, what to do about its
last error, and its latest sync run. A read model: pages and the API get these, not rows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from connectors.base import ConnectorError
from connectors.registry import connector_class
from hub.admin import UnknownConnector
from hub.bootstrap import Hub
from hub.connector_hints import hint_for
from hub.connector_runs import SyncProgress, progress_of
from storage.connectors_state import activity, connector_row, connector_rows
from storage.tables import ConnectorRow

DAYS = 14  # items per day are shown for this many days, today the last


@dataclass(frozen=True, slots=True)
class DayCount:
    day: date  # in the hub's time zone
    count: int


@dataclass(frozen=True, slots=True)
class ConnectorStatus:
    name: str
    kind: str
    owner: str  # "" for a source nobody owns
    enabled: bool
    settings: dict[str, str]
    secrets: tuple[str, ...]  # the names of the secrets stored
    status: str  # new, ok or failed: the last sync's outcome
    last_error: str
    hint: str  # what IT should do about last_error
    last_sync_at: datetime | None
    last_success_at: datetime | None
    newest_at: datetime | None  # the newest item seen from it, not in the future
    lag_seconds: int | None  # the age of that item
    per_day: tuple[DayCount, ...]
    sync: SyncProgress

    @property
    def lag(self) -> str:
        return age_text(self.lag_seconds)

    @property
    def busiest(self) -> int:
        return max((d.count for d in self.per_day), default=0)

    @property
    def recent(self) -> int:
        return sum(d.count for d in self.per_day)

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "owner": self.owner,
            "enabled": self.enabled,
            "settings": self.settings,
            "secrets": list(self.secrets),
            "status": self.status,
            "last_error": self.last_error,
            "hint": self.hint,
            "last_sync_at": _iso(self.last_sync_at),
            "last_success_at": _iso(self.last_success_at),
            "newest_item_at": _iso(self.newest_at),
            "lag_seconds": self.lag_seconds,
            "items_per_day": [{"day": d.day.isoformat(), "count": d.count} for d in self.per_day],
            "sync": self.sync.as_json(),
        }


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at else None


def age_text(seconds: int | None) -> str:
    """An age as people say it: 40 s, 12 min, 5 h, 3 days."""
    if seconds is None:
        return "no items"
    for unit, size in (("days", 86_400), ("h", 3_600), ("min", 60)):
        if seconds >= 2 * size or (unit != "days" and seconds >= size):
            return f"{seconds // size} {unit}"
    return f"{max(seconds, 0)} s"


def day_starts(now: datetime, zone: ZoneInfo, days: int = DAYS) -> list[datetime]:
    """The starts of the last `days` days in `zone`, oldest first, today the last."""
    today = now.astimezone(zone).date()
    return [
        datetime.combine(today - timedelta(days=back), time(), zone)
        for back in range(days - 1, -1, -1)
    ]


def _owner(row: ConnectorRow) -> str:
    settings = dict(row.settings or {})
    try:
        return connector_class(row.kind).mailbox_owner(settings)
    except ConnectorError:  # a kind that cannot be loaded still has the owner it was given
        return str(settings.get("owner", ""))


def _secret_names(hub: Hub, row: ConnectorRow) -> tuple[str, ...]:
    try:
        return tuple(sorted(hub.secret_box.open(row.secrets)))
    except ValueError:  # the key changed: last_error and the test say so
        return ()


async def _status(
    hub: Hub, session: AsyncSession, row: ConnectorRow, now: datetime
) -> ConnectorStatus:
    starts = day_starts(now, ZoneInfo(hub.settings.timezone))
    seen = await activity(session, row.name, starts, now)
    lag = None if seen.newest is None else int((now - seen.newest).total_seconds())
    return ConnectorStatus(
        name=row.name,
        kind=row.kind,
        owner=_owner(row),
        enabled=row.enabled,
        settings={k: str(v) for k, v in (row.settings or {}).items()},
        secrets=_secret_names(hub, row),
        status=row.status,
        last_error=row.last_error or "",
        hint=hint_for(row.last_error or ""),
        last_sync_at=row.last_sync_at,
        last_success_at=row.last_success_at,
        newest_at=seen.newest,
        lag_seconds=lag,
        per_day=tuple(
            DayCount(start.date(), count) for start, count in zip(starts, seen.per_day, strict=True)
        ),
        sync=progress_of(row, now),
    )


async def connector_statuses(hub: Hub) -> list[ConnectorStatus]:
    now = datetime.now(UTC)
    async with hub.reads() as session:
        return [await _status(hub, session, row, now) for row in await connector_rows(session)]


async def connector_status(hub: Hub, name: str) -> ConnectorStatus:
    """Raises UnknownConnector."""
    now = datetime.now(UTC)
    async with hub.reads() as session:
        row = await connector_row(session, name)
        if row is None:
            raise UnknownConnector(f"no connector named {name!r}")
        return await _status(hub, session, row, now)
