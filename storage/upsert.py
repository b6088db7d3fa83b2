"""INSERT of rows that may have been stored by a concurrent transaction a moment ago.

Two mailboxes that hold the same mail sync at the same time (colleagues on one thread, INBOX
and Sent), and both may find the mail missing and insert it: a unique violation would fail one
whole batch. ON CONFLICT DO NOTHING (SQLite and PostgreSQL) skips the row instead; the caller
then reads the id of the row the other transaction stored.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncSession


async def insert_new(
    session: AsyncSession, table: Table, rows: Sequence[dict[str, Any]], key: str
) -> dict[Any, int]:
    """Insert `rows` unless their `key` (a unique column) is stored; id by key of those inserted."""
    if not rows:
        return {}
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
    return {found_key: id_ for found_key, id_ in result}
