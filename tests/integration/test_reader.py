"""The request path's reads (Hub.reads): connections that refuse to write; on SQLite they call
SQLite in the event loop's thread, on PostgreSQL they read in autocommit."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from hub.bootstrap import Hub
from hub.web.app import build_app
from storage.tables import AccountRow, TokenRow
from storage.tokens import create_token
from storage.users import add_user


def _sqlite(hub: Hub) -> bool:
    return hub.engine.dialect.name == "sqlite"


async def test_reads_see_what_a_writer_committed(hub: Hub) -> None:
    async with hub.sessions() as session, session.begin():
        session.add(AccountRow(name="Nordwind Logistik"))
    async with hub.reads() as session:
        names = (await session.execute(select(AccountRow.name))).scalars().all()
    assert names == ["Nordwind Logistik"]


async def test_a_read_session_may_not_write(hub: Hub) -> None:
    with pytest.raises(DBAPIError, match=r"readonly|read-only|query_only"):
        async with hub.reads() as session, session.begin():
            session.add(AccountRow(name="Should not land"))
    async with hub.sessions() as session:
        assert (await session.execute(select(func.count(AccountRow.id)))).scalar() == 0


async def test_reads_take_the_shortest_way_to_the_database(hub: Hub) -> None:
    """SQLite: aiosqlite's thread cost more per statement than the hot reads take in SQLite
    itself (storage.inline_sqlite); the writer keeps its thread, for a write may wait for a
    lock. PostgreSQL (whose driver is asynchronous, with no thread to leave out): reads in
    autocommit, without a BEGIN and a ROLLBACK round trip around them."""
    if not _sqlite(hub):
        async with hub.reads() as session:
            raw = await (await session.connection()).get_raw_connection()
            assert raw.driver_connection.autocommit is True
        async with hub.sessions() as session:
            raw = await (await session.connection()).get_raw_connection()
            assert raw.driver_connection.autocommit is False
        return
    loop_thread = threading.get_ident()

    async def thread_of(sessions: object) -> int:
        async with sessions() as session:  # type: ignore[operator]
            connection = await session.connection()
            raw = await connection.get_raw_connection()
            seen: list[int] = []
            await raw.driver_connection.create_function(
                "thread_of_call", 0, lambda: seen.append(threading.get_ident()) or 0
            )
            await session.execute(text("SELECT thread_of_call()"))
            return seen[0]

    assert await thread_of(hub.reads) == loop_thread
    assert await thread_of(hub.sessions) != loop_thread


async def test_an_api_read_records_its_tokens_use_through_the_writer(hub: Hub) -> None:
    """Bearer requests authenticate on the read-only connections; the use of the token is
    still written (at most once a minute, storage.tokens)."""
    async with hub.sessions() as session, session.begin():
        user = await add_user(session, "rita@ourco.example", "sales", "pw-rita-12345678")
        token = await create_token(session, user, actor="test")
    transport = httpx.ASGITransport(app=build_app(hub))
    async with httpx.AsyncClient(transport=transport, base_url="http://hub") as client:
        answer = await client.get("/api/accounts", headers={"Authorization": f"Bearer {token}"})
        refused = await client.get("/api/accounts", headers={"Authorization": "Bearer crm_nope"})
    assert answer.status_code == 200, answer.text
    assert refused.status_code == 401
    async with hub.sessions() as session:
        used = (await session.execute(select(TokenRow.last_used_at))).scalar_one()
    assert used is not None
    assert abs((datetime.now(UTC) - used).total_seconds()) < 60
