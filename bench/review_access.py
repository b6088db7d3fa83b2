"""What the triggers of migration 0021 cost ingest: sources and attributions written with the
triggers that keep the review rows' copy of their item's access, against the same writes with
the triggers off, in the same run, alternately.

    python bench/review_access.py [--items 20000] [--rounds 3] [--pg-url URL | --pg-url ""]

A scratch database of each kind, migrated by the project's migrations: SQLite in a temporary
directory, PostgreSQL as a database of its own on --pg-url (dropped afterwards). Each round
writes one source and one attribution per item for `--items` stored items, a twentieth of
which have an open review question (the 1,000,000-item bench set has 52,000 questions), in one
transaction that is rolled back. Prints microseconds per row written and the ratio; compare
the ratio, these machines are shared and noisy.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Connection, create_engine, text
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from storage import db

PG_URL = "postgresql+psycopg://root@127.0.0.1:5432/test"
T0 = "2025-03-01 08:00:00"


@contextmanager
def scratch(kind: str, pg_url: str) -> Iterator[str]:
    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as folder:
            yield f"sqlite:///{folder}/bench.db"
        return
    admin = create_engine(make_url(pg_url), isolation_level="AUTOCOMMIT")
    name = f"crmhub_bench_access_{uuid.uuid4().hex[:8]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(pg_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def fill(connection: Connection, items: int) -> None:
    connection.execute(text("INSERT INTO accounts (id, name, owner) VALUES (1, 'A', '')"))
    connection.execute(
        text(
            "INSERT INTO interactions (id, dedupe_key, channel, direction, occurred_at, subject,"
            ' snippet, not_logged, in_reply_to, "references", extra) VALUES (:id, :key,'
            " 'email', 'inbound', :at, '', '', '', '[]', '[]', '{}')"
        ),
        [{"id": n, "key": f"k{n}", "at": T0} for n in range(1, items + 1)],
    )
    connection.execute(
        text(
            "INSERT INTO review_items (interaction_id, kind, key, name, reason, candidates,"
            " opened_at, settlement, occurred_at) VALUES (:id, 'unknown-sender', :key, '', '',"
            " '[]', :at, '', :at)"
        ),
        [{"id": n, "key": f"s{n}@x.example", "at": T0} for n in range(1, items + 1, 20)],
    )


def write(connection: Connection, items: int, round_: int) -> float:
    """Seconds to write a source and an attribution for every item."""
    rows = [{"id": n, "ext": f"r{round_}-{n}", "at": T0} for n in range(1, items + 1)]
    started = time.perf_counter()
    connection.execute(
        text(
            "INSERT INTO sources (interaction_id, connector, external_id, content_sha256, owner,"
            " visibility, occurred_at) VALUES (:id, 'bench', :ext, '', 'anna@ourco.example',"
            " 'full', :at)"
        ),
        rows,
    )
    connection.execute(
        text(
            "INSERT INTO attributions (interaction_id, account_id, rule, confidence,"
            " explanation, manual, removed, occurred_at) VALUES (:id, 1, 'email', 1.0, '',"
            " false, false, :at)"
        ),
        rows,
    )
    return time.perf_counter() - started


def triggers_off(connection: Connection) -> Callable[[], None]:
    """Switch the review-access triggers off; returns what switches them on again after the
    round's rollback (PostgreSQL: the rollback does; SQLite's driver runs DDL outside the
    transaction, so they are created anew)."""
    if connection.dialect.name == "postgresql":
        for table in ("sources", "attributions"):
            connection.execute(text(f"ALTER TABLE {table} DISABLE TRIGGER USER"))
        return lambda: None
    found = connection.execute(
        text(
            "SELECT name, sql FROM sqlite_master WHERE type = 'trigger'"
            " AND tbl_name IN ('sources', 'attributions')"
        )
    ).all()
    for name, _ in found:
        connection.execute(text(f"DROP TRIGGER {name}"))

    def recreate() -> None:
        with connection.begin():
            for _, sql in found:
                connection.execute(text(sql))

    return recreate


def measure(kind: str, pg_url: str, items: int, rounds: int) -> None:
    with scratch(kind, pg_url) as url:
        db.upgrade(url)
        engine = create_engine(db.sync_url(url))
        try:
            with engine.begin() as connection:
                fill(connection, items)
            per_row: dict[bool, list[float]] = {True: [], False: []}
            for round_ in range(rounds):
                for on in (True, False):
                    with engine.connect() as connection:
                        transaction = connection.begin()
                        restore = (lambda: None) if on else triggers_off(connection)
                        per_row[on].append(write(connection, items, round_) / (2 * items))
                        transaction.rollback()
                        restore()
        finally:
            engine.dispose()
    best = {on: min(times) * 1e6 for on, times in per_row.items()}
    print(
        f"{kind:10} {items:,} items, {rounds} rounds: {best[True]:.1f} us/row with the triggers, "
        f"{best[False]:.1f} without (best of each), ratio {best[True] / best[False]:.2f}; "
        f"the triggers' cost {best[True] - best[False]:.1f} us/row",
        flush=True,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pg-url", default=PG_URL, help='"" measures SQLite only')
    args = parser.parse_args()
    measure("sqlite", args.pg_url, args.items, args.rounds)
    if args.pg_url:
        measure("postgresql", args.pg_url, args.items, args.rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
