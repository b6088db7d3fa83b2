"""storage.fulltext.search_ids at 100,000 and 1,000,000 items, on SQLite and on PostgreSQL.

    python bench/fulltext.py [--sizes 100000,1000000] [--backends sqlite,postgresql]
                             [--calls 40] [--pg postgresql+psycopg://root@127.0.0.1:5432/postgres]

The data are made up and written straight into a throwaway database at the newest migration
(executemany on SQLite, COPY on PostgreSQL), index rows included, so that only the search is
measured; bench/reads.py measures the whole request on data stored by the project's own sync.
Each item has a subject of 5 and a body of 80 words drawn from a Zipf vocabulary of 50,000
words, 70 % mail, 20 % calls, 10 % meetings, attributed to one of SIZE/100 accounts (85 %), a
tenth in the bench user's mailbox. Marker words: RARE{k} in 5 items each, MID in 1 % and COMMON
in 20 % of the items, each in the subject of a quarter of those and in the body of the rest.

Prints per case the median and the slowest of --calls calls in ms, for a sales user (reads
everything attributed) and a call-center user (subjects and call notes only), first page (50)
and the page after 1,000 items. Built databases are kept (under /tmp/crmhub-bench-fulltext and
as PostgreSQL databases crmhub_bench_fts_SIZE) and reused; --rebuild makes them anew.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import itertools
import random
import sqlite3
import statistics
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hub.policy import Role, Viewer, read_scope  # noqa: E402
from storage import db  # noqa: E402
from storage.fulltext import search_ids, time_key, tsvector  # noqa: E402
from storage.visibility import discloses  # noqa: E402

DIR = Path("/tmp/crmhub-bench-fulltext")
VOCABULARY = 50_000
START = datetime(2023, 7, 1, tzinfo=UTC)
SPAN = 2 * 365 * 24 * 3600
SALES = "anna@ourco.example"
RARE_WORDS = 40


def _pool(rng: random.Random, size: int) -> list[str]:
    """Zipf-distributed words (s = 1.1); a document is a random slice of the pool."""
    weights = list(itertools.accumulate(1 / (rank**1.1) for rank in range(1, VOCABULARY + 1)))
    total = weights[-1]
    return [f"w{bisect.bisect(weights, rng.random() * total)}" for _ in range(size)]


def items(size: int, seed: int = 18) -> Iterator[tuple[Any, ...]]:
    """(id, occurred_at, channel, owner, account or None, subject terms, body terms)."""
    rng = random.Random(seed)
    pool = _pool(rng, 2_000_000)
    marked: dict[int, list[str]] = {}
    for k in range(RARE_WORDS):
        for id_ in rng.sample(range(1, size + 1), 5):
            marked.setdefault(id_, []).append(f"rare{k}")
    for id_ in range(1, size + 1):
        r = rng.random()
        channel = "email" if r < 0.7 else "call" if r < 0.9 else "meeting"
        at = START + timedelta(seconds=rng.randrange(SPAN))
        start = rng.randrange(len(pool) - 90)
        subject, body = pool[start : start + 5], pool[start + 5 : start + 85]
        extra = list(marked.get(id_, ()))
        if rng.random() < 0.01:
            extra.append("mid")
        if rng.random() < 0.2:
            extra.append("common")
        for word in extra:
            (subject if rng.random() < 0.25 else body).append(word)
        owner = SALES if rng.random() < 0.1 else ""
        account = rng.randrange(1, size // 100 + 1) if rng.random() < 0.85 else None
        yield id_, at, channel, owner, account, sorted(set(subject)), sorted(set(body))


def build_sqlite(path: Path, size: int) -> None:
    path.unlink(missing_ok=True)
    db.upgrade(f"sqlite:///{path}")
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA synchronous=OFF")
    connection.executemany(
        "INSERT INTO accounts (id, name, owner) VALUES (?, ?, '')",
        [(n, f"Account {n}") for n in range(1, size // 100 + 1)],
    )
    rows = items(size)
    while batch := list(itertools.islice(rows, 1000)):  # a sync's batches: FTS5's segments
        connection.executemany(
            "INSERT INTO interactions (id, dedupe_key, channel, direction, occurred_at, subject,"
            ' snippet, in_reply_to, "references", not_logged, extra)'
            " VALUES (?, ?, ?, 'inbound', ?, ?, '', '[]', '[]', '', '{}')",
            [
                (i, f"k{i}", ch, at.strftime("%Y-%m-%d %H:%M:%S.%f"), " ".join(s))
                for i, at, ch, _, _, s, _ in batch
            ],
        )
        connection.executemany(
            "INSERT INTO sources (interaction_id, connector, external_id, content_sha256, owner,"
            " visibility) VALUES (?, 'c', ?, '', ?, 'full')",
            [(i, f"e{i}", owner) for i, _, _, owner, _, _, _ in batch],
        )
        connection.executemany(
            "INSERT INTO attributions (interaction_id, account_id, rule, confidence,"
            " explanation, manual, removed, occurred_at) VALUES (?, ?, 'r', 1, '', 0, 0, ?)",
            [
                (i, a, at.strftime("%Y-%m-%d %H:%M:%S.%f"))
                for i, at, _, _, a, _, _ in batch
                if a is not None
            ],
        )
        connection.executemany(
            "INSERT INTO interaction_fts (rowid, subject, body) VALUES (?, ?, ?)",
            [(time_key(i, at), " ".join(s), " ".join(b)) for i, at, _, _, _, s, b in batch],
        )
        connection.commit()
    connection.execute("ANALYZE")
    connection.commit()
    connection.close()


def _copy(
    cursor: psycopg.Cursor[Any], table: str, columns: str, rows: list[tuple[Any, ...]]
) -> None:
    with cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def build_postgresql(admin_url: str, name: str, size: int) -> str:
    admin = make_url(admin_url)
    with psycopg.connect(_dsn(admin), autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{name}"')
    url = admin.set(database=name).render_as_string(hide_password=False)
    db.upgrade(url)
    with psycopg.connect(_dsn(make_url(url))) as connection, connection.cursor() as cursor:
        cursor.execute("DROP INDEX ix_interaction_terms_terms")
        cursor.execute("DROP INDEX ix_interaction_terms_occurred_at")
        _copy(
            cursor,
            "accounts",
            "id, name, owner",
            [(n, f"Account {n}", "") for n in range(1, size // 100 + 1)],
        )
        rows = items(size)
        while batch := list(itertools.islice(rows, 20_000)):
            _copy(
                cursor,
                "interactions",
                "id, dedupe_key, channel, direction, occurred_at, subject, snippet, in_reply_to,"
                ' "references", not_logged, extra',
                [
                    (i, f"k{i}", ch, "inbound", at, " ".join(s), "", "[]", "[]", "", "{}")
                    for i, at, ch, _, _, s, _ in batch
                ],
            )
            _copy(
                cursor,
                "sources",
                "interaction_id, connector, external_id, content_sha256, owner, visibility",
                [(i, "c", f"e{i}", "", owner, "full") for i, _, _, owner, _, _, _ in batch],
            )
            _copy(
                cursor,
                "attributions",
                "interaction_id, account_id, rule, confidence, explanation, manual, removed,"
                " occurred_at",
                [
                    (i, a, "r", 1.0, "", False, False, at)
                    for i, at, _, _, a, _, _ in batch
                    if a is not None
                ],
            )
            _copy(
                cursor,
                "interaction_terms",
                "interaction_id, occurred_at, terms",
                [(i, at, tsvector(s, b)) for i, at, _, _, _, s, b in batch],
            )
        for table in ("interactions", "sources", "attributions", "accounts"):
            cursor.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"
                f" (SELECT max(id) FROM {table}))"
            )
        cursor.execute("SET maintenance_work_mem = '512MB'")
        cursor.execute(
            "CREATE INDEX ix_interaction_terms_terms ON interaction_terms USING gin (terms)"
        )
        cursor.execute(
            "CREATE INDEX ix_interaction_terms_occurred_at"
            " ON interaction_terms (occurred_at, interaction_id)"
        )
        connection.commit()
    with psycopg.connect(_dsn(make_url(url)), autocommit=True) as connection:
        connection.execute("VACUUM ANALYZE")
    return url


def _dsn(url: Any) -> str:
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


async def measure(url: str, calls: int) -> list[tuple[str, float, float, int]]:
    engine = db.create_engine_for(url)
    sessions = db.sessionmaker_for(engine)
    out = []
    viewers = {
        "sales": Viewer(SALES, Role.SALES),
        "callcenter": Viewer("cc@ourco.example", Role.CALLCENTER),
    }
    cases = [
        ("rare", [f"rare{k}" for k in range(RARE_WORDS)]),
        ("mid", ["mid"]),
        ("common", ["common"]),
        ("common+mid", ["common mid"]),
        ("zipf top", ["w1"]),
    ]
    out.append(await _baseline(sessions, calls))
    for who, viewer in viewers.items():
        scope = read_scope(viewer)
        for case, words in cases:
            for deep in (False, True):
                if deep and case == "rare":
                    continue
                times, found = [], 0
                async with sessions() as session:
                    before = None
                    if deep:
                        ids = await search_ids(
                            session, scope, words[0], [discloses(scope)], None, 1000
                        )
                        before = await _position(session, ids[-1]) if ids else None
                    for n in range(calls + 2):
                        word = words[n % len(words)]
                        started = time.perf_counter()
                        ids = await search_ids(session, scope, word, [discloses(scope)], before, 51)
                        if n >= 2:  # the first two warm the cache
                            times.append((time.perf_counter() - started) * 1000)
                        found = max(found, len(ids))
                name = f"{who:10} {case:10} {'page after 1,000' if deep else 'first page'}"
                out.append((name, statistics.median(times), max(times), found))
    await engine.dispose()
    return out


async def _baseline(sessions: Any, calls: int) -> tuple[str, float, float, int]:
    """One item's subject by id: the cheapest read there is, for the figures' scale."""
    from sqlalchemy import select

    from storage.tables import InteractionRow

    times = []
    async with sessions() as session:
        for n in range(calls + 2):
            started = time.perf_counter()
            query = select(InteractionRow.subject).where(InteractionRow.id == 1 + n * 997)
            (await session.execute(query)).all()
            if n >= 2:
                times.append((time.perf_counter() - started) * 1000)
    return "baseline: one item by id", statistics.median(times), max(times), 1


async def _position(session: Any, id_: int) -> tuple[datetime, int]:
    from sqlalchemy import select

    from storage.tables import InteractionRow

    at = (
        await session.execute(select(InteractionRow.occurred_at).where(InteractionRow.id == id_))
    ).scalar_one()
    return at, id_


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--calls", type=int, default=40)
    parser.add_argument("--pg", default="postgresql+psycopg://root@127.0.0.1:5432/postgres")
    parser.add_argument("--rebuild", action="store_true")
    args = parser.parse_args()
    DIR.mkdir(exist_ok=True)
    for size in [int(s) for s in args.sizes.split(",")]:
        for backend in args.backends.split(","):
            started = time.perf_counter()
            if backend == "sqlite":
                path = DIR / f"fts_{size}.db"
                if args.rebuild or not path.exists():
                    build_sqlite(path, size)
                url = f"sqlite:///{path}"
            else:
                name = f"crmhub_bench_fts_{size}"
                url = make_url(args.pg).set(database=name).render_as_string(hide_password=False)
                if args.rebuild or not _pg_exists(args.pg, name):
                    url = build_postgresql(args.pg, name, size)
            built = time.perf_counter() - started
            print(f"== {backend}, {size:,} items (ready in {built:.0f} s)", flush=True)
            for name, median, slowest, found in asyncio.run(measure(url, args.calls)):
                print(f"{name}  median {median:6.2f} ms  max {slowest:6.2f} ms  ({found} ids)")


def _pg_exists(admin_url: str, name: str) -> bool:
    with psycopg.connect(_dsn(make_url(admin_url)), autocommit=True) as connection:
        found = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
        return found.fetchone() is not None


if __name__ == "__main__":
    main()
