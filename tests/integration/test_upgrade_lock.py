"""`crmhub db upgrade` on a live PostgreSQL: a lock held by a running sync makes it stop within
seconds with a message, instead of queueing every request behind it; the guide's way of
building an index runs through the real upgrade path; and the offline walk that guards new
migrations (tests/unit/test_migration_locks.py) sees every index a real upgrade builds.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, event, inspect, text
from sqlalchemy.engine import Connection, Engine

from storage import db
from tests.conftest import PG_URL, empty_pg_database
from tests.unit.test_migration_locks import (
    _CREATE_INDEX,
    emitted_sql,
    with_new_migration,
)

CRMHUB = Path(sys.executable).parent / "crmhub"
postgresql_only = pytest.mark.skipif(
    not PG_URL,
    reason="PostgreSQL only (set CRMHUB_TEST_DATABASE_URL): SQLite has no lock_timeout, and "
    "crmhub upgrades an SQLite file itself at start, one process at a time",
)
# Migration 0019 adds a table with a foreign key to interactions: it needs a lock that
# conflicts with the one every transaction writing items holds.
BEFORE_A_LOCKING_MIGRATION = "0018"


def scratch_pg_database() -> contextlib.AbstractContextManager[str]:
    """An empty database of its own on the test server, dropped afterwards."""
    return empty_pg_database("crmhub_upgrade")


@contextlib.contextmanager
def writing_items(url: str) -> Iterator[Connection]:
    """An open transaction holding the locks a sync holds while it stores items."""
    engine = create_engine(url)
    connection = engine.connect()
    try:
        connection.execute(text("LOCK TABLE interactions, sources IN ROW EXCLUSIVE MODE"))
        yield connection
    finally:
        connection.rollback()
        connection.close()
        engine.dispose()


def revision(url: str) -> str:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return str(connection.execute(text("SELECT version_num FROM alembic_version")).scalar())
    finally:
        engine.dispose()


def db_upgrade(url: str) -> tuple[subprocess.CompletedProcess[str], float]:
    """`crmhub db upgrade` as an operator runs it, and how long it took."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRMHUB_")}
    env["CRMHUB_DATABASE_URL"] = url
    started = time.monotonic()
    done = subprocess.run(
        [str(CRMHUB), "db", "upgrade"], env=env, capture_output=True, text=True, timeout=120
    )
    return done, time.monotonic() - started


@postgresql_only
def test_a_held_lock_makes_db_upgrade_stop_within_seconds_with_a_message() -> None:
    with scratch_pg_database() as url:
        db.upgrade(url, BEFORE_A_LOCKING_MIGRATION)
        with writing_items(url) as sync:
            done, seconds = db_upgrade(url)
            assert not sync.closed and sync.in_transaction(), "the lock was held throughout"
        assert done.returncode == 2, done.stdout + done.stderr
        assert "waited more than 5 s for a lock that running crmhub processes hold" in done.stderr
        assert "Traceback" not in done.stderr
        # Five seconds of waiting, plus starting Python on a busy machine; without the timeout
        # it would wait until the lock is released, which here is never.
        assert seconds < 60
        assert revision(url) == BEFORE_A_LOCKING_MIGRATION, "nothing half-done is left"
        done, _ = db_upgrade(url)
        assert done.returncode == 0, done.stderr
        assert revision(url) == db.HEAD


@pytest.fixture
def guide_migration(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The migrations with the guide's example on top, as storage.db.upgrade's scripts."""
    monkeypatch.setattr(db, "MIGRATIONS", with_new_migration(tmp_path, "guide"))
    return "9001"


@contextlib.contextmanager
def statements_sent() -> Iterator[list[str]]:
    sent: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        sent.append(statement)

    event.listen(Engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(Engine, "before_cursor_execute", record)


def test_the_guides_index_build_runs_through_db_upgrade(
    guide_migration: str, tmp_path: Path
) -> None:
    def built(url: str) -> None:
        db.upgrade(url)
        assert revision(url) == guide_migration
        engine = create_engine(url)
        try:
            names = {index["name"] for index in inspect(engine).get_indexes("sources")}
        finally:
            engine.dispose()
        assert "ix_sources_external_id" in names

    if not PG_URL:
        built(f"sqlite:///{tmp_path / 'guide.db'}")
        return
    with scratch_pg_database() as url, statements_sent() as sent:
        built(url)
    assert any("CREATE INDEX CONCURRENTLY ix_sources_external_id" in s for s in sent)


@postgresql_only
def test_a_concurrent_build_cancelled_by_the_lock_timeout_succeeds_when_run_again(
    guide_migration: str,
) -> None:
    with scratch_pg_database() as url:
        db.upgrade(url, db.HEAD)
        with writing_items(url), pytest.raises(db.DatabaseError, match="waited more than 5 s"):
            db.upgrade(url)
        assert not index_valid(url, "ix_sources_external_id"), "the cancelled build's leftover"
        db.upgrade(url)
        assert index_valid(url, "ix_sources_external_id")
        assert revision(url) == guide_migration


def index_valid(url: str, name: str) -> bool:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return bool(
                connection.execute(
                    text("SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(:name)"),
                    {"name": name},
                ).scalar()
            )
    finally:
        engine.dispose()


def _index_builds(sql: str) -> Counter[tuple[str, str, bool]]:
    return Counter(
        (m.group(2), m.group(3).lower(), bool(m.group(1))) for m in _CREATE_INDEX.finditer(sql)
    )


@postgresql_only
def test_the_offline_walk_sees_every_index_a_real_upgrade_builds() -> None:
    offline = _index_builds("\n".join(emitted_sql(db.MIGRATIONS).values()))
    with scratch_pg_database() as url, statements_sent() as sent:
        db.upgrade(url)
    online = _index_builds(";\n".join(sent))
    assert online == offline
    assert len(offline) > 40, "the walk found the schema's indexes"
