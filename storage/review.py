"""The review queue: matching's open questions, stored per item, shown per sender or domain.

Rows are written with the items they concern (ingest, re-matching) and settled by a person.
A settlement changes the directory (storage.directory) or ignores the key; the re-matching that
follows is the hub's job.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, delete, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from hub.model import ReadScope, ReviewCase
from storage.directory import bump_version
from storage.queries import BadCursor, Page, decode_cursor, encode_cursor
from storage.tables import InteractionRow, ReviewIgnoredRow, ReviewItemRow
from storage.visibility import discloses

SAMPLE = 5  # items shown per case


@dataclass(frozen=True, slots=True)
class OpenCase:
    """One line of the queue: every open item of one (kind, key)."""

    kind: str
    key: str
    name: str
    reason: str
    candidates: tuple[int, ...]
    count: int
    latest_at: datetime
    interaction_ids: tuple[int, ...]


def _values(interaction_id: int, case: ReviewCase, now: datetime) -> dict[str, Any]:
    return {
        "interaction_id": interaction_id,
        "kind": case.kind.value,
        "key": case.key,
        "name": case.name[:300],
        "reason": case.reason,
        "candidates": list(case.candidates),
        "opened_at": now,
        "settlement": "",
    }


async def open_cases(
    session: AsyncSession, cases: Iterable[tuple[int, ReviewCase]], now: datetime | None = None
) -> int:
    """Queue the cases of newly stored items (which have no review rows yet)."""
    now = now or datetime.now(UTC)
    rows = {(iid, c.kind.value, c.key): _values(iid, c, now) for iid, c in cases}
    if rows:
        await session.execute(insert(ReviewItemRow), list(rows.values()))
    return len(rows)


async def replace_open(session: AsyncSession, interaction_id: int, cases: list[ReviewCase]) -> None:
    """After re-matching one item: drop the questions it no longer raises, queue the new ones.

    A question already settled for this item is not asked again.
    """
    known = {
        (kind, key): settled
        for kind, key, settled in await session.execute(
            select(ReviewItemRow.kind, ReviewItemRow.key, ReviewItemRow.settled_at).where(
                ReviewItemRow.interaction_id == interaction_id
            )
        )
    }
    wanted = {(c.kind.value, c.key): c for c in cases}
    stale = [k for k, settled in known.items() if settled is None and k not in wanted]
    for kind, key in stale:
        await session.execute(
            delete(ReviewItemRow).where(
                ReviewItemRow.interaction_id == interaction_id,
                ReviewItemRow.kind == kind,
                ReviewItemRow.key == key,
            )
        )
    await open_cases(session, ((interaction_id, c) for k, c in wanted.items() if k not in known))


async def list_open(
    session: AsyncSession, scope: ReadScope, kind: str | None, cursor: str | None, limit: int
) -> Page:
    """Open cases, the most recently active first, paged by (latest item, kind, key), made of
    the items `scope` may see: a question about a private mail is its owner's alone.

    A keyset, not an offset: people settle cases while they page, and an offset would then
    skip as many unseen cases as were settled.
    """
    latest = func.max(InteractionRow.occurred_at).label("latest")
    query = (
        select(ReviewItemRow.kind, ReviewItemRow.key, func.count().label("n"), latest)
        .join(InteractionRow, InteractionRow.id == ReviewItemRow.interaction_id)
        .where(ReviewItemRow.settled_at.is_(None), discloses(scope))
        .group_by(ReviewItemRow.kind, ReviewItemRow.key)
        .order_by(latest.desc(), ReviewItemRow.kind, ReviewItemRow.key)
        .limit(limit + 1)
    )
    if kind:
        query = query.where(ReviewItemRow.kind == kind)
    if cursor:
        at, after_kind, after_key = _position(cursor)
        at_max = func.max(InteractionRow.occurred_at)
        query = query.having(
            or_(
                at_max < at,
                and_(
                    at_max == at,
                    or_(
                        ReviewItemRow.kind > after_kind,
                        and_(ReviewItemRow.kind == after_kind, ReviewItemRow.key > after_key),
                    ),
                ),
            )
        )
    groups = (await session.execute(query)).all()
    cases = [
        await _case(session, scope, kind_, key, count, latest_at)
        for kind_, key, count, latest_at in groups[:limit]
    ]
    last = cases[-1] if len(groups) > limit else None
    return Page(
        cases, encode_cursor([last.latest_at.isoformat(), last.kind, last.key]) if last else None
    )


def _position(cursor: str) -> tuple[datetime, str, str]:
    values = decode_cursor(cursor)
    if len(values) == 3 and all(isinstance(v, str) for v in values):
        stamp, kind, key = values
        try:
            at = datetime.fromisoformat(stamp)
        except ValueError:
            pass
        else:
            return (at if at.tzinfo else at.replace(tzinfo=UTC)), kind, key
    raise BadCursor(f"cursor {cursor[:40]!r} is not valid")


async def _case(
    session: AsyncSession, scope: ReadScope, kind: str, key: str, count: int, latest_at: datetime
) -> OpenCase:
    rows = (
        await session.execute(
            select(ReviewItemRow)
            .join(InteractionRow, InteractionRow.id == ReviewItemRow.interaction_id)
            .where(
                ReviewItemRow.settled_at.is_(None),
                ReviewItemRow.kind == kind,
                ReviewItemRow.key == key,
                discloses(scope),
            )
            .order_by(InteractionRow.occurred_at.desc(), ReviewItemRow.id.desc())
            .limit(SAMPLE)
        )
    ).scalars()
    sample = list(rows)
    named = next((r for r in sample if r.name), sample[0])
    return OpenCase(
        kind=kind,
        key=key,
        name=named.name,
        reason=sample[0].reason,
        candidates=tuple(dict.fromkeys(c for r in sample for c in r.candidates)),
        count=count,
        latest_at=latest_at,
        interaction_ids=tuple(r.interaction_id for r in sample),
    )


async def open_visible(session: AsyncSession, scope: ReadScope, key: str) -> int:
    """How many open questions about `key` the scope's user may see (and so answer)."""
    query = (
        select(func.count())
        .select_from(ReviewItemRow)
        .join(InteractionRow, InteractionRow.id == ReviewItemRow.interaction_id)
        .where(ReviewItemRow.key == key, ReviewItemRow.settled_at.is_(None), discloses(scope))
    )
    return int((await session.execute(query)).scalar_one())


async def settle(session: AsyncSession, key: str, actor: str, settlement: str) -> int:
    """Close every open question about `key`, whatever its kind: one decision answers all."""
    result = await session.execute(
        update(ReviewItemRow)
        .where(and_(ReviewItemRow.key == key, ReviewItemRow.settled_at.is_(None)))
        .values(settled_at=datetime.now(UTC), settled_by=actor, settlement=settlement)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def ignore(session: AsyncSession, key: str, actor: str) -> int:
    """Never ask about `key` again (matching reads the ignored keys into its index)."""
    exists = await session.execute(select(ReviewIgnoredRow.id).where(ReviewIgnoredRow.key == key))
    if exists.scalar_one_or_none() is None:
        session.add(ReviewIgnoredRow(key=key, actor=actor, at=datetime.now(UTC)))
        await bump_version(session)  # the ignored keys are part of the identity index
    return await settle(session, key, actor, f"ignored by {actor}")


async def ignored_keys(session: AsyncSession) -> set[str]:
    return set((await session.execute(select(ReviewIgnoredRow.key))).scalars())
