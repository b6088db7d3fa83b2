"""INSERT of rows that may have been stored by a concurrent transaction a moment ago.

Two mailboxes that hold the same mail sync at the same time (colleagues on one thread, INBOX
and Sent), and both may find the mail missing and insert it: a unique violation would fail one
whole batch. ON CONFLICT DO NOTHING (SQLite and PostgreSQL) skips the row instead, and the id
of the row the other transaction stored is read back.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import AsyncSession

CHUNK = 500  # keys per IN (...) list


async def stored_ids(
    session: AsyncSession, table: Table, key: str, keys: Sequence[Any]
) -> dict[Any, int]:
    """The id by `key` (a unique column) of the stored rows among `keys`."""
    found: dict[Any, int] = {}
    column = table.c[key]
    for start in range(0, len(keys), CHUNK):
        rows = await session.execute(
            select(column, table.c.id).where(column.in_(keys[start : start + CHUNK]))
        )
        found.update({stored_key: id_ for stored_key, id_ in rows})
    return found


async def insert_new(
    session: AsyncSession, table: Table, rows: Sequence[dict[str, Any]], key: str
) -> tuple[dict[Any, int], set[Any]]:
    """Insert `rows` unless their `key` (a unique column) is stored.

    Returns the id of every row's key, and the keys this call inserted: the others were stored
    by a concurrent transaction between the caller's look-up and this INSERT.
    """
    if not rows:
        return {}, set()
    # Imported here: the PostgreSQL dialect costs 30 ms at start-up of every command on SQLite.
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    statement = (
        insert(table)
        .on_conflict_do_nothing(index_elements=[key])
        .returning(table.c[key], table.c.id)
    )
    result = await session.execute(statement, list(rows))
    inserted = {found_key: id_ for found_key, id_ in result}
    late = [row[key] for row in rows if row[key] not in inserted]
    return {**inserted, **await stored_ids(session, table, key, late)}, set(inserted)
