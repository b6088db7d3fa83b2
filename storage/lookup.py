"""The call-center look-up's own reads: the open review questions about a caller (/api/lookup,
/pop), and the items a call's own id names (`/api/interactions?external_id=`).

Each is a bounded number of exact index lookups, whatever the size of the tables: the screen
pop must answer before the phone has rung twice (bench/lookup.py, target p99 < 10 ms).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, func, literal_column, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from hub.model import ReadScope, record
from storage.tables import NativeIdRow, ReviewItemRow, SourceRow
from storage.visibility import discloses_kept

# Open rows read per key, at most: the thousand calls of a spam number stay one short read.
QUESTION_ROWS = 50
SAMPLE = 5  # items named per question
KEYS = 10  # addresses and numbers asked about, at most (a contact with many of them)
_NEVER = datetime.min.replace(tzinfo=UTC)


@record
class CallerQuestion:
    """One open review question (kind, key) about the caller, as far as the reader may see
    its items: `count` of them, all when `complete`, else the first QUESTION_ROWS."""

    kind: str
    key: str
    name: str
    reason: str
    count: int
    complete: bool
    latest_at: datetime | None
    interaction_ids: tuple[int, ...]


@functools.lru_cache(maxsize=64)
def _open_rows(scope: ReadScope, keys: int) -> Any:
    """Open rows of the keys bound as "key0", "key1", ... whose items the scope may see, each
    key tagged with its place: per key a range of the partial index ix_review_items_open (key,
    kind, occurred_at), read backwards, so that each kind's rows come newest first. The keys'
    ranges are one UNION ALL, each part with its own ORDER BY and LIMIT (and so its index
    range): on PostgreSQL a round trip costs more than reading a range."""
    parts = []
    for n in range(keys):
        rows = (
            select(
                ReviewItemRow.kind,
                ReviewItemRow.name,
                ReviewItemRow.reason,
                ReviewItemRow.occurred_at,
                ReviewItemRow.interaction_id,
            )
            .where(
                ReviewItemRow.key == bindparam(f"key{n}"),
                ReviewItemRow.settled_at.is_(None),
                discloses_kept(scope, ReviewItemRow),
            )
            .order_by(ReviewItemRow.kind.desc(), ReviewItemRow.occurred_at.desc())
            .limit(QUESTION_ROWS + 1)
            .subquery(f"key{n}")
        )
        parts.append(select(literal_column(str(n)).label("asked"), *rows.c))
    return parts[0] if keys == 1 else union_all(*parts)


async def open_questions(
    session: AsyncSession, scope: ReadScope, keys: Iterable[str]
) -> list[CallerQuestion]:
    """The open questions about each of `keys` (normalised addresses and E.164 numbers), the
    most recent first; one statement, of at most QUESTION_ROWS + 1 rows per key."""
    asked = list(dict.fromkeys(keys))[:KEYS]
    if not asked:
        return []
    connection = await session.connection()
    per_key: list[list[Any]] = [[] for _ in asked]
    bound = {f"key{n}": key for n, key in enumerate(asked)}
    for row in await connection.execute(_open_rows(scope, len(asked)), bound):
        per_key[row.asked].append(row)
    found: list[CallerQuestion] = []
    for key, rows in zip(asked, per_key, strict=True):
        # Each part took its rows in its own order, but a UNION ALL need not keep it.
        rows.sort(key=lambda r: (r.kind, r.occurred_at), reverse=True)
        complete = len(rows) <= QUESTION_ROWS
        by_kind: dict[str, list[Any]] = {}
        for row in rows[:QUESTION_ROWS]:
            by_kind.setdefault(row.kind, []).append(row)
        for kind, same in by_kind.items():
            named = next((r.name for r in same if r.name), "")
            found.append(
                CallerQuestion(
                    kind=kind,
                    key=key,
                    name=named,
                    reason=same[0].reason,
                    count=len(same),
                    complete=complete,
                    latest_at=same[0].occurred_at,
                    interaction_ids=tuple(r.interaction_id for r in same[:SAMPLE]),
                )
            )
    return sorted(found, key=lambda q: q.latest_at or _NEVER, reverse=True)


NATIVE_ID_LENGTH = 200  # native_ids.native_id: a longer id names no call
_NEXT = aliased(SourceRow, name="later")


@functools.cache
def _connector_names() -> Any:
    """Every connector name that sources hold, removed connectors' too (their items stay):
    a loose scan of ix_sources_connector_time, one index seek per name."""
    first = select(func.min(SourceRow.connector).label("name"))
    names = first.cte("named_connectors", recursive=True)
    following = (
        select(func.min(_NEXT.connector)).where(_NEXT.connector > names.c.name).scalar_subquery()
    )
    names = names.union_all(
        select(following.label("name")).select_from(names).where(names.c.name.is_not(None))
    )
    return select(names.c.name).where(names.c.name.is_not(None))


async def items_named(session: AsyncSession, connector: str | None, external_id: str) -> list[int]:
    """Ids of the items `external_id` names: with `connector`, its source id there (the
    unique (connector, external_id) index); without, the source id in any connector or a
    native id (a Twilio CallSid, an Asterisk uniqueid or linkedid; native_ids' unique
    (native_id, interaction_id) index). Exact lookups, no walk over items."""
    if connector:
        rows = await session.execute(
            select(SourceRow.interaction_id).where(
                SourceRow.connector == connector, SourceRow.external_id == external_id
            )
        )
        return sorted({r[0] for r in rows})
    names = [r[0] for r in await session.execute(_connector_names())]
    found: set[int] = set()
    if names:
        rows = await session.execute(
            select(SourceRow.interaction_id).where(
                SourceRow.connector.in_(names), SourceRow.external_id == external_id
            )
        )
        found.update(r[0] for r in rows)
    if len(external_id) <= NATIVE_ID_LENGTH:
        rows = await session.execute(
            select(NativeIdRow.interaction_id).where(NativeIdRow.native_id == external_id)
        )
        found.update(r[0] for r in rows)
    return sorted(found)
