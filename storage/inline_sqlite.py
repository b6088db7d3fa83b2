"""SQLite called in the event loop's own thread, for reads on the request path.

aiosqlite runs every call of a connection in a thread of its own and hands the result back
through the event loop: SQLAlchemy's adapter makes four such trips per statement (cursor,
execute, fetchall, close). Measured on this 2-core machine: 0.48 ms for `SELECT 1` through
SQLAlchemy and aiosqlite against 0.002 ms through sqlite3 itself; a timeline request made
some twenty trips. A read in WAL mode never waits for a writer, and the reads of the request
path run in well under a millisecond of SQLite's own time, so calling SQLite directly costs
the event loop less than handing the call to a thread does.

Writes stay on aiosqlite (storage.db.create_engine_for): a write may wait up to the busy
timeout for another process's transaction, and that wait must not stop the event loop.

The classes here are the part of aiosqlite's interface that SQLAlchemy's aiosqlite dialect
uses (`create_async_engine(..., async_creator=...)`), each call done at once.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Iterable
from typing import Any


class Cursor:
    """aiosqlite.Cursor's interface over a sqlite3 cursor, without the thread."""

    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = cursor

    async def __aenter__(self) -> Cursor:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._cursor.close()

    async def execute(self, sql: str, parameters: Any = ()) -> Cursor:
        self._cursor.execute(sql, parameters)
        return self

    async def executemany(self, sql: str, parameters: Iterable[Any]) -> Cursor:
        self._cursor.executemany(sql, parameters)
        return self

    async def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    async def fetchone(self) -> Any:
        return self._cursor.fetchone()

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        return self._cursor.fetchmany(size if size is not None else self._cursor.arraysize)

    async def close(self) -> None:
        self._cursor.close()

    async def nextset(self) -> None:
        return None

    async def setinputsizes(self, *sizes: Any) -> None:
        return None

    @property
    def description(self) -> Any:
        return self._cursor.description

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid

    @property
    def arraysize(self) -> int:
        return self._cursor.arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._cursor.arraysize = value


class _AtOnce:
    """The queue aiosqlite's dialect puts a (future, function) on to set the isolation level."""

    def put_nowait(self, job: tuple[asyncio.Future[Any], Callable[[], Any]]) -> None:
        future, function = job
        try:
            future.set_result(function())
        except Exception as e:  # noqa: BLE001 - handed to whoever awaits the future
            future.set_exception(e)


class Connection:
    """aiosqlite.Connection's interface over a sqlite3 connection, without the thread."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._connection: sqlite3.Connection | None = connection
        self._tx = _AtOnce()

    @property
    def _conn(self) -> sqlite3.Connection:
        if self._connection is None:
            raise ValueError("no active connection")
        return self._connection

    def cursor(self) -> _Opening:
        return _Opening(self._conn)

    async def execute(self, sql: str, parameters: Any = ()) -> Cursor:
        return Cursor(self._conn.execute(sql, parameters))

    async def commit(self) -> None:
        self._conn.commit()

    async def rollback(self) -> None:
        self._conn.rollback()

    async def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def stop(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    async def create_function(self, *args: Any, **kwargs: Any) -> None:
        self._conn.create_function(*args, **kwargs)

    @property
    def isolation_level(self) -> str | None:
        return self._conn.isolation_level

    @property
    def in_transaction(self) -> bool:
        return self._conn.in_transaction


class _Opening:
    """What aiosqlite's `cursor()` returns: awaited, or entered, it is the cursor."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._connection = connection

    def __await__(self) -> Any:
        return self._open().__await__()

    async def _open(self) -> Cursor:
        return Cursor(self._connection.cursor())

    async def __aenter__(self) -> Cursor:
        return await self._open()

    async def __aexit__(self, *exc: object) -> None:
        return None


def creator(path: str) -> Callable[[], Any]:
    """The `async_creator` of an engine whose connections call SQLite at once."""

    async def connect() -> Connection:
        # check_same_thread: the pool may close a connection from its finalizer's thread.
        return Connection(sqlite3.connect(path, check_same_thread=False))

    return connect
