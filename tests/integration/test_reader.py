"""The request path's reads (Hub.reads): connections that refuse to write; on SQLite they call
SQLite in the event loop's thread, on PostgreSQL they read in autocommit."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import create_engine, func, select, text
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


async def _rita_token(hub: Hub) -> str:
    async with hub.sessions() as session, session.begin():
        user = await add_user(session, "rita@ourco.example", "sales", "pw-rita-12345678")
        return await create_token(session, user, actor="test")


async def test_an_api_read_records_its_tokens_use_through_the_writer(hub: Hub) -> None:
    """Bearer requests authenticate on the read-only connections; the use of the token is
    still written (at most once a minute, storage.tokens)."""
    token = await _rita_token(hub)
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


async def _api_request(hub: Hub, path: str, token: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=build_app(hub))
    async with httpx.AsyncClient(transport=transport, base_url="http://hub") as client:
        return await client.get(path, headers={"Authorization": f"Bearer {token}"})


async def test_a_pooled_connection_is_handed_out_without_a_round_trip(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An API request checks out two connections (the token, then the read): a ping on each,
    as pool_pre_ping sent, cost 8 % of a timeline request (storage.db._closed_while_idle)."""
    if _sqlite(hub):
        pytest.skip("SQLite connections are files: nothing to ping")
    token = await _rita_token(hub)
    assert (await _api_request(hub, "/api/accounts", token)).status_code == 200  # pools filled
    pings: list[object] = []
    for engine in (hub.engine, hub.reads.kw["bind"]):
        real = engine.dialect.do_ping
        monkeypatch.setattr(
            engine.dialect, "do_ping", lambda c, real=real: pings.append(c) or real(c)
        )
    answer = await _api_request(hub, "/api/accounts", token)
    assert answer.status_code == 200, answer.text
    assert pings == []


async def test_connections_the_server_ended_while_pooled_are_replaced(hub: Hub) -> None:
    """A database restart ends every pooled connection: the next request must get new ones,
    not an error."""
    if _sqlite(hub):
        pytest.skip("SQLite has no server to end a connection")
    token = await _rita_token(hub)
    async with hub.sessions() as session, session.begin():
        session.add(AccountRow(name="Nordwind Logistik"))
    assert (await _api_request(hub, "/api/accounts", token)).status_code == 200
    async with hub.sessions() as session:  # a writer's connection pooled too
        await session.execute(select(1))
    admin = create_engine(hub.settings.database_url, isolation_level="AUTOCOMMIT")
    others = "FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
    try:
        with admin.connect() as conn:
            ended = conn.execute(text(f"SELECT pg_terminate_backend(pid) {others}")).all()
            assert len(ended) >= 2  # the reader's and the writer's connection
            for _ in range(100):  # the backends exit asynchronously
                if conn.execute(text(f"SELECT count(*) {others}")).scalar_one() == 0:
                    break
                time.sleep(0.05)
    finally:
        admin.dispose()
    answer = await _api_request(hub, "/api/accounts", token)
    assert answer.status_code == 200, answer.text
    assert [a["name"] for a in answer.json()["items"]] == ["Nordwind Logistik"]
    async with hub.sessions() as session, session.begin():
        session.add(AccountRow(name="Südhafen GmbH"))
    async with hub.reads() as session:
        assert (await session.execute(select(func.count(AccountRow.id)))).scalar_one() == 2
