"""The connector repository: every read of connector rows, and what connector administration
records beside a connector's settings (how recent and how busy its items are, its latest run).

Handlers, jobs and the CLI ask these functions instead of writing `select(ConnectorRow...)`,
so a change to how connectors are stored or ordered is made here once.

Activity is read from `sources` through ix_sources_connector_time (connector, occurred_at): the
newest item and the counts per day are ranges of one connector's part of that index, whatever
the size of the tables (tests/integration/test_connectors_state.py holds the plans).

A sync run is claimed in the connector's row by one statement that succeeds only when no other
run is going on, or when the one going on stopped beating (its process died): web processes,
the scheduler and workers on other machines all see the same claim. A live source's listener
is leased the same way (hub.listener_lease), to one holder at a time.
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


async def _one_row(session: AsyncSession, statement: Any) -> bool:
    """Run an UPDATE of one connector's row; whether it changed that row (its conditions
    held): a claim or a renewal decided by the database in one statement."""
    result = await session.execute(statement.execution_options(synchronize_session=False))
    return isinstance(result, CursorResult) and result.rowcount == 1


async def claim_run(
    session: AsyncSession,
    name: str,
    now: datetime,
    stale_before: datetime,
    progress: dict[str, Any],
) -> bool:
    """Start a run of `name` at `now`, unless one is running: not ended, and beating since
    `stale_before`. False when another run holds the connector, or there is no such connector."""
    return await _one_row(
        session,
        update(ConnectorRow)
        .where(
            ConnectorRow.name == name,
            or_(
                ConnectorRow.run_started_at.is_(None),
                ConnectorRow.run_ended_at.is_not(None),
                ConnectorRow.run_beat_at < stale_before,
            ),
        )
        .values(run_started_at=now, run_beat_at=now, run_ended_at=None, run_progress=progress),
    )


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


async def claim_listener(
    session: AsyncSession, name: str, holder: str, now: datetime, stale_before: datetime
) -> bool:
    """Lease listening to `name` to `holder` at `now`: when nobody holds it, its holder has
    not renewed it since `stale_before` (died or stalled), or `holder` holds it already. One
    statement, so two claimants racing cannot both win. False when another holds it, or there
    is no such connector."""
    return await _one_row(
        session,
        update(ConnectorRow)
        .where(
            ConnectorRow.name == name,
            or_(
                ConnectorRow.listener_holder.is_(None),
                ConnectorRow.listener_holder == holder,
                ConnectorRow.listener_beat_at < stale_before,
            ),
        )
        .values(listener_holder=holder, listener_beat_at=now),
    )


async def renew_listener(session: AsyncSession, name: str, holder: str, now: datetime) -> bool:
    """`holder` still listens at `now`. False when the lease is no longer its own: it stalled
    past the stale time and another took over, so it must stop listening."""
    return await _one_row(
        session,
        update(ConnectorRow)
        .where(ConnectorRow.name == name, ConnectorRow.listener_holder == holder)
        .values(listener_beat_at=now),
    )


async def release_listener(session: AsyncSession, name: str, holder: str) -> None:
    """Free the lease for the next claimant at once; a no-op once it is not `holder`'s."""
    await session.execute(
        update(ConnectorRow)
        .where(ConnectorRow.name == name, ConnectorRow.listener_holder == holder)
        .values(listener_holder=None, listener_beat_at=None)
        .execution_options(synchronize_session=False)
    )


async def connector_rows(session: AsyncSession) -> list[ConnectorRow]:
    """Every connector, by name (listings)."""
    return list((await session.execute(select(ConnectorRow).order_by(ConnectorRow.name))).scalars())


async def connector_row(session: AsyncSession, name: str) -> ConnectorRow | None:
    return (
        await session.execute(select(ConnectorRow).where(ConnectorRow.name == name))
    ).scalar_one_or_none()


async def connector_exists(session: AsyncSession, name: str) -> bool:
    """Whether `name` is taken; reads the key only, not the row's settings and secrets."""
    found = await session.execute(select(ConnectorRow.id).where(ConnectorRow.name == name))
    return found.scalar_one_or_none() is not None


async def enabled_rows(session: AsyncSession) -> list[ConnectorRow]:
    """The enabled connectors in the order they were added: the order of a scheduled pass."""
    query = select(ConnectorRow).where(ConnectorRow.enabled.is_(True)).order_by(ConnectorRow.id)
    return list((await session.execute(query)).scalars())


async def connector_names(session: AsyncSession, *, enabled_only: bool) -> list[str]:
    """Connector names in the order they were added (`crmhub sync` without names)."""
    query = select(ConnectorRow.name).order_by(ConnectorRow.id)
    if enabled_only:
        query = query.where(ConnectorRow.enabled.is_(True))
    return list((await session.execute(query)).scalars())


# Built once: asked on every read that shows items (hub.web.reads), so a Core statement of two
# columns on the session's connection, without the ORM's row objects.
_SETTINGS = select(ConnectorRow.name, ConnectorRow.settings)
_KINDS_AND_SETTINGS = select(ConnectorRow.name, ConnectorRow.kind, ConnectorRow.settings).order_by(
    ConnectorRow.name
)


async def settings_by_name(session: AsyncSession) -> dict[str, dict[str, Any]]:
    """Every connector's settings by name, without secrets, cursor or run state."""
    rows = await (await session.connection()).execute(_SETTINGS)
    return {name: settings or {} for name, settings in rows}


async def kinds_and_settings(session: AsyncSession) -> list[tuple[str, str, dict[str, Any]]]:
    """`(name, kind, settings)` of every connector, by name: what deciding who may use a
    connector needs (its class says whose mailbox it is), without secrets or cursor."""
    rows = await (await session.connection()).execute(_KINDS_AND_SETTINGS)
    return [(name, kind, dict(settings or {})) for name, kind, settings in rows]
