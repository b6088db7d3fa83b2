"""Everything a test database holds, as bytes to search: the proof that an item was not stored.

Raw messages and body texts are kept compressed, so a byte search of the database file alone
would miss them; every value of every table is read here, packed values unpacked as well. On
SQLite the database file and its WAL are added, for what no table query shows (FTS internals).
"""

from __future__ import annotations

import zlib
from pathlib import Path

import zstandard
from sqlalchemy import create_engine, inspect, text

from storage import db
from storage.packing import unpack


def stored_bytes(database_url: str) -> bytes:
    """Every value of every table, packed ones also unpacked, and the SQLite files."""
    url = db.parse_url(database_url)
    engine = create_engine(db.sync_url(database_url))
    chunks: list[bytes] = []
    try:
        with engine.connect() as conn:
            for table in inspect(conn).get_table_names():
                for row in conn.execute(text(f'SELECT * FROM "{table}"')):
                    chunks.extend(_as_bytes(value) for value in row)
    finally:
        engine.dispose()
    if url.get_backend_name() == "sqlite" and url.database:
        for path in (Path(url.database), Path(f"{url.database}-wal")):
            if path.exists():
                chunks.append(path.read_bytes())
    return b"\n".join(chunks)


def _as_bytes(value: object) -> bytes:
    if isinstance(value, bytes | memoryview):
        data = bytes(value)
        try:
            return data + b"\n" + unpack(data)
        except (zlib.error, zstandard.ZstdError):
            return data
    return str(value).encode("utf-8", "surrogatepass")
