"""bench/review_access.py compares writes with and without the review-access triggers: here,
that its "without" really runs none and leaves them in place afterwards, and that its "with"
runs them (the copy is filled), on SQLite."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import create_engine, text

from bench import review_access
from storage import db

TRIGGERS = "SELECT count(*) FROM sqlite_master WHERE type = 'trigger'"
OWNED = "SELECT count(*) FROM review_items WHERE item_owner = 'anna@ourco.example'"


def test_the_bench_writes_with_and_without_the_triggers_and_restores_them(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'bench.db'}"
    db.upgrade(url)
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            review_access.fill(connection, 100)
        with engine.connect() as connection:
            transaction = connection.begin()
            before = connection.execute(text(TRIGGERS)).scalar()
            restore = review_access.triggers_off(connection)
            assert connection.execute(text(TRIGGERS)).scalar() == before - 6
            review_access.write(connection, 100, 0)
            assert connection.execute(text(OWNED)).scalar() == 0, "no trigger ran"
            transaction.rollback()
            restore()
            assert connection.execute(text(TRIGGERS)).scalar() == before == 8
        with engine.connect() as connection, connection.begin():
            review_access.write(connection, 100, 1)
            assert connection.execute(text(OWNED)).scalar() == 5, "one question in twenty items"
    finally:
        engine.dispose()
