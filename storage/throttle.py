"""Failed-login throttling per account ("account:EMAIL") and per client address ("client:IP").

The counts live in the database, so every web process behind a load balancer sees the same
ones. A key's count starts over once it has been quiet (no failure and no block) for WINDOW.
After LIMIT failures within that time the key is refused for FIRST_BLOCK seconds, doubling with
each further failure up to MAX_BLOCK: a person who mistyped waits half a minute, a guesser ends
up with one try an hour.

How a login uses it: `retry_after` before checking the password (a refused attempt checks
nothing and counts nothing), then `note_failure` or `note_success`. Each writes in the caller's
transaction; `note_failure` takes the rows' locks, so it belongs in a short transaction of its
own, committed at once, not around the password check.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import CursorResult, case, delete, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from storage.tables import LoginThrottleRow

LIMIT = 10  # failures of one key within WINDOW before it is refused
WINDOW = timedelta(minutes=15)
FIRST_BLOCK = 30  # seconds, after the LIMIT-th failure
MAX_BLOCK = 3600  # seconds
KEY_LENGTH = 400  # LoginThrottleRow.key

_table = LoginThrottleRow.__table__


def account_key(email: str) -> str:
    return f"account:{email.strip().lower()}"[:KEY_LENGTH]


def client_key(address: str) -> str:
    return f"client:{address.strip().lower()}"[:KEY_LENGTH]


def block_seconds(failures: int) -> int:
    """How long a key is refused after its `failures`-th failure within the window.

    None (0) below LIMIT; then FIRST_BLOCK, doubled for each failure beyond LIMIT, at most
    MAX_BLOCK.
    """
    if failures < LIMIT:
        return 0
    doublings = min(failures - LIMIT, MAX_BLOCK.bit_length())  # no huge powers of two
    return min(FIRST_BLOCK << doublings, MAX_BLOCK)


async def retry_after(session: AsyncSession, keys: Sequence[str], now: datetime) -> int | None:
    """Seconds until the most blocked of `keys` may try again (at least 1), or None."""
    blocked = (
        await session.execute(
            select(_table.c.blocked_until).where(
                _table.c.key.in_(list(keys)), _table.c.blocked_until > now
            )
        )
    ).scalars()
    until = max(blocked, default=None)
    return max(1, math.ceil((until - now).total_seconds())) if until is not None else None


async def note_failure(session: AsyncSession, keys: Sequence[str], now: datetime) -> None:
    """Count one failed login against each key, and block the keys that reached LIMIT.

    One upsert per key counts atomically, so concurrent failures in several processes all
    count; keys are locked in sorted order, so two logins never wait for each other's rows.
    """
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    quiet_since = now - WINDOW
    stale = (_table.c.last_failure_at < quiet_since) & or_(
        _table.c.blocked_until.is_(None), _table.c.blocked_until < quiet_since
    )
    for key in sorted(set(keys)):
        counted = (
            insert(_table)
            .values(key=key, failures=1, last_failure_at=now)
            .on_conflict_do_update(
                index_elements=[_table.c.key],
                set_={
                    "failures": case((stale, 1), else_=_table.c.failures + 1),
                    "last_failure_at": now,
                },
            )
            .returning(_table.c.failures)
        )
        failures = (await session.execute(counted)).scalar_one()
        block = block_seconds(failures)
        if block:
            until = now + timedelta(seconds=block)
            await session.execute(
                update(_table)
                .where(_table.c.key == key)
                .where(or_(_table.c.blocked_until.is_(None), _table.c.blocked_until < until))
                .values(blocked_until=until)
            )


async def note_success(session: AsyncSession, account_key: str) -> None:
    """A successful login clears its account's count. The client's stays: one address that
    guesses at many accounts is not excused by logging in to one of them."""
    await session.execute(delete(_table).where(_table.c.key == account_key))


async def forget_stale(session: AsyncSession, now: datetime) -> int:
    """Delete the counts that would start over anyway (quiet for WINDOW); how many.

    Client addresses that failed once accumulate otherwise; a periodic job calls this.
    """
    quiet_since = now - WINDOW
    result = await session.execute(
        delete(_table).where(
            _table.c.last_failure_at < quiet_since,
            or_(_table.c.blocked_until.is_(None), _table.c.blocked_until < quiet_since),
        )
    )
    return int(result.rowcount) if isinstance(result, CursorResult) else 0
