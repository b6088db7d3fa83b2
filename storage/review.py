"""The review queue: matching's open questions, stored per item, shown per sender or domain.

Rows are written with the items they concern (ingest, re-matching) and settled by a person.
A settlement changes the directory (storage.directory) or ignores the key; the re-matching that
follows is the hub's job.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Integer,
    String,
    and_,
    bindparam,
    delete,
    func,
    insert,
    select,
    sql,
    tuple_,
    type_coerce,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from hub.model import Channel, Disclosure, ReadScope, ReviewCase, record
from storage.directory import bump_version
from storage.items import bound_in, bound_list, bound_values, json_value
from storage.queries import BadCursor, Page, decode_cursor, encode_cursor
from storage.tables import (
    Id,
    InteractionRow,
    ParticipantRow,
    ReviewIgnoredRow,
    ReviewItemRow,
    UtcDateTime,
)
from storage.visibility import discloses, discloses_kept

SAMPLE = 5  # items shown per case


@record
class CaseItem:
    """One of a case's newest items, as far as the queue shows it: read with the case, what
    the viewer may read of it decided by the database (storage.visibility, held equal to
    hub.policy), so that no item is loaded whole. Loading a page's 250 items whole, to judge
    them in Python, was a third of the queue's time (profiled, 100,000 items)."""

    id: int
    occurred_at: datetime
    subject: str  # "" where the viewer may not read it
    body_readable: bool  # the viewer may read its body: suggestions may read its signature
    spellings: tuple[str, ...]  # the case's key as the item's participants wrote it


@record
class OpenCase:
    """One line of the queue: every open item of one (kind, key)."""

    kind: str
    key: str
    name: str
    reason: str
    candidates: tuple[int, ...]
    count: int
    latest_at: datetime
    items: tuple[CaseItem, ...]  # the newest SAMPLE, newest first

    @property
    def interaction_ids(self) -> tuple[int, ...]:
        return tuple(item.id for item in self.items)


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
        # The item's time, read by the database from the item the row names ("item").
        at = select(InteractionRow.occurred_at).where(InteractionRow.id == bindparam("item"))
        await session.execute(
            insert(ReviewItemRow).values(occurred_at=at.scalar_subquery()),
            [{**values, "item": values["interaction_id"]} for values in rows.values()],
        )
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


def _visible(scope: ReadScope) -> Any:
    """The rows of items the scope may see, by the access each row keeps of its item: the
    walk tests many rows to keep a few, and a case counts all of its rows."""
    return discloses_kept(scope, ReviewItemRow)


Case = tuple[str, str]  # (kind, key)
WALK = 200  # open rows read per step of the queue's walk, at most
# The first step reads a little more than a page of cases: most rows start a case of their
# own (a question per sender), and each row read is tested against the policy. Reading 200
# for a page of 25 was half of the walk's time (bench/reads.py, 1,000,000 items).
FIRST_STEP = 8


@functools.lru_cache(maxsize=256)
def _walk(scope: ReadScope, of_kind: bool, started: bool, after: bool) -> Any:
    """Open review rows of items `scope` may see, newest first (ix_review_items_queue), built
    once per shape: the kind, the page's start time and the step's last row are bound as
    "kind", "start", "after_at" and "after_id"."""
    query = (
        select(ReviewItemRow.occurred_at, ReviewItemRow.id, ReviewItemRow.kind, ReviewItemRow.key)
        .where(ReviewItemRow.settled_at.is_(None), _visible(scope))
        .order_by(ReviewItemRow.occurred_at.desc(), ReviewItemRow.id.desc())
        .limit(bindparam("step", type_=Integer))
    )
    if of_kind:
        query = query.where(ReviewItemRow.kind == bindparam("kind"))
    if started:
        query = query.where(ReviewItemRow.occurred_at <= bindparam("start", type_=UtcDateTime()))
    if after:
        query = query.where(
            tuple_(ReviewItemRow.occurred_at, ReviewItemRow.id)
            < tuple_(bindparam("after_at", type_=UtcDateTime()), bindparam("after_id", type_=Id))
        )
    return query


@functools.lru_cache(maxsize=256)
def _newer(scope: ReadScope, inclusive: bool) -> Any:
    """Whether a case ("kind", "key") has an open row the scope may see newer than "at" (or
    as new, with `inclusive`): a range of ix_review_items_open."""
    at = bindparam("at", type_=UtcDateTime())
    return (
        select(ReviewItemRow.id)
        .where(
            ReviewItemRow.settled_at.is_(None),
            ReviewItemRow.kind == bindparam("kind"),
            ReviewItemRow.key == bindparam("key"),
            ReviewItemRow.occurred_at >= at if inclusive else ReviewItemRow.occurred_at > at,
            _visible(scope),
        )
        .limit(1)
    )


async def _seen_before(
    session: AsyncSession, scope: ReadScope, case: Case, start: tuple[datetime, str, str]
) -> bool:
    """Whether `case` has an open item the scope may see newer than a page's start (or as new
    and ordered before it): then an earlier page showed it."""
    at, kind, key = start
    query = _newer(scope, case <= (kind, key))
    found = await session.execute(query, {"kind": case[0], "key": case[1], "at": at})
    return found.first() is not None


async def list_open(
    session: AsyncSession, scope: ReadScope, kind: str | None, cursor: str | None, limit: int
) -> Page:
    """Open cases, the most recently active first, paged by (latest item, kind, key), made of
    the items `scope` may see: a question about a private mail is its owner's alone.

    A keyset, not an offset: people settle cases while they page, and an offset would then
    skip as many unseen cases as were settled. The queue is walked newest item first: a case
    is first met at its latest item, so the walk stops after the page's cases (and any that
    tie with the last), instead of grouping every open question of the database.
    """
    start = _position(cursor) if cursor else None
    bound: dict[str, Any] = {"kind": kind, "start": start[0] if start else None}
    latest: dict[Case, datetime] = {}
    skipped: set[Case] = set()
    after: tuple[datetime, int] | None = None
    boundary: datetime | None = None
    size = min(WALK, 2 * limit + FIRST_STEP)
    while True:
        step = _walk(scope, kind is not None, start is not None, after is not None)
        if after is not None:
            bound["after_at"], bound["after_id"] = after
        bound["step"] = size
        rows = (await session.execute(step, bound)).all()
        for at, _id, kind_, key in rows:
            if boundary is not None and at < boundary:
                break  # every case met from here on sorts after the page and its next one
            case = (kind_, key)
            if case in latest or case in skipped:
                continue
            if start and await _seen_before(session, scope, case, start):
                skipped.add(case)
                continue
            latest[case] = at
            if len(latest) == limit + 1:
                boundary = at  # cases met later at this very time still tie with it
        else:
            if len(rows) == size:
                after = (rows[-1][0], rows[-1][1])
                size = WALK  # a long step from here on: the page has many rows per case
                continue
        break
    ordered = sorted(latest, key=lambda c: (-latest[c].timestamp(), c))[: limit + 1]
    cases = await _cases(session, scope, [(c, latest[c]) for c in ordered[:limit]])
    last = cases[-1] if len(ordered) > limit else None
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


@functools.lru_cache(maxsize=256)
def _sampled(scope: ReadScope, dialect: str) -> Any:
    """Each named case's open rows the scope may see, numbered newest first and counted per
    case by the database; the kinds and keys are bound as two lists ("kinds", "keys"), so
    the statement is built and prepared once. Joined from the list of keys, each key's rows
    are a range of ix_review_items_open (key, kind) on both databases; with the keys as an
    IN list SQLite weighed the list against the table and could scan it
    (test_query_plans)."""
    partition = (ReviewItemRow.kind, ReviewItemRow.key)
    newest = (ReviewItemRow.occurred_at.desc(), ReviewItemRow.id.desc())
    keys = bound_values(dialect, "keys", String)
    ranked = (
        select(
            ReviewItemRow.kind,
            ReviewItemRow.key,
            ReviewItemRow.name,
            ReviewItemRow.reason,
            ReviewItemRow.id,
            ReviewItemRow.interaction_id,
            func.row_number().over(partition_by=partition, order_by=newest).label("n"),
            func.count().over(partition_by=partition).label("total"),
        )
        .select_from(keys)
        .join(ReviewItemRow, ReviewItemRow.key == keys.c.value)
        .where(
            ReviewItemRow.settled_at.is_(None),
            bound_in(dialect, ReviewItemRow.kind, "kinds", String),
            _visible(scope),
        )
        .subquery()
    )
    # A case's candidates are those of its newest question (the directory as it is now): read
    # for that row alone. Carried through the window for every row, and united in Python,
    # a page's candidates were a tenth of the queue's time (a common name: 200 candidates).
    newest_candidates = (
        select(ReviewItemRow.candidates)
        .where(ReviewItemRow.id == ranked.c.id)
        .correlate(ranked)
        .scalar_subquery()
    )
    candidates = type_coerce(sql.case((ranked.c.n == 1, newest_candidates), else_=None), JSON)
    # Probed per row, like the walk's test: only the sampled rows are judged.
    subject = discloses(scope, Disclosure.SUBJECT, probed=True)
    body = sql.or_(
        discloses(scope, Disclosure.FULL, probed=True),
        sql.and_(InteractionRow.channel == Channel.CALL.value, subject),
    )
    return (
        select(
            ranked.c.kind,
            ranked.c.key,
            ranked.c.name,
            ranked.c.reason,
            candidates.label("candidates"),
            ranked.c.total,
            InteractionRow.id,
            InteractionRow.occurred_at,
            sql.case((subject, InteractionRow.subject), else_="").label("subject"),
            body.label("body_readable"),
            _spellings(dialect, ranked.c.key).label("spellings"),
        )
        .select_from(ranked)
        .join(InteractionRow, InteractionRow.id == ranked.c.interaction_id)
        .where(ranked.c.n <= SAMPLE)
        .order_by(ranked.c.kind, ranked.c.key, ranked.c.n)
    )


def _spellings(dialect: str, key: Any) -> Any:
    """How the item's participants wrote `key` (a JSON array), for suggestions that compare
    spellings: through the item's participant rows, a few per item."""
    address = ParticipantRow.address
    spelled = func.json_agg(address) if dialect == "postgresql" else func.json_group_array(address)
    return (
        select(spelled)
        .where(ParticipantRow.interaction_id == InteractionRow.id, ParticipantRow.normalized == key)
        .scalar_subquery()
    )


async def _cases(
    session: AsyncSession, scope: ReadScope, page: list[tuple[Case, datetime]]
) -> list[OpenCase]:
    """The page's cases with their counts and newest few items, in one statement."""
    if not page:
        return []
    connection = await session.connection()
    dialect = connection.dialect.name
    rows = await connection.execute(
        _sampled(scope, dialect),
        {
            "kinds": bound_list(dialect, sorted({kind for (kind, _), _ in page})),
            "keys": bound_list(dialect, sorted({key for (_, key), _ in page})),
        },
    )
    samples: dict[Case, list[Any]] = {}
    for row in rows:
        samples.setdefault((row.kind, row.key), []).append(row)
    cases = []
    for case, latest_at in page:
        sample = samples.get(case)
        if not sample:  # settled between the walk and now
            continue
        named = next((r for r in sample if r.name), sample[0])
        items = tuple(
            CaseItem(
                r.id,
                r.occurred_at,
                r.subject or "",
                bool(r.body_readable),
                tuple(json_value(r.spellings) if r.spellings is not None else ()),
            )
            for r in sample
        )
        cases.append(
            OpenCase(
                kind=case[0],
                key=case[1],
                name=named.name,
                reason=sample[0].reason,
                candidates=tuple(sample[0].candidates or ()),
                count=sample[0].total,
                latest_at=latest_at,
                items=items,
            )
        )
    return cases


async def open_visible(session: AsyncSession, scope: ReadScope, key: str) -> int:
    """How many open questions about `key` the scope's user may see (and so answer)."""
    query = (
        select(func.count())
        .select_from(ReviewItemRow)
        .where(ReviewItemRow.key == key, ReviewItemRow.settled_at.is_(None), _visible(scope))
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
