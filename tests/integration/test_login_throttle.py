"""Failed-login throttling in the database (storage.throttle), shared by every web process.

Runs on SQLite, and on PostgreSQL when CRMHUB_TEST_DATABASE_URL is set. Every call is its own
committed transaction, as one login attempt makes it; the concurrency test runs attempts side
by side on separate connections, as several web processes would.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.bootstrap import Hub
from storage.tables import LoginThrottleRow
from storage.throttle import (
    LIMIT,
    WINDOW,
    account_key,
    client_key,
    forget_stale,
    note_failure,
    note_success,
    retry_after,
)

T = TypeVar("T")
START = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
ANNA, CLIENT = account_key("anna@ourco.example"), client_key("192.0.2.7")
KEYS = (ANNA, CLIENT)


async def step(hub: Hub, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    async with hub.sessions() as session, session.begin():
        return await work(session)


async def fail(hub: Hub, at: datetime, keys: Sequence[str] = KEYS) -> None:
    await step(hub, lambda s: note_failure(s, keys, at))


async def wait(hub: Hub, at: datetime, keys: Sequence[str] = KEYS) -> int | None:
    return await step(hub, lambda s: retry_after(s, keys, at))


async def counts(hub: Hub) -> dict[str, int]:
    async with hub.sessions() as session:
        rows = await session.execute(select(LoginThrottleRow.key, LoginThrottleRow.failures))
        return {key: failures for key, failures in rows}


async def test_ten_failures_block_for_thirty_seconds_then_longer_each_time(hub: Hub) -> None:
    at = START
    for _ in range(LIMIT - 1):
        await fail(hub, at)
        at += timedelta(seconds=1)
    assert await wait(hub, at) is None
    await fail(hub, at)  # the tenth
    assert await wait(hub, at) == 30
    assert await wait(hub, at + timedelta(seconds=12.5)) == 18  # rounded up
    assert await wait(hub, at + timedelta(seconds=30)) is None

    blocks = [30]
    for _ in range(8):
        at += timedelta(seconds=blocks[-1])  # the block is over, and the count goes on
        assert await wait(hub, at) is None
        await fail(hub, at)
        blocks.append(await wait(hub, at) or 0)
    assert blocks == [30, 60, 120, 240, 480, 960, 1920, 3600, 3600]
    assert await counts(hub) == {ANNA: LIMIT + 8, CLIENT: LIMIT + 8}


async def test_a_quiet_window_starts_the_count_over(hub: Hub) -> None:
    for i in range(LIMIT - 1):
        await fail(hub, START + timedelta(seconds=i))
    later = START + timedelta(seconds=LIMIT - 2) + WINDOW + timedelta(seconds=1)
    await fail(hub, later)
    assert await counts(hub) == {ANNA: 1, CLIENT: 1}
    assert await wait(hub, later) is None


async def test_a_block_longer_than_the_window_does_not_start_the_count_over(hub: Hub) -> None:
    at = START
    for _ in range(LIMIT + 6):  # the last block is 1,920 s: longer than the window
        await fail(hub, at)
        at += timedelta(seconds=1)
    blocked_until = at - timedelta(seconds=1) + timedelta(seconds=1920)
    await fail(hub, blocked_until + WINDOW - timedelta(seconds=1))
    assert await counts(hub) == {ANNA: LIMIT + 7, CLIENT: LIMIT + 7}
    await fail(hub, blocked_until + WINDOW + WINDOW + timedelta(hours=1))
    assert await counts(hub) == {ANNA: 1, CLIENT: 1}


async def test_the_most_blocked_key_decides(hub: Hub) -> None:
    for i in range(LIMIT + 1):
        await fail(hub, START, [CLIENT] if i else KEYS)
    assert await wait(hub, START, [ANNA]) is None
    assert await wait(hub, START, [CLIENT]) == 60
    assert await wait(hub, START, KEYS) == 60
    assert await wait(hub, START, [client_key("192.0.2.8"), ANNA]) is None
    assert await wait(hub, START, []) is None


async def test_a_success_clears_the_account_but_not_the_client(hub: Hub) -> None:
    for _ in range(LIMIT):
        await fail(hub, START)
    assert await wait(hub, START, [ANNA]) == 30
    await step(hub, lambda s: note_success(s, ANNA))
    assert await wait(hub, START, [ANNA]) is None
    assert await wait(hub, START, KEYS) == 30
    assert await counts(hub) == {CLIENT: LIMIT}


async def test_concurrent_failures_all_count(hub: Hub) -> None:
    attempts = 24
    await asyncio.gather(*(fail(hub, START) for _ in range(attempts)))
    assert await counts(hub) == {ANNA: attempts, CLIENT: attempts}
    assert await wait(hub, START) == 3600  # the 24th failure's block: 30 s * 2**14, capped


async def test_forgetting_removes_only_counts_that_would_start_over(hub: Hub) -> None:
    for _ in range(LIMIT):
        await fail(hub, START, [ANNA])  # blocked until START + 30 s
    await fail(hub, START, [CLIENT])
    await fail(hub, START + WINDOW, [client_key("192.0.2.8")])
    quiet = START + WINDOW + timedelta(seconds=1)
    assert await step(hub, lambda s: forget_stale(s, quiet)) == 1
    assert set(await counts(hub)) == {ANNA, client_key("192.0.2.8")}
