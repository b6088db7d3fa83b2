"""The full-text index of interactions: the words of subjects and bodies, German and English.

Analysis happens here, in Python, for both databases: fold (lower case, umlauts and accents
to their base letter, ß to ss), split into words of letters and digits, and stem every word
with the German and the English Snowball stemmer. An item is indexed under both stems of each
word; a query word matches either of its stems, and every word of a query must match. Both
databases hold the same terms, so what is found does not depend on the backend, and the rules
are tested without one (tests/unit/test_fulltext_terms.py). Subject and body terms are kept
apart: who may read which differs (storage.visibility.text_matches).

SQLite: an FTS5 table (subject, body) of the analysed terms, content stored, so that an entry
can be deleted by its rowid (3.40 has no contentless delete, and a contentless 'delete' needs
the very terms once indexed: a stemmer upgrade would corrupt the index). Its rowid is a time
key, (occurred_at in whole seconds << 31) | id, not the item's id: FTS5 returns matches in
rowid order, so "the newest matches" is a walk down the word's doclist that stops after one
page, for a word in 5 items or in 300,000 alike. Ties within a second are sorted exactly.

PostgreSQL: interaction_terms (interaction_id, occurred_at, terms tsvector) with a GIN index on
the terms and a b-tree on (occurred_at, interaction_id): a side table that carries the item's
time, so the planner can walk newest first and test @@ on the row it reads (common words), or
collect the few matches from the GIN index and sort them (rare words), and interactions stays
narrow for every timeline. Subject terms sit at position 1 with weight A, body terms at
position 2 with weight B; `'word':A` finds subjects only.

Measured with bench/fulltext.py at 1,000,000 items (a loaded 2-core machine, where reading one
item by id took 0.8-1.9 ms): a first page of 50 for a word in 5 items took 5-7 ms on SQLite
and 9-10 ms on PostgreSQL, for a word in 20 % of the items 5-9 and 12-28 ms.
"""

from __future__ import annotations

import calendar
import re
import threading
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import Stemmer
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Integer,
    MetaData,
    Table,
    Text,
    and_,
    bindparam,
    cast,
    exists,
    false,
    func,
    literal,
    literal_column,
    or_,
    select,
    tuple_,
    union,
)
from sqlalchemy.dialects.postgresql import TSQUERY, TSVECTOR
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import BindParameter, ColumnElement
from sqlalchemy.sql.visitors import InternalTraversal

from hub.model import ReadScope
from storage.packing import unpack_text
from storage.tables import CallNoteRow, InteractionRow, UtcDateTime
from storage.visibility import body_readable, subject_readable

MAX_WORD = 64  # longer "words" are encoded data (base64, hashes), never typed in a search
MAX_WORDS = 10_000  # distinct words indexed per field: a tsvector holds at most 1 MB
MAX_QUERY_WORDS = 32  # a query's words beyond these are not looked for (each costs a seek)
CHUNK = 500  # items per statement when deleting or re-indexing

# --- analysis -----------------------------------------------------------------------------

_WORD = re.compile(r"[^\W_]+")
# Combining marks left by NFKD: "ä" is "a" and U+0308, "é" is "e" and U+0301.
_MARKS = re.compile("[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]")
_local = threading.local()  # a PyStemmer stemmer is not thread-safe


def fold(text: str) -> str:
    """Lower case, compatibility forms resolved, accents and umlauts removed, ß as ss."""
    if text.isascii():
        return text.lower()
    return _MARKS.sub("", unicodedata.normalize("NFKD", text).casefold())


def words(text: str) -> list[str]:
    """The distinct folded words of `text`, in the order they first appear.

    Split at white space first, and look at each distinct piece once: a mail repeats its
    words. Measured on 3 KB bodies, the regular expression over the whole text took 200 us,
    folding the whole text (NFKD, case, marks) 130 us; this way both take a fraction of that.
    """
    if not text.isascii() and not unicodedata.is_normalized("NFC", text):
        text = unicodedata.normalize("NFC", text)  # "u" and U+0308 would split a word
    found: dict[str, None] = {}
    for piece in dict.fromkeys(text.split()):
        for token in (piece,) if piece.isalnum() else _WORD.findall(piece):
            for word in (token.lower(),) if token.isascii() else _WORD.findall(fold(token)):
                if len(word) <= MAX_WORD:
                    found[word] = None
    return list(found)


def _stemmers() -> tuple[Any, Any]:
    stemmers = getattr(_local, "stemmers", None)
    if stemmers is None:
        stemmers = _local.stemmers = (Stemmer.Stemmer("german"), Stemmer.Stemmer("english"))
    return stemmers


def stems(word: str) -> tuple[str, ...]:
    """A folded word's German and English stems (one, when they agree)."""
    german, english = _stemmers()
    return tuple(dict.fromkeys((german.stemWord(word), english.stemWord(word))))


def terms(text: str) -> list[str]:
    """What the index holds for `text`: both stems of each word, sorted, each once.

    Measured: PyStemmer (C) stems a word in 0.2 us, the pure-Python snowballstemmer in 150 us
    for the two languages; a 300-word mail would cost 45 ms to index with the latter.
    """
    distinct = words(text)[:MAX_WORDS]
    german, english = _stemmers()
    return sorted(set(german.stemWords(distinct)).union(english.stemWords(distinct)))


@dataclass(frozen=True)
class Query:
    """A search as the index answers it: every word must match one of its stems.

    Whole words only, no prefix match of the last word: FTS5 (without a prefix index) merges
    the lists of all terms of a prefix before it returns the first match. At a million items
    "comm*" took 32 ms and "w12*" 690 ms, against 0.3 ms for the word "common".
    """

    words: tuple[tuple[str, ...], ...]

    @classmethod
    def parse(cls, text: str) -> Query | None:
        """None when `text` has no word at all (only punctuation, say): it finds nothing.

        Operators, quotes and parentheses of FTS5 or tsquery syntax are not words: they are
        dropped here, and whatever is left is quoted, so nothing typed becomes query syntax.
        """
        found = tuple(stems(w) for w in words(text)[:MAX_QUERY_WORDS])
        return cls(found) if found else None

    def fts5(self, subject_only: bool = False) -> str:
        """FTS5 MATCH syntax: '("a" OR "b") AND "c"', within `subject :` for subjects."""
        groups = " AND ".join(
            "(" + " OR ".join(f'"{t}"' for t in alts) + ")" for alts in self.words
        )
        return f"subject : ({groups})" if subject_only else groups

    def tsquery(self, subject_only: bool = False) -> str:
        """tsquery syntax: "('a' | 'b') & 'c'", each term weighted :A for subjects."""
        weight = ":A" if subject_only else ""
        return " & ".join(
            "(" + " | ".join(f"'{t}'{weight}" for t in alts) + ")" for alts in self.words
        )


# --- the index ----------------------------------------------------------------------------

ID_BITS = 31  # SQLite's key: ids below 2**31 (they count up from 1), seconds below 2**32
_ID_MASK = 2**ID_BITS - 1
_MAX_SECONDS = 2**32 - 1  # 2106-02-07; items outside 1970..2106 share the first or last key
metadata = MetaData()  # not Base.metadata: created by migration 0008 only, per database
FTS = Table(
    "interaction_fts",
    metadata,
    Column("rowid", Integer, primary_key=True),
    Column("subject", Text),
    Column("body", Text),
    Column("interaction_fts", Text),  # FTS5's hidden column named after the table: MATCH
)
TERMS = Table(
    "interaction_terms",
    metadata,
    Column("interaction_id", BigInteger, primary_key=True),
    Column("occurred_at", UtcDateTime(), nullable=False),
    Column("terms", TSVECTOR, nullable=False),
)


def is_index_table(name: str) -> bool:
    """Whether a table of the database belongs to this index (FTS5 adds shadow tables)."""
    return name == "interaction_terms" or name.startswith("interaction_fts")


def modelled(name: str | None, type_: str, _parent: object) -> bool:
    """Alembic's `include_name`: the index's tables are the migrations' own, not the models'
    (an FTS5 table cannot be declared in SQLAlchemy), so autogenerate must leave them be."""
    return not (type_ == "table" and is_index_table(name or ""))


@dataclass(frozen=True, slots=True)
class ItemText:
    """What the index reads of one item: its subject, and as body its snippet and body text."""

    id: int
    occurred_at: datetime
    subject: str
    snippet: str
    body: str

    def body_terms(self) -> list[str]:
        return terms(f"{self.snippet}\n{self.body}")


def time_key(interaction_id: int, occurred_at: datetime) -> int:
    """The SQLite index's rowid: ordered as (occurred_at, id) to the second, unique by id."""
    if not 0 < interaction_id <= _ID_MASK:
        raise ValueError(f"interaction id {interaction_id} does not fit the full-text key")
    return (_seconds(occurred_at) << ID_BITS) | interaction_id


def _seconds(at: datetime) -> int:
    """Whole seconds since 1970, within the key's range (a naive time is UTC, as stored)."""
    return min(max(calendar.timegm(at.utctimetuple()), 0), _MAX_SECONDS)


def _sql_time_key() -> ColumnElement[int]:
    """time_key() of the InteractionRow in the enclosing query, in SQLite's SQL. The seconds
    are cut from the stored text: strftime('%s') rounds .9995 s up to the next second."""
    seconds = cast(func.strftime("%s", func.substr(InteractionRow.occurred_at, 1, 19)), Integer)
    clamped = func.min(func.max(seconds, 0), _MAX_SECONDS)
    return clamped.op("<<")(ID_BITS).op("|")(InteractionRow.id)


def tsvector(subject: Iterable[str], body: Iterable[str]) -> str:
    """The tsvector literal of an item's terms: subject terms at 1A, body terms at 2B."""
    positions: dict[str, list[str]] = {}
    for term in subject:
        positions.setdefault(term, []).append("1A")
    for term in body:
        positions.setdefault(term, []).append("2B")
    return " ".join(f"'{term}':{','.join(at)}" for term, at in sorted(positions.items()))


async def index_items(session: AsyncSession, items: Iterable[ItemText]) -> None:
    """Add these items (not indexed yet) to the index, in the caller's transaction."""
    connection = await session.connection()
    if connection.dialect.name == "sqlite":
        sql = "INSERT INTO interaction_fts (rowid, subject, body) VALUES (?, ?, ?)"
        rows: list[tuple[Any, ...]] = [
            (
                time_key(i.id, i.occurred_at),
                " ".join(terms(i.subject)),
                " ".join(i.body_terms()),
            )
            for i in items
        ]
    else:
        sql = (
            "INSERT INTO interaction_terms (interaction_id, occurred_at, terms)"
            " VALUES (%s, %s, CAST(%s AS tsvector))"
        )
        rows = [(i.id, i.occurred_at, tsvector(terms(i.subject), i.body_terms())) for i in items]
    if rows:
        await connection.exec_driver_sql(sql, rows)


async def forget_items(session: AsyncSession, ids: Iterable[int]) -> None:
    """Remove these items from the index; call it while their interactions rows exist."""
    connection = await session.connection()
    ordered = sorted(set(ids))
    for start in range(0, len(ordered), CHUNK):
        chunk = ordered[start : start + CHUNK]
        if connection.dialect.name == "sqlite":
            found = await session.execute(
                select(InteractionRow.id, InteractionRow.occurred_at).where(
                    InteractionRow.id.in_(chunk)
                )
            )
            keys = [time_key(id_, at) for id_, at in found]
            await session.execute(FTS.delete().where(FTS.c.rowid.in_(keys)))
        else:
            await session.execute(TERMS.delete().where(TERMS.c.interaction_id.in_(chunk)))


async def reindex_items(session: AsyncSession, ids: Iterable[int]) -> None:
    """Index these items anew from their stored text (after it was rewritten: an erasure, a
    call note added). A call's notes are part of its body: who may read a call's notes may
    read its body (hub.policy.shows_body), so they are searched alike."""
    ordered = sorted(set(ids))
    await forget_items(session, ordered)
    for start in range(0, len(ordered), CHUNK):
        chunk = ordered[start : start + CHUNK]
        notes = await _note_texts(session, chunk)
        rows = await session.execute(
            select(
                InteractionRow.id,
                InteractionRow.occurred_at,
                InteractionRow.subject,
                InteractionRow.snippet,
                InteractionRow.body,
            ).where(InteractionRow.id.in_(chunk))
        )
        await index_items(
            session,
            [
                ItemText(i, at, s or "", n or "", _with_notes(unpack_text(b), notes.get(i)))
                for i, at, s, n, b in rows
            ],
        )


def _with_notes(body: str, notes: str | None) -> str:
    return f"{body}\n{notes}" if notes else body


async def _note_texts(session: AsyncSession, ids: list[int]) -> dict[int, str]:
    """Each call's notes as one text: outcome words and note texts (storage.call_notes)."""
    found: dict[int, list[str]] = {}
    rows = await session.execute(
        select(CallNoteRow.interaction_id, CallNoteRow.outcome, CallNoteRow.text)
        .where(CallNoteRow.interaction_id.in_(ids))
        .order_by(CallNoteRow.interaction_id, CallNoteRow.id)
    )
    for item, outcome, text in rows:
        found.setdefault(item, []).append(f"{outcome} {text}".strip())
    return {item: "\n".join(parts) for item, parts in found.items()}


# --- searching ----------------------------------------------------------------------------


class _Found(ColumnElement[bool]):
    """The InteractionRow of the enclosing query holds the words: in its subject, or in its
    subject or body. One SQL construct, compiled for each database by its own rules."""

    __visit_name__ = "fulltext_found"
    inherit_cache = True
    type = Boolean()
    _traverse_internals = [  # noqa: RUF012 - SQLAlchemy's own declaration is a list
        ("fts5", InternalTraversal.dp_clauseelement),
        ("tsquery", InternalTraversal.dp_clauseelement),
    ]

    def __init__(self, query: Query, subject_only: bool) -> None:
        self.fts5: BindParameter[str] = bindparam(None, query.fts5(subject_only), type_=Text)
        # Inlined, not a parameter: after five runs psycopg prepares a statement, and
        # PostgreSQL's generic plan would then serve rare and common words alike.
        self.tsquery: BindParameter[str] = bindparam(
            None, query.tsquery(subject_only), type_=Text, literal_execute=True
        )


@compiles(_Found, "sqlite")
def _found_in_sqlite(element: _Found, compiler: SQLCompiler, **kw: Any) -> str:
    # A rowid look-up: FTS5 seeks the rowid in each term's doclist.
    found = FTS.alias("found")
    probe = exists().where(
        found.c.rowid == _sql_time_key(), found.c.interaction_fts.op("MATCH")(element.fts5)
    )
    return compiler.process(probe, **kw)


@compiles(_Found, "postgresql")
def _found_in_postgresql(element: _Found, compiler: SQLCompiler, **kw: Any) -> str:
    probe = exists().where(
        TERMS.c.interaction_id == InteractionRow.id,
        TERMS.c.terms.bool_op("@@")(cast(element.tsquery, TSQUERY)),
    )
    return compiler.process(probe, **kw)


def matches(
    words: str, subject_ok: ColumnElement[bool], body_ok: ColumnElement[bool]
) -> ColumnElement[bool]:
    """The condition that an item holds all of `words` within what the reader may read: in
    the subject where only `subject_ok`, in subject or body where also `body_ok` (which
    implies `subject_ok`). For storage.visibility.text_matches."""
    query = Query.parse(words)
    if query is None:
        return false()
    return or_(
        and_(body_ok, _Found(query, subject_only=False)),
        and_(subject_ok, _Found(query, subject_only=True)),
    )


async def search_ids(
    session: AsyncSession,
    scope: ReadScope,
    words: str,
    where: Sequence[ColumnElement[bool]],
    before: tuple[datetime, int] | None,
    limit: int,
) -> list[int]:
    """Ids of the newest `limit` items (occurred_at, id descending, strictly before `before`)
    that hold all of `words` where `scope` may read them and satisfy every condition of
    `where` (conditions on InteractionRow columns)."""
    query = Query.parse(words)
    if query is None or limit <= 0:
        return []
    connection = await session.connection()
    if connection.dialect.name == "sqlite":
        return await _search_sqlite(session, scope, query, where, before, limit)
    return await _search_postgresql(session, scope, query, where, before, limit)


async def _search_sqlite(
    session: AsyncSession,
    scope: ReadScope,
    query: Query,
    where: Sequence[ColumnElement[bool]],
    before: tuple[datetime, int] | None,
    limit: int,
) -> list[int]:
    """Two walks down the index from the newest match, merged (SQLite's UNION with ORDER BY
    pulls from each arm as needed), stopping after `limit` items: matches anywhere whose body
    the scope may read, and matches in the subject whose subject it may read. The item is
    tested in EXISTS, so that FTS5 stays the table each arm is driven by.

    One walk that probed the subject match of each item whose body was not readable cost a
    call-center user (subjects only, for mail) 3-5 times as much: an FTS5 probe by rowid
    costs several plain look-ups, a step along the walk less than one.
    """
    bounds = []
    tested = [*where]
    if before is not None:
        at, id_ = before
        bounds.append(FTS.c.rowid <= (_seconds(at) << ID_BITS) | _ID_MASK)
        tested.append(tuple_(InteractionRow.occurred_at, InteractionRow.id) < (at, id_))

    def walk(*more: ColumnElement[bool]) -> Any:
        arms = [
            select(FTS.c.rowid.label("key")).where(
                FTS.c.interaction_fts.op("MATCH")(literal(query.fts5(subject_only), Text)),
                *bounds,
                *more,
                exists().where(
                    InteractionRow.id == FTS.c.rowid.op("&")(_ID_MASK), readable, *tested
                ),
            )
            for subject_only, readable in (
                (False, body_readable(scope)),
                (True, subject_readable(scope)),
            )
        ]
        return union(*arms).order_by(literal_column("key").desc())

    keys = list((await session.execute(walk().limit(limit))).scalars())
    if len(keys) == limit:
        # The rest of the last page's second: the exact order within it needs them all.
        floor = keys[-1] >> ID_BITS << ID_BITS
        rest = await session.execute(walk(FTS.c.rowid >= floor, FTS.c.rowid < keys[-1]))
        keys.extend(rest.scalars())
    ids = [k & _ID_MASK for k in keys]
    if len({k >> ID_BITS for k in keys}) < len(keys):
        stored = await session.execute(
            select(InteractionRow.id, InteractionRow.occurred_at).where(InteractionRow.id.in_(ids))
        )
        times = {id_: at for id_, at in stored}
        ids.sort(key=lambda i: (times[i], i), reverse=True)
    return ids[:limit]


# Matches read per round on PostgreSQL, in pages: three, as a call-center user may read about
# 40 % of the matches of a common word (a sales user 85 %); a round that finds too few reads
# four times as many.
FIRST_WINDOW = 3
MAX_WINDOW = 5000


async def _search_postgresql(
    session: AsyncSession,
    scope: ReadScope,
    query: Query,
    where: Sequence[ColumnElement[bool]],
    before: tuple[datetime, int] | None,
    limit: int,
) -> list[int]:
    """Rounds of: the next window of matches, newest first, from interaction_terms alone; then
    the items of the window the scope may read and `where` admits.

    The window is a query on one table, so the planner's choice follows the word's frequency
    from the tsvector statistics: the GIN index and a top-N sort for a rare word, the walk down
    (occurred_at, interaction_id) testing @@ row by row for a common one. With the visibility
    conditions in the same query it priced the per-row tests so high that a rare word was
    searched by a parallel sequential scan (77 ms instead of 2 at 100,000 items).

    A word in about 1 % of the items costs most: either plan reads 10,000-15,000 rows of
    interaction_terms at a million items. Searching spans of time first (30 days, then four
    times as long) made such a word 2x faster but a rare one 10x slower (the planner walked
    whole spans), and was left out.
    """
    found: list[int] = []
    position = before
    window = FIRST_WINDOW * limit
    in_subject = TERMS.c.terms.bool_op("@@")(_tsquery(query, subject_only=True))
    while True:
        matches = select(
            TERMS.c.interaction_id, TERMS.c.occurred_at, in_subject.label("in_subject")
        ).where(TERMS.c.terms.bool_op("@@")(_tsquery(query, subject_only=False)))
        if position is not None:
            matches = matches.where(
                tuple_(TERMS.c.occurred_at, TERMS.c.interaction_id) < tuple(position)
            )
        m = (
            matches.order_by(TERMS.c.occurred_at.desc(), TERMS.c.interaction_id.desc())
            .limit(_inlined(window))
            .subquery("m")
        )
        passes = exists().where(
            InteractionRow.id == m.c.interaction_id,
            or_(body_readable(scope), and_(m.c.in_subject, subject_readable(scope))),
            *where,
        )
        rows = (
            await session.execute(
                select(m.c.interaction_id, m.c.occurred_at, passes).order_by(
                    m.c.occurred_at.desc(), m.c.interaction_id.desc()
                )
            )
        ).all()
        found.extend(id_ for id_, _, ok in rows if ok)
        if len(found) >= limit or len(rows) < window:
            return found[:limit]
        position = (rows[-1][1], rows[-1][0])
        window = min(MAX_WINDOW, 4 * window)


def _inlined(window: int) -> ColumnElement[int]:
    """The window's size in the statement's text, like the words (`_tsquery`): bound, it made
    PostgreSQL's generic plan of the prepared statement guess the LIMIT and walk the time
    index for a rare word, 4 ms instead of 0.8 at a million items (bench/reads.py)."""
    return bindparam(None, window, type_=Integer, literal_execute=True)


def _tsquery(query: Query, subject_only: bool) -> ColumnElement[Any]:
    # Inlined, not a parameter: after five runs psycopg prepares a statement, and PostgreSQL's
    # generic plan would then serve rare and common words alike.
    text = bindparam(None, query.tsquery(subject_only), type_=Text, literal_execute=True)
    return cast(text, TSQUERY)
