"""Read side: accounts, contacts, timelines and interactions, paged by keyset cursors."""

from __future__ import annotations

import base64
import functools
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    String,
    and_,
    bindparam,
    exists,
    func,
    literal_column,
    or_,
    select,
    tuple_,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from hub.model import Disclosure, ReadScope
from storage import fulltext
from storage.directory_reads import (
    StoredAccount,
    StoredContact,
    accounts_where,
    contacts_where,
    contacts_with_accounts_where,
)
from storage.items import stored_interactions
from storage.lookup import items_named
from storage.tables import (
    MAX_ID,
    AccountDomainRow,
    AccountRow,
    AttributionRow,
    AuditRow,
    ContactEmailRow,
    ContactPhoneRow,
    ContactRow,
    Id,
    InteractionRow,
    ParticipantRow,
    QuarantineRow,
    SourceRow,
    UtcDateTime,
)
from storage.visibility import discloses, text_matches

MAX_LIMIT = 200
Rows = Select[*tuple[Any, ...]]  # a select of any columns


class BadCursor(ValueError):
    """A pagination cursor that this server did not hand out."""


def encode_cursor(values: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> list[Any]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, UnicodeDecodeError) as e:
        raise BadCursor(f"cursor {cursor[:40]!r} is not valid") from e
    if not isinstance(values, list):
        raise BadCursor(f"cursor {cursor[:40]!r} is not valid")
    return values


@dataclass
class Page:
    items: list[Any]
    next_cursor: str | None
    # Towards newer items (timelines): whether there are any, and the cursor of the page that
    # shows them (None for the first page).
    has_newer: bool = False
    newer_cursor: str | None = None
    # A timeline's first page starts with what is still ahead (next first, at most UPCOMING);
    # True when more is ahead than it shows (the `until` filter reads further).
    more_upcoming: bool = False


@dataclass(frozen=True)
class TimelineFilter:
    channel: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    q: str | None = None
    # Unmatched items by why matching left them (matching.engine sets `not_logged`):
    # "unknown" (nobody knows the other party), "internal" (staff only), "bulk".
    unmatched_as: str | None = None


UNMATCHED_TABS = ("unknown", "internal", "bulk")


async def list_accounts(
    session: AsyncSession, q: str | None, cursor: str | None, limit: int
) -> Page:
    query = select(AccountRow).order_by(AccountRow.name, AccountRow.id)
    if q:
        like = f"%{q.lower()}%"
        query = query.where(
            or_(
                func.lower(AccountRow.name).like(like),
                exists().where(
                    AccountDomainRow.account_id == AccountRow.id, AccountDomainRow.domain.like(like)
                ),
            )
        )
    if cursor:
        name, id_ = decode_cursor(cursor)
        query = query.where(
            or_(AccountRow.name > name, and_(AccountRow.name == name, AccountRow.id > id_))
        )
    return await _keyset(session, query, limit, lambda row: [row.name, row.id])


async def contacts_of(session: AsyncSession, account_id: int) -> list[StoredContact]:
    return await contacts_where(
        session, ContactRow.account_id == account_id, order=(ContactRow.name, ContactRow.id)
    )


def _live(attribution: Any) -> Any:
    return and_(attribution, AttributionRow.removed.is_(False))


async def _keyset(
    session: AsyncSession, query: Select[Any], limit: int, position: Callable[[Any], list[Any]]
) -> Page:
    """One page of `query` (already ordered and started after the cursor); the next cursor is
    the `position` of its last row, handed out only when one more row exists."""
    rows = list((await session.execute(query.limit(limit + 1))).scalars().unique())
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(rows, encode_cursor(position(rows[-1])) if more and rows else None)


Position = tuple[datetime, int]  # (occurred_at, interaction id): where a timeline page starts

# The tables a timeline range is read from, aliased because a visibility or text condition
# asks about the item's own attributions and sources. Built once: an alias built per request
# copied every column of its table and was half the Python time of a timeline (profiled).
_LINK = aliased(AttributionRow, name="link")
_NAMED = aliased(ParticipantRow, name="named")
_OWNED = aliased(SourceRow, name="owned")


def _position(cursor: str | None) -> Position | None:
    if not cursor:
        return None
    values = decode_cursor(cursor)
    try:
        stamp, id_ = values
        at = datetime.fromisoformat(stamp)
    except (TypeError, ValueError) as e:
        raise BadCursor("cursor is not valid") from e
    if not isinstance(id_, int) or isinstance(id_, bool) or at.tzinfo is None:
        raise BadCursor("cursor is not valid")
    return at, id_


def _filtered(query: Rows, at: Any, scope: ReadScope | None, f: TimelineFilter) -> Rows:
    """The timeline filters; time bounds on `at`, the column the driving index orders by. The
    scope is needed for a text search only."""
    if f.channel:
        query = query.where(InteractionRow.channel == f.channel)
    if f.since:
        query = query.where(at >= f.since)
    if f.until:
        query = query.where(at < f.until)
    if f.q:
        assert scope is not None, "a text search is within what a user may read"
        query = query.where(text_matches(scope, f.q))
    if f.unmatched_as == "unknown":
        query = query.where(InteractionRow.not_logged == "")
    elif f.unmatched_as == "internal":
        query = query.where(InteractionRow.not_logged == "internal only")
    elif f.unmatched_as == "bulk":
        query = query.where(InteractionRow.not_logged.startswith("bulk"))
    return query


# The bounds of a timeline range, bound per request: a range's statements are built once per
# shape (_ranges) and differ only in these values, so that neither SQLAlchemy nor the databases
# build, compile or plan them again. Building them per request was half of a timeline's Python
# time (profiled), and PostgreSQL planned each one anew.
_KEY = bindparam("key", type_=Id)  # the account or contact
_OWNER = bindparam("owner", type_=String())
_AT = bindparam("at", type_=UtcDateTime())
_ITEM = bindparam("item", type_=Id)


@dataclass(frozen=True)
class _Range:
    """(time, item) rows of one index range, newest first, `batch` at a time: from the start,
    or after the position bound as "at" and "item".

    The position is a row-value bound, `(time, id) < (t, n)`: both databases use it as the end
    of an index range. Written as `t < x OR (t = x AND id < n)` it was a filter, and page 21
    read 20 pages of rows before the first one it showed."""

    first: Rows
    after: Rows
    batch: int
    newer: Rows  # oldest first, from the position bound as "at" and "item" towards the newest


def _range(query: Rows, at: Any, item: Any, batch: int) -> _Range:
    ordered = query.order_by(at.desc(), item.desc()).limit(batch)
    back = query.order_by(at.asc(), item.asc()).limit(batch)
    return _Range(
        ordered,
        ordered.where(tuple_(at, item) < tuple_(_AT, _ITEM)),
        batch,
        back.where(tuple_(at, item) > tuple_(_AT, _ITEM)),
    )


async def _oldest_newer(
    session: AsyncSession, walk: _Range, bounds: dict[str, Any], since: Position, want: int
) -> list[Position]:
    """`_newest` the other way: the first `want` distinct positions newer than `since`, oldest
    first (the same index range, read backwards)."""
    connection = await session.connection()
    found: list[Position] = []
    while True:
        at, item = since
        rows = (await connection.execute(walk.newer, {**bounds, "at": at, "item": item})).all()
        for row_at, row_item in rows:
            if not found or found[-1][1] != row_item:
                found.append((row_at, row_item))
        if len(found) >= want or len(rows) < walk.batch:
            return found[:want]
        since = (rows[-1][0], rows[-1][1])


async def _with_newer(
    session: AsyncSession,
    walks: tuple[_Range, ...],
    bounds: dict[str, Any],
    page: Page,
    first: Position | None,
    limit: int,
    now: Position | None = None,
) -> Page:
    """The page with its way back: the `limit` items just newer than its first make the page
    before it, which starts after the item newer still (or is the first page). Past `now`
    (when given) is the first page's upcoming block, not a page of its own."""
    if first is None:
        return page
    ranges = [await _oldest_newer(session, w, bounds, first, limit + 1) for w in walks]
    unique = sorted({id_: (at, id_) for found in ranges for at, id_ in found}.values())
    if now is not None and unique:
        ahead = len(unique)
        unique = [p for p in unique if p <= now]
        if not unique and ahead:
            return Page(page.items, page.next_cursor, True, None)
    newer = unique[: limit + 1]
    if not newer:
        return page
    cursor = None
    if len(newer) > limit:
        at, id_ = newer[limit]
        cursor = encode_cursor([at.isoformat(), id_])
    return Page(page.items, page.next_cursor, True, cursor)


async def _newest(
    session: AsyncSession,
    walk: _Range,
    bounds: dict[str, Any],
    before: Position | None,
    want: int,
) -> list[Position]:
    """The first `want` distinct (time, item) of `walk`, newest first, after `before`.

    A range may name an item more than once (an item attributed to two contacts of one
    account): such rows are neighbours in this order, so they are dropped as they come, and
    the next batch starts after the last row read.
    """
    connection = await session.connection()  # Core: plain rows, no ORM context
    found: list[Position] = []
    while True:
        if before is None:
            rows = (await connection.execute(walk.first, bounds)).all()
        else:
            at, item = before
            rows = (await connection.execute(walk.after, {**bounds, "at": at, "item": item})).all()
        for row_at, row_item in rows:
            if not found or found[-1][1] != row_item:
                found.append((row_at, row_item))
        if len(found) >= want or len(rows) < walk.batch:
            return found[:want]
        before = (rows[-1][0], rows[-1][1])


async def _merged(
    session: AsyncSession,
    walks: tuple[_Range, ...],
    bounds: dict[str, Any],
    before: Position | None,
    want: int,
) -> list[Position]:
    """`_newest` over several ranges, merged: an item any of them reaches once, newest first.

    The ranges' first batches are one statement (`_first_batches`): on PostgreSQL a round trip
    and its driver overhead cost more than reading a batch, and a contact's timeline and the
    screen pop read two ranges per contact. A range whose batch held repeats and ran short
    goes on by itself."""
    if len(walks) == 1:
        return await _newest(session, walks[0], bounds, before, want)
    connection = await session.connection()
    batches: list[list[Position]] = [[] for _ in walks]
    after = before is not None
    position = {"at": before[0], "item": before[1]} if before is not None else {}
    for n, at, item in await connection.execute(
        _first_batches(walks, after), {**bounds, **position}
    ):
        batches[n].append((at, item))
    ranges = []
    for walk, rows in zip(walks, batches, strict=True):
        # Each part took its rows in its own order, but a UNION ALL need not keep it.
        rows.sort(reverse=True)
        found = _distinct(rows)
        if len(found) < want and len(rows) == walk.batch:
            found += await _newest(session, walk, bounds, rows[-1], want - len(found))
        ranges.append(found)
    return _union(ranges, want)


def _distinct(rows: list[Position]) -> list[Position]:
    """Rows of one range without an item's neighbouring repeats (see `_newest`)."""
    found: list[Position] = []
    for at, item in rows:
        if not found or found[-1][1] != item:
            found.append((at, item))
    return found


@functools.lru_cache(maxsize=256)
def _first_batches(walks: tuple[_Range, ...], after: bool) -> Any:
    """Each range's first batch (`after` the position bound as "at" and "item", else from the
    start), tagged with the range's place in `walks`, as one UNION ALL of the ranges' own
    statements: each keeps its ORDER BY and LIMIT, and so its index range (and no sort); the
    rows are put in order again in Python."""
    parts = []
    for n, walk in enumerate(walks):
        batch = (walk.after if after else walk.first).subquery(f"walk{n}")
        at, item = batch.c
        parts.append(select(literal_column(str(n)).label("walk"), at, item))
    return union_all(*parts)


def _union(ranges: list[list[Position]], want: int) -> list[Position]:
    """The newest `want` of several ranges' positions, each item once."""
    unique = {id_: (at, id_) for found in ranges for at, id_ in found}
    return sorted(unique.values(), reverse=True)[:want]


def _first(positions: list[Position]) -> Position | None:
    return positions[0] if positions else None


async def _page_of(session: AsyncSession, positions: list[Position], limit: int) -> Page:
    """The items at `positions` (one more than a page when there is a next page)."""
    shown = positions[:limit]
    items = await stored_interactions(session, [id_ for _, id_ in shown])
    more = len(positions) > limit and shown
    return Page(items, encode_cursor([shown[-1][0].isoformat(), shown[-1][1]]) if more else None)


@functools.lru_cache(maxsize=256)
def _ranges(
    kind: str, scope: ReadScope | None, f: TimelineFilter, batch: int
) -> tuple[_Range, ...]:
    """The ranges of an account's ("account") or a contact's ("contact") timeline, bound to
    it by "key"; built once per shape (a filter's values are part of its shape)."""
    if kind == "account":
        # Every item here is attributed: only a text search needs the scope (callers pass None
        # otherwise, so that all users share one statement).
        a = _LINK
        query = select(a.occurred_at, a.interaction_id).where(
            a.account_id == _KEY, a.removed.is_(False)
        )
        if f.channel or f.q:
            query = query.join(InteractionRow, InteractionRow.id == a.interaction_id)
        return (
            _range(
                _filtered(query, a.occurred_at, scope, f), a.occurred_at, a.interaction_id, batch
            ),
        )
    assert scope is not None
    a, p = _LINK, _NAMED
    walks = []
    for table, linked in (
        (a, and_(a.contact_id == _KEY, a.removed.is_(False))),
        (p, p.contact_id == _KEY),
    ):
        query = (
            select(table.occurred_at, table.interaction_id)
            .join(InteractionRow, InteractionRow.id == table.interaction_id)
            .where(linked, discloses(scope))
        )
        walks.append(
            _range(
                _filtered(query, table.occurred_at, scope, f),
                table.occurred_at,
                table.interaction_id,
                batch,
            )
        )
    return tuple(walks)


def _batch(want: int) -> int:
    """Rows read for `want` items: an item linked twice (to two contacts of one account) is
    read twice. With `want + 8`, one page in three of the bench's typical accounts (1.19 rows
    per item) ran short and read a second batch: a round trip more than a few index rows."""
    return want * 3 // 2 + 8


async def _account_positions(
    session: AsyncSession,
    scope: ReadScope,
    account_id: int,
    f: TimelineFilter,
    before: Position | None,
    want: int,
) -> list[Position]:
    walks = _ranges("account", scope if f.q else None, f, _batch(want))
    return await _merged(session, walks, {"key": account_id}, before, want)


async def _contact_positions(
    session: AsyncSession,
    scope: ReadScope,
    contact_id: int,
    f: TimelineFilter,
    before: Position | None,
    want: int,
) -> list[Position]:
    walks = _ranges("contact", scope, f, _batch(want))
    return await _merged(session, walks, {"key": contact_id}, before, want)


UPCOMING = 5  # items still ahead that a timeline's first page shows, next first


async def _timeline(
    session: AsyncSession,
    kind: str,
    scope: ReadScope | None,
    key: int,
    f: TimelineFilter,
    cursor: str | None,
    limit: int,
) -> Page:
    """A timeline page. The first one (no cursor, no `until`) starts at now: what is still
    ahead comes first, next first (at most UPCOMING, read as the timeline's own index ranges
    backwards from now), then the past, newest first, up to `limit` in all; later pages go on
    into the past. With `until` the page starts there, future or not."""
    bounds = {"key": key}
    before = _position(cursor)
    ceiling: Position | None = None
    ahead: list[Position] = []
    more_ahead = False
    if before is None and f.until is None:
        before = ceiling = (datetime.now(UTC), MAX_ID)
        want = min(UPCOMING, limit)
        upcoming = _ranges(kind, scope, f, _batch(want + 1))
        found_ahead = [await _oldest_newer(session, w, bounds, ceiling, want + 1) for w in upcoming]
        ahead = sorted({i: (at, i) for found in found_ahead for at, i in found}.values())
        more_ahead = len(ahead) > want
        ahead = ahead[:want]
    want = limit - len(ahead) + 1
    past = await _merged(session, _ranges(kind, scope, f, _batch(want)), bounds, before, want)
    shown_past = past[: limit - len(ahead)]
    items = await stored_interactions(session, [i for _, i in ahead + shown_past])
    next_cursor = None
    if len(past) > len(shown_past):
        last = shown_past[-1] if shown_past else before
        assert last is not None
        next_cursor = encode_cursor([last[0].isoformat(), last[1]])
    page = Page(items, next_cursor, more_upcoming=more_ahead)
    if cursor is None:
        return page
    walks = _ranges(kind, scope, f, _batch(limit + 1))
    start = _first(shown_past) or _position(cursor)
    if f.until is None:
        ceiling = (datetime.now(UTC), MAX_ID)
    return await _with_newer(session, walks, bounds, page, start, limit, ceiling)


async def account_timeline(
    session: AsyncSession,
    scope: ReadScope,
    account_id: int,
    f: TimelineFilter,
    cursor: str | None,
    limit: int,
) -> Page:
    """Every item here is attributed, so it exists for every user (DESIGN.md "Who sees what");
    only a text search must stay within what the user may read. One range of
    ix_attributions_account_timeline per page, whatever the page and the table size (and on
    the first page the same range read ahead from now: `_timeline`)."""
    return await _timeline(session, "account", scope if f.q else None, account_id, f, cursor, limit)


async def contact_timeline(
    session: AsyncSession,
    scope: ReadScope,
    contact_id: int,
    f: TimelineFilter,
    cursor: str | None,
    limit: int,
) -> Page:
    """The items that name the contact, as attribution or as participant: two ranges of the
    (contact, time, item) indexes, merged. An item linked only as participant need not be
    attributed, so here the visibility condition is checked on each row read."""
    return await _timeline(session, "contact", scope, contact_id, f, cursor, limit)


COUNTED = 1_000  # items a timeline's head counts at most, the newest


@dataclass(frozen=True)
class ChannelCounts:
    """Items per channel of a timeline; `complete` is False when only the newest COUNTED
    were counted (a key account's ten thousand items: counting them all cost 30-45 ms on
    SQLite at a million items, on every page of its timeline)."""

    counts: dict[str, int]
    complete: bool


@dataclass(frozen=True)
class TimelineHead:
    """What a timeline's head shows besides its counts: last contact and next (a meeting
    booked ahead), each the end of an index range of (account or contact, time). A contact
    counts attributions only here: being copied on a mail is not contact."""

    counts: ChannelCounts
    last_at: datetime | None
    next_at: datetime | None


async def channel_counts(
    session: AsyncSession,
    scope: ReadScope,
    kind: str,
    key: int,
    since: datetime | None = None,
    until: datetime | None = None,
) -> ChannelCounts:
    """How many items an account's ("account") or a contact's ("contact") timeline holds per
    channel, between `since` and `until`: the header's counts, the filter's channels and the
    total to page through. The newest COUNTED items of each index range (the timeline's own)
    are counted, so the cost is bounded whatever the size. An account's items are all
    attributed, so they exist for every user; a contact's named-only items are counted as the
    user may see them."""
    return (await _head(session, scope, kind, key, since, until, None)).counts


async def timeline_head(
    session: AsyncSession, scope: ReadScope, kind: str, key: int, now: datetime
) -> TimelineHead:
    """The whole timeline's counts (channel_counts) with its last and next contact, in one
    statement: on PostgreSQL each round trip of a page costs more than these reads."""
    return await _head(session, scope, kind, key, None, None, now)


async def _head(
    session: AsyncSession,
    scope: ReadScope,
    kind: str,
    key: int,
    since: datetime | None,
    until: datetime | None,
    now: datetime | None,
) -> TimelineHead:
    statement = _head_statement(
        kind, scope if kind != "account" else None, bool(since), bool(until), bool(now)
    )
    bound = {"key": key, "counted": COUNTED + 1, "since": since, "until": until, "now": now}
    rows = (await session.execute(statement, bound)).all()
    if not rows:  # nothing in range: nothing attributed either, so no last or next
        return TimelineHead(ChannelCounts({}, True), None, None)
    first = rows[0]
    complete = all(size <= COUNTED for size in first[2 : 2 + (1 if kind == "account" else 2)])
    counts = ChannelCounts({row[0]: row[1] for row in rows}, complete)
    if now is None:
        return TimelineHead(counts, None, None)
    return TimelineHead(counts, first.last_at, first.next_at)


@functools.lru_cache(maxsize=256)
def _head_statement(
    kind: str, scope: ReadScope | None, since: bool, until: bool, ends: bool
) -> Any:
    """Counts per channel over the newest "counted" rows of each of the timeline's index
    ranges, each range's size (whether the count is complete), and with `ends` the last and
    next contact: uncorrelated subqueries, run once per statement. Built once per shape."""
    a, p = _LINK, _NAMED
    key = bindparam("key", type_=Id)
    owner = a.account_id == key if kind == "account" else a.contact_id == key
    parts: list[tuple[Any, Any]] = [
        (select(a.interaction_id, a.occurred_at).where(owner, a.removed.is_(False)), a)
    ]
    if kind != "account":
        parts.append((select(p.interaction_id, p.occurred_at).where(p.contact_id == key), p))
    ranges = []
    for query, table in parts:
        at = table.occurred_at
        if since:
            query = query.where(at >= bindparam("since", type_=UtcDateTime()))
        if until:
            query = query.where(at < bindparam("until", type_=UtcDateTime()))
        limit = bindparam("counted", type_=Integer)
        ranges.append(query.order_by(at.desc()).limit(limit).subquery())
    ids = union_all(*(select(r.c.interaction_id) for r in ranges))
    condition: Any = InteractionRow.id.in_(ids)
    if scope is not None:
        condition = and_(condition, discloses(scope))
    sizes = [
        select(func.count()).select_from(r).scalar_subquery().label(f"size{n}")
        for n, r in enumerate(ranges)
    ]
    columns: list[Any] = [InteractionRow.channel, func.count().label("count"), *sizes]
    if ends:
        now = bindparam("now", type_=UtcDateTime())
        live = and_(owner, a.removed.is_(False))
        last = select(func.max(a.occurred_at)).where(live, a.occurred_at <= now)
        next_ = select(func.min(a.occurred_at)).where(live, a.occurred_at > now)
        columns += [
            last.scalar_subquery().label("last_at"),
            next_.scalar_subquery().label("next_at"),
        ]
    return select(*columns).where(condition).group_by(InteractionRow.channel)


def _timed(query: Any, at: Any, since: datetime | None, until: datetime | None) -> Any:
    if since:
        query = query.where(at >= since)
    if until:
        query = query.where(at < until)
    return query


async def references_of(session: AsyncSession, scope: ReadScope, message_id: str) -> list[str]:
    """The References a reply to `message_id` carries: the mail's own, then its id; only from
    a mail the scope may see (ix_interactions_message_id)."""
    found = (
        await session.execute(
            select(InteractionRow.references)
            .where(InteractionRow.message_id == message_id, discloses(scope))
            .limit(1)
        )
    ).first()
    chain = [r for r in (found[0] if found else None) or [] if isinstance(r, str)]
    return [*[r for r in chain if r != message_id], message_id]


async def thread_of(
    session: AsyncSession, scope: ReadScope, thread_id: str, limit: int
) -> list[Any]:
    """A thread's items the scope may see, oldest first (ix_interactions_thread_id): a mail's
    page shows the whole conversation."""
    ids = (
        await session.execute(
            select(InteractionRow.id)
            .where(InteractionRow.thread_id == thread_id, discloses(scope))
            .order_by(InteractionRow.occurred_at, InteractionRow.id)
            .limit(limit)
        )
    ).scalars()
    return await stored_interactions(session, list(ids))


async def thread_sizes(
    session: AsyncSession, scope: ReadScope, thread_ids: set[str]
) -> dict[str, int]:
    """How many items of each thread the scope may see: a timeline's thread rows say so."""
    if not thread_ids:
        return {}
    rows = await session.execute(
        select(InteractionRow.thread_id, func.count())
        .where(InteractionRow.thread_id.in_(thread_ids), discloses(scope))
        .group_by(InteractionRow.thread_id)
    )
    return {thread: count for thread, count in rows if thread}


async def latest_of(
    session: AsyncSession,
    scope: ReadScope,
    contact_ids: list[int],
    account_ids: list[int],
    limit: int,
) -> list[Any]:
    """The newest `limit` items of these contacts and accounts together (the call-center
    look-up): one timeline index range each, merged, and only the shown items are read."""
    everything = TimelineFilter()
    ranges = [
        await _contact_positions(session, scope, id_, everything, None, limit)
        for id_ in contact_ids
    ] + [
        await _account_positions(session, scope, id_, everything, None, limit)
        for id_ in account_ids
    ]
    return (await _page_of(session, _union(ranges, limit), limit)).items


async def list_interactions(
    session: AsyncSession,
    scope: ReadScope,
    *,
    message_id: str | None = None,
    connector: str | None = None,
    external_id: str | None = None,
    unmatched: bool | None = None,
    f: TimelineFilter = TimelineFilter(),
    cursor: str | None = None,
    limit: int = 50,
) -> Page:
    before, want = _position(cursor), limit + 1
    if external_id:
        named = await items_named(session, connector, external_id)
        conditions = _listing(scope, message_id, None, None, unmatched)
        found = await _named_positions(session, scope, conditions, named, f, before, want)
        return await _page_of(session, found, limit)
    conditions = _listing(scope, message_id, connector, external_id, unmatched)
    if f.q and not unmatched:
        return await _search_page(session, scope, list(conditions), f, before, limit)
    if unmatched:
        found = await _owned_positions(session, scope, conditions, f, before, want)
    else:
        (walk,) = _listing_ranges(conditions, scope, f, _batch(want))
        found = await _newest(session, walk, {}, before, want)
    return await _page_of(session, found, limit)


async def _named_positions(
    session: AsyncSession,
    scope: ReadScope,
    conditions: _Conditions,
    named: list[int],
    f: TimelineFilter,
    before: Position | None,
    want: int,
) -> list[Position]:
    """The items an external id names (storage.lookup.items_named: a few, found by exact
    index lookups) that meet the listing's other conditions, the scope's visibility among
    them: read by key and ordered here. With ORDER BY in SQL, a planner may walk every item
    by time to spare sorting the few (PostgreSQL did, test_query_plans)."""
    if not named:
        return []
    at, item = InteractionRow.occurred_at, InteractionRow.id
    query = _filtered(select(at, item).where(item.in_(named), *conditions), at, scope, f)
    found = sorted(((a, i) for a, i in await session.execute(query)), reverse=True)
    return [p for p in found if before is None or p < before][:want]


class _Conditions(tuple[ColumnElement[bool], ...]):
    """A listing's conditions, built once per listing (_listing), hashed and compared by
    identity: SQL expressions compare into SQL, not into a bool."""

    __hash__ = object.__hash__

    def __eq__(self, other: object) -> bool:
        return self is other


@functools.lru_cache(maxsize=256)
def _listing(
    scope: ReadScope,
    message_id: str | None,
    connector: str | None,
    external_id: str | None,
    unmatched: bool | None,
) -> _Conditions:
    conditions: list[ColumnElement[bool]] = [discloses(scope)]
    if message_id:
        conditions.append(InteractionRow.message_id == message_id)
    if connector or external_id:
        named = [SourceRow.interaction_id == InteractionRow.id]
        if connector:
            named.append(SourceRow.connector == connector)
        if external_id:
            named.append(SourceRow.external_id == external_id)
        conditions.append(exists().where(*named))
    if unmatched is not None:
        has = exists().where(_live(AttributionRow.interaction_id == InteractionRow.id))
        conditions.append(~has if unmatched else has)
    return _Conditions(conditions)


@functools.lru_cache(maxsize=256)
def _listing_ranges(
    conditions: _Conditions, scope: ReadScope, f: TimelineFilter, batch: int
) -> tuple[_Range, ...]:
    query = select(InteractionRow.occurred_at, InteractionRow.id).where(*conditions)
    query = _filtered(query, InteractionRow.occurred_at, scope, f)
    return (_range(query, InteractionRow.occurred_at, InteractionRow.id, batch),)


async def _search_page(
    session: AsyncSession,
    scope: ReadScope,
    conditions: list[ColumnElement[bool]],
    f: TimelineFilter,
    before: Position | None,
    limit: int,
) -> Page:
    """A page of a text search through the full-text index (storage.fulltext), newest first."""
    where = list(conditions)
    if f.channel:
        where.append(InteractionRow.channel == f.channel)
    if f.since:
        where.append(InteractionRow.occurred_at >= f.since)
    if f.until:
        where.append(InteractionRow.occurred_at < f.until)
    ids = await fulltext.search_ids(session, scope, f.q or "", where, before, limit + 1)
    items = await stored_interactions(session, ids[:limit])
    last = items[-1] if len(ids) > limit and items else None
    return Page(items, encode_cursor([last.occurred_at.isoformat(), last.id]) if last else None)


async def _owned_positions(
    session: AsyncSession,
    scope: ReadScope,
    conditions: _Conditions,
    f: TimelineFilter,
    before: Position | None,
    want: int,
) -> list[Position]:
    """Unattributed items exist only for their owners (and, for IT, those nobody owns): they
    are read from the ranges of ix_sources_owner_timeline of the user (and of owner "").
    Walking all items by time instead read everybody's mail to find one user's few."""
    owners = [scope.email] if scope.email else []
    if scope.ownerless is not Disclosure.NONE:
        owners.append("")
    (walk,) = _owned_ranges(conditions, scope, f, _batch(want))
    return _union(
        [await _newest(session, walk, {"owner": owner}, before, want) for owner in owners], want
    )


@functools.lru_cache(maxsize=256)
def _owned_ranges(
    conditions: _Conditions, scope: ReadScope, f: TimelineFilter, batch: int
) -> tuple[_Range, ...]:
    source = _OWNED
    query = (
        select(source.occurred_at, source.interaction_id)
        .join(InteractionRow, InteractionRow.id == source.interaction_id)
        .where(source.owner == _OWNER, *conditions)
    )
    query = _filtered(query, source.occurred_at, scope, f)
    return (_range(query, source.occurred_at, source.interaction_id, batch),)


async def quarantine(
    session: AsyncSession, owner: str | None, cursor: str | None, limit: int
) -> Page:
    """Quarantined items, newest first: all of them, or with `owner` those of that owner."""
    query = select(QuarantineRow).order_by(QuarantineRow.id.desc())
    if owner is not None:
        query = query.where(QuarantineRow.owner == owner)
    if cursor:
        query = query.where(QuarantineRow.id < decode_cursor(cursor)[0])
    return await _keyset(session, query, limit, lambda row: [row.id])


async def contacts_by_identity(
    session: AsyncSession, *, email: str | None = None, phone: str | None = None
) -> tuple[list[StoredContact], dict[int, StoredAccount]]:
    """The contacts with this address or number, and their accounts, by id."""
    via: type[ContactEmailRow | ContactPhoneRow]
    if email:
        named, via = ContactEmailRow.address == email, ContactEmailRow
    elif phone:
        named, via = ContactPhoneRow.e164 == phone, ContactPhoneRow
    else:
        return [], {}
    # One row per contact: (contact, address) and (contact, number) are unique. Sorted here:
    # an ORDER BY made PostgreSQL prefer the (contact, number) index, in contact order.
    found, accounts = await contacts_with_accounts_where(session, named, via=via)
    return sorted(found, key=lambda c: c.id), accounts


async def accounts_by_ids(session: AsyncSession, ids: set[int]) -> dict[int, StoredAccount]:
    if not ids:
        return {}
    return {a.id: a for a in await accounts_where(session, AccountRow.id.in_(ids))}


async def contacts_by_ids(session: AsyncSession, ids: set[int]) -> dict[int, StoredContact]:
    if not ids:
        return {}
    return {c.id: c for c in await contacts_where(session, ContactRow.id.in_(ids))}


async def contact_names(session: AsyncSession, ids: set[int]) -> dict[int, str]:
    """Just the names (a detail page's parties), not the records with their addresses."""
    rows = await session.execute(
        select(ContactRow.id, ContactRow.name).where(ContactRow.id.in_(ids))
    )
    return {id_: name for id_, name in rows}


async def accounts_by_domains(session: AsyncSession, domains: list[str]) -> list[StoredAccount]:
    if not domains:
        return []
    holders = select(AccountDomainRow.account_id).where(AccountDomainRow.domain.in_(domains))
    return await accounts_where(session, AccountRow.id.in_(holders), order=(AccountRow.id,))


@dataclass(frozen=True)
class AuditFilter:
    actor: str | None = None
    action: str | None = None  # an action, or a prefix ending in "." ("user.")
    target: str | None = None
    since: datetime | None = None
    until: datetime | None = None


async def audit_log(session: AsyncSession, f: AuditFilter, cursor: str | None, limit: int) -> Page:
    """The audit log, newest first, filtered; paged by id (entries are only ever appended)."""
    query = select(AuditRow).order_by(AuditRow.id.desc())
    if f.actor:
        query = query.where(AuditRow.actor == f.actor)
    if f.action:
        if f.action.endswith("."):
            query = query.where(AuditRow.action.startswith(f.action, autoescape=True))
        else:
            query = query.where(AuditRow.action == f.action)
    if f.target:
        query = query.where(AuditRow.target == f.target)
    if f.since:
        query = query.where(AuditRow.at >= f.since)
    if f.until:
        query = query.where(AuditRow.at < f.until)
    if cursor:
        query = query.where(AuditRow.id < decode_cursor(cursor)[0])
    return await _keyset(session, query, limit, lambda row: [row.id])
