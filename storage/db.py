"""Engine and sessions: SQLite in WAL mode by default, PostgreSQL by URL; migrations on demand."""

from __future__ import annotations

import logging
import os
import select
import stat
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

from storage import (
    directory_search,  # noqa: F401 - its flush event keeps the search terms
    inline_sqlite,
)

log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).parent / "migrations"
# The newest migration; tests/integration/test_migrations.py checks it against alembic's head.
HEAD = "0021"


class DatabaseError(Exception):
    """The database URL or the database itself is unusable; the message says what to fix."""


def parse_url(url: str) -> URL:
    try:
        parsed = make_url(url)
    except ArgumentError as e:
        raise DatabaseError(f"CRMHUB_DATABASE_URL={url!r} is not a database URL") from e
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise DatabaseError(
            f"CRMHUB_DATABASE_URL: {backend!r} is not supported; use sqlite:///PATH "
            "or postgresql+psycopg://USER@HOST/DB"
        )
    return parsed


def sync_url(url: str) -> URL:
    parsed = parse_url(url)
    driver = "pysqlite" if parsed.get_backend_name() == "sqlite" else "psycopg"
    return parsed.set(drivername=f"{parsed.get_backend_name()}+{driver}")


def async_url(url: str) -> URL:
    parsed = parse_url(url)
    driver = "aiosqlite" if parsed.get_backend_name() == "sqlite" else "psycopg"
    return parsed.set(drivername=f"{parsed.get_backend_name()}+{driver}")


def sqlite_path(url: str) -> Path | None:
    """The file of an SQLite URL; None for PostgreSQL, an in-memory or a URI-style database."""
    parsed = parse_url(url)
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or database in (None, "", ":memory:"):
        return None
    if parsed.query.get("uri") or database.startswith("file:"):
        return None
    return Path(database).expanduser()


def secure_sqlite_file(url: str) -> None:
    """Create the SQLite file owner-only (0600) before SQLite does, and tighten a wider one.

    The file holds whole mailboxes. SQLite creates it with the process umask (usually 0644,
    world-readable), but gives its -wal and -shm files the mode of the main file: creating the
    main file 0600 first is what keeps all three private.
    """
    path = sqlite_path(url)
    if path is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass
    except OSError as e:
        raise DatabaseError(f"cannot create the database file {path}: {e.strerror}") from e
    for name in (path, *(Path(f"{path}{suffix}") for suffix in ("-wal", "-shm", "-journal"))):
        try:
            mode = stat.S_IMODE(name.stat().st_mode)
            if mode & 0o077:
                name.chmod(mode & 0o700)
                log.warning("%s was readable by others (%o); made it owner-only", name, mode)
        except FileNotFoundError:
            continue
        except PermissionError as e:
            log.warning("%s is readable by others and cannot be tightened: %s", name, e)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # Deleted and overwritten content is zeroed, in the database file and in the WAL: an erased
    # person's mail must not stay readable in free pages (issue 12). Debian builds SQLite with
    # it on already, most others do not. Measured on bench/ingest_files.py's 10,000 mails,
    # interleaved rounds: no ingest cost (it frees almost nothing; CPU 3.9 s on, 4.1 s off,
    # within the noise); deleting all 10,000 items by retention 2.28 s CPU against 2.14 s.
    cursor.execute("PRAGMA secure_delete=ON")
    # Takes effect only while the file is new (before WAL is on and the first table exists).
    # Most rows carry a compressed mail of a few KB: with 16 KiB pages fewer of them spill into
    # overflow chains. Measured on a 10,000-mail ingest: 8 % less CPU, a 6 % smaller file.
    cursor.execute("PRAGMA page_size=16384")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    # Measured on a 3,000-mail batch ingest: with SQLite's 2 MB default cache the indexes are
    # read back from disk on every batch, and a checkpoint every 1,000 pages copies the WAL
    # into the database several times per batch; together these cost 40 % of the ingest.
    # 8 MiB holds the indexes of a 10,000-mail sync as well as 32 MiB did, and every pooled
    # connection fills its own cache: 32 MiB each put a sync's process over 200 MB.
    cursor.execute("PRAGMA cache_size=-8192")  # 8 MiB per connection
    # In pages: a WAL of up to about 40 MB whatever the page size. The last checkpoint runs when
    # the hub closes, on the critical path: 160 MB of 16 KiB pages made it 0.24 s.
    cursor.execute("PRAGMA page_size")
    page_size = cursor.fetchone()[0]
    cursor.execute(f"PRAGMA wal_autocheckpoint={40_000_000 // page_size}")
    cursor.close()


def create_engine_for(url: str) -> AsyncEngine:
    target = async_url(url)
    if target.get_backend_name() == "sqlite":
        secure_sqlite_file(url)
        engine = _async_engine(target)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    engine = _async_engine(target, pool_size=5, max_overflow=5)
    event.listen(engine.sync_engine, "checkout", _closed_while_idle)
    return engine


def _async_engine(target: URL, **options: Any) -> AsyncEngine:
    """An engine whose json columns orjson decodes: psycopg's loader on PostgreSQL, the
    dialect's on SQLite. A timeline page carries four JSON arrays and an `extra` per item
    (storage.items): the standard library's decoder was a fifth of reading one on
    PostgreSQL, and 4 % of a timeline request's CPU on SQLite (3.4-4.3 ms against 4.3-4.6)."""
    return create_async_engine(target, json_deserializer=orjson.loads, **options)


def _closed_while_idle(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """A pooled PostgreSQL connection the server ended while it lay idle is replaced before
    use (the pool retries with a new one on DisconnectionError).

    An idle connection has nothing to read until the server ends it: a restart or
    pg_terminate_backend sends a FATAL message and closes the socket, so a readable socket is
    a dead one (or, rarely, a notice: the reconnection costs nothing then). SQLAlchemy's
    pool_pre_ping asked the server instead, a round trip on every checkout: two per API
    request (the token, then the read). A read session of one statement took 470 µs with it
    and 350 µs without (410 and 310 µs of CPU; interleaved rounds of 3,000 sessions on the
    2-core machine). A connection lost without a word (a dropped network) fails its next statement
    either way: the ping would have waited for the same TCP timeout.
    """
    connection = dbapi_connection.driver_connection
    if connection.closed:  # closed or broken: libpq holds no socket
        raise DisconnectionError("the connection is closed")
    poller = select.poll()
    poller.register(connection.pgconn.socket, select.POLLIN)
    if poller.poll(0):
        raise DisconnectionError("the server ended this connection while it was idle")


READER_MMAP = 1 << 34  # bytes; SQLite lowers it to what it was built to allow


def _reader_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # A reader that tried to write would hold the event loop while it waited for the lock:
    # SQLite refuses every change on this connection instead (storage.inline_sqlite).
    cursor.execute("PRAGMA query_only=ON")
    cursor.execute("PRAGMA busy_timeout=30000")  # only WAL recovery makes a reader wait
    cursor.execute("PRAGMA cache_size=-8192")
    # Pages read straight from the operating system's file cache, without a read() and a copy
    # into the connection's own cache: the review queue's visibility checks over 1,622 rows at
    # 1,000,000 items took 5.5 ms instead of 7.3 (measured). SQLite caps the size at its
    # compile-time limit (2 GiB on Debian); the rest of a bigger file is read as before.
    cursor.execute(f"PRAGMA mmap_size={READER_MMAP}")
    cursor.close()


def create_reader_for(url: str, engine: AsyncEngine) -> AsyncEngine:
    """The engine of the request path's reads, whose connections refuse to write.

    On a SQLite file: connections that call SQLite in the event loop's thread
    (storage.inline_sqlite). On PostgreSQL: connections in autocommit, each statement a
    read-only transaction of its own. A read session in a transaction cost a BEGIN and a
    ROLLBACK round trip besides its statements (0.49 ms a session against 0.29, measured), and
    bought nothing: at READ COMMITTED every statement takes a new snapshot anyway, so the
    reads never saw one state of the database together. Other databases (SQLite in memory):
    `engine` itself.
    """
    path = sqlite_path(url)
    target = async_url(url)
    if path is not None:
        reader = _async_engine(target, async_creator=inline_sqlite.creator(str(path)))
        event.listen(reader.sync_engine, "connect", _reader_pragmas)
        return reader
    if target.get_backend_name() != "postgresql":
        return engine
    reader = _async_engine(
        target,
        pool_size=5,
        max_overflow=5,
        isolation_level="AUTOCOMMIT",
        pool_reset_on_return=None,  # nothing to roll back
        connect_args={"options": "-c default_transaction_read_only=on"},
    )
    event.listen(reader.sync_engine, "checkout", _closed_while_idle)
    return reader


def sessionmaker_for(engine: AsyncEngine) -> async_sessionmaker[Any]:
    return async_sessionmaker(engine, expire_on_commit=False)


def is_current(url: str) -> bool:
    """Whether the database is at HEAD already: one query, and alembic is not even loaded.

    Every command on the embedded database checks its schema at start; loading alembic for
    that cost about 0.1 s per command.
    """
    secure_sqlite_file(url)  # connecting creates a missing file, with the umask's mode
    engine = create_engine(sync_url(url))
    try:
        with engine.connect() as connection:
            found = connection.execute(text("SELECT version_num FROM alembic_version")).all()
    except Exception:  # noqa: BLE001 - no database, no table: not current, upgrade() will say why
        return False
    finally:
        engine.dispose()
    return [tuple(row) for row in found] == [(HEAD,)]


# On PostgreSQL a migration waits at most this long for a table lock held by running crmhub
# processes, then `crmhub db upgrade` stops with a message: a statement waiting for a lock
# makes every later request on that table queue behind it (docs/deployment.md, Upgrades).
MIGRATION_LOCK_TIMEOUT = 5  # seconds
LOCK_NOT_AVAILABLE = "55P03"  # PostgreSQL's SQLSTATE for a lock_timeout that expired


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the schema to the newest migration (or `revision`); safe to run on every start.

    On PostgreSQL alembic runs the migrations in a transaction of its own, so that a migration
    can build an index CONCURRENTLY in an autocommit block, and each lock waits at most
    MIGRATION_LOCK_TIMEOUT seconds.
    """
    from alembic import command  # only here: see is_current
    from alembic.config import Config as AlembicConfig

    target = sync_url(url)
    secure_sqlite_file(url)
    engine = create_engine(target)
    if target.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    try:
        with engine.connect() as connection:
            cfg.attributes["connection"] = connection
            if target.get_backend_name() == "postgresql":
                connection.exec_driver_sql(f"SET lock_timeout = '{MIGRATION_LOCK_TIMEOUT}s'")
                connection.commit()
                command.upgrade(cfg, revision)
            else:
                with connection.begin():
                    command.upgrade(cfg, revision)
    except Exception as e:
        if isinstance(e, DBAPIError) and getattr(e.orig, "sqlstate", None) == LOCK_NOT_AVAILABLE:
            raise DatabaseError(_waited_for_lock(e)) from e
        raise DatabaseError(
            f"cannot migrate the database at {target.render_as_string()}: {e}"
        ) from e
    finally:
        engine.dispose()


def _waited_for_lock(error: DBAPIError) -> str:
    statement = " ".join(str(error.statement or "").split())
    waiting = statement if len(statement) <= 100 else statement[:100] + "..."
    return (
        f"the upgrade waited more than {MIGRATION_LOCK_TIMEOUT} s for a lock that running crmhub "
        f"processes hold, at: {waiting}; it was cancelled, and the schema stays at the last "
        "migration committed before it. Run `crmhub db upgrade` again at a quieter time, or "
        "with the `crmhub worker` processes stopped (docs/deployment.md, Upgrades)"
    )
