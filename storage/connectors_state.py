"""What connector administration reads and records beside a connector's settings: how recent
and how busy its items are, and its latest sync run.

Activity is read from `sources` through ix_sources_connector_time (connector, occurred_at): the
newest item and the counts per day are ranges of one connector's part of that index, whatever
the size of the tables (tests/integration/test_connectors_state.py holds the plans).

A sync run is claimed in the connector's row by one statement that succeeds only when no other
run is going on, or when the one going on stopped beating (its process died): web processes,
the scheduler and workers on other machines all see the same claim.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import CursorResult, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.tables import ConnectorRow, SourceRow


@dataclass(frozen=True, slots=True)
class Activity:
    newest: datetime | None  # the newest item's time, not after `now`
    per_day: tuple[int, ...]  # items per day, oldest day first


async def activity(
    session: AsyncSession, connector: str, days: Sequence[datetime], now: datetime
) -> Activity:
    """Items of `connector` per day: `days` are the starts of consecutive days, oldest first;
    the last runs until `now`. Calendars hold meetings to come: "newest" stops at `now`."""
    ends = [*days[1:], now]
    counts = [
        func.count().filter(SourceRow.occurred_at >= start, SourceRow.occurred_at < end)
        for start, end in zip(days, ends, strict=True)
    ]
    per_day = (
        await session.execute(
            select(*counts).where(
                SourceRow.connector == connector,
                SourceRow.occurred_at >= days[0],
                SourceRow.occurred_at < now,
            )
        )
    ).one()
    newest = (
        await session.execute(
            select(SourceRow.occurred_at)
            .where(SourceRow.connector == connector, SourceRow.occurred_at <= now)
            .order_by(SourceRow.occurred_at.desc())
            .limit(1)
        )
    ).scalar_one_or_none()
    return Activity(newest, tuple(int(n) for n in per_day))


async def claim_run(
    session: AsyncSession,
    name: str,
    now: datetime,
    stale_before: datetime,
    progress: dict[str, Any],
) -> bool:
    """Start a run of `name` at `now`, unless one is running: not ended, and beating since
    `stale_before`. False when another run holds the connector, or there is no such connector."""
    result = await session.execute(
        update(ConnectorRow)
        .where(
            ConnectorRow.name == name,
            or_(
                ConnectorRow.run_started_at.is_(None),
                ConnectorRow.run_ended_at.is_not(None),
                ConnectorRow.run_beat_at < stale_before,
            ),
        )
        .values(run_started_at=now, run_beat_at=now, run_ended_at=None, run_progress=progress)
        .execution_options(synchronize_session=False)
    )
    return isinstance(result, CursorResult) and result.rowcount == 1


def _ours(name: str, started: datetime) -> tuple[Any, ...]:
    return (
        ConnectorRow.name == name,
        ConnectorRow.run_started_at == started,
        ConnectorRow.run_ended_at.is_(None),
    )


async def beat_run(
    session: AsyncSession, name: str, started: datetime, now: datetime, progress: dict[str, Any]
) -> None:
    """The run started at `started` is alive and got this far; a no-op once it is not ours."""
    await session.execute(
        update(ConnectorRow)
        .where(*_ours(name, started))
        .values(run_beat_at=now, run_progress=progress)
        .execution_options(synchronize_session=False)
    )


async def end_run(
    session: AsyncSession, name: str, started: datetime, now: datetime, progress: dict[str, Any]
) -> None:
    await session.execute(
        update(ConnectorRow)
        .where(*_ours(name, started))
        .values(run_beat_at=now, run_ended_at=now, run_progress=progress)
        .execution_options(synchronize_session=False)
    )


async def connector_rows(session: AsyncSession) -> list[ConnectorRow]:
    """Every connector, by name."""
    return list((await session.execute(select(ConnectorRow).order_by(ConnectorRow.name))).scalars())


async def connector_row(session: AsyncSession, name: str) -> ConnectorRow | None:
    return (
        await session.execute(select(ConnectorRow).where(ConnectorRow.name == name))
    ).scalar_one_or_none()
