"""The SQLite file and its WAL are the whole mailbox archive: owner-only from the first byte,
with deleted content zeroed (storage.db)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from storage import db


@pytest.fixture
def open_umask() -> Iterator[None]:
    """The usual umask (files 0644): what the database must not inherit."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.usefixtures("open_umask")
async def test_file_wal_and_shm_are_created_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "new" / "crmhub.db"
    url = f"sqlite:///{path}"
    assert not db.is_current(url)  # only looks, but opening creates the file
    assert _mode(path) == 0o600
    db.upgrade(url)
    engine = db.create_engine_for(url)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                text("INSERT INTO directory_state (id, version) VALUES (1, 1)")
            )
            assert (await connection.execute(text("PRAGMA secure_delete"))).scalar() == 1
            assert (await connection.execute(text("PRAGMA journal_mode"))).scalar() == "wal"
        wal, shm = Path(f"{path}-wal"), Path(f"{path}-shm")
        assert wal.exists() and shm.exists()
        assert (_mode(path), _mode(wal), _mode(shm)) == (0o600, 0o600, 0o600)
    finally:
        await engine.dispose()


@pytest.mark.usefixtures("open_umask")
def test_a_wider_existing_file_is_tightened(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "old.db"
    url = f"sqlite:///{path}"
    db.upgrade(url)
    for name in (path, Path(f"{path}-wal")):  # as an older crmhub, or a copy, left them
        name.touch()
        name.chmod(0o644)
    db.create_engine_for(url).sync_engine.dispose()
    assert (_mode(path), _mode(Path(f"{path}-wal"))) == (0o600, 0o600)
    assert "was readable by others (644); made it owner-only" in caplog.text


def test_other_databases_are_left_alone(tmp_path: Path) -> None:
    assert db.sqlite_path("sqlite://") is None
    assert db.sqlite_path("sqlite:///:memory:") is None
    assert db.sqlite_path("postgresql+psycopg://u@h/db") is None
    assert db.sqlite_path(f"sqlite:///{tmp_path}/x.db") == tmp_path / "x.db"
    db.secure_sqlite_file("sqlite:///:memory:")
    assert list(tmp_path.iterdir()) == []


def test_a_file_that_cannot_be_created_is_a_clear_error() -> None:
    with pytest.raises(db.DatabaseError, match=r"cannot create the database file /proc/nope/x\.db"):
        db.is_current("sqlite:////proc/nope/x.db")
