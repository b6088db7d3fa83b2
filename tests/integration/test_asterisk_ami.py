"""`asterisk-ami` against a local manager-interface peer (tests/ami_peer.py): live call events
through the scheduler's listener into the store, found by their Asterisk ids; a reconnect after
the connection drops or goes silent; a refused login readable in `crmhub connectors test`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from config.settings import Settings
from connectors.base import ConnectorError
from hub.admin import add_connector, check_connector
from hub.bootstrap import Hub
from hub.jobs import Scheduler
from storage.tables import InteractionRow, NativeIdRow, SourceRow
from tests.ami_peer import ASTERISK_VERSION, FakeAmi

SECRET = "manager-secret-42"
CUSTOMER = "+4917612345678"
CRMHUB = Path(sys.executable).parent / "crmhub"


@pytest.fixture
async def peer() -> AsyncIterator[FakeAmi]:
    fake = await FakeAmi("crmhub", SECRET).start()
    yield fake
    await fake.close()


async def _add(hub: Hub, peer: FakeAmi, secret: str = SECRET, **more: str) -> None:
    settings = {"host": peer.host, "port": str(peer.port), "username": "crmhub", **more}
    await add_connector(hub, "asterisk-ami", "pbx-live", settings, {"secret": secret})


@contextlib.asynccontextmanager
async def _scheduler(hub: Hub) -> AsyncIterator[Scheduler]:
    scheduler = Scheduler(hub)
    task = asyncio.create_task(scheduler.run())
    try:
        yield scheduler
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def _stored(hub: Hub, native_id: str, timeout: float = 10) -> dict[str, Any]:
    """The call a native id names, once it is stored (the listener stores asynchronously)."""
    async with asyncio.timeout(timeout):
        while True:
            async with hub.sessions() as session:
                row = (
                    await session.execute(
                        select(InteractionRow)
                        .join(NativeIdRow, NativeIdRow.interaction_id == InteractionRow.id)
                        .where(NativeIdRow.native_id == native_id)
                    )
                ).scalar_one_or_none()
                if row is not None:
                    ids = await session.scalars(
                        select(NativeIdRow.native_id).where(NativeIdRow.interaction_id == row.id)
                    )
                    sources = await session.scalars(
                        select(SourceRow.connector).where(SourceRow.interaction_id == row.id)
                    )
                    return {
                        "subject": row.subject,
                        "direction": row.direction,
                        "extra": row.extra,
                        "native_ids": set(ids),
                        "sources": list(sources),
                        "occurred_at": row.occurred_at,
                    }
            await asyncio.sleep(0.05)


async def _answered_call(peer: FakeAmi, uniqueid: str, linkedid: str) -> None:
    """What Asterisk sends for an answered inbound call, ending in its Cdr event."""
    caller = {"CallerIDNum": CUSTOMER, "CallerIDName": "Jana Kunde"}
    await peer.event("Newchannel", Uniqueid=uniqueid, Linkedid=linkedid, Exten="200", **caller)
    await peer.event("Hangup", Uniqueid=uniqueid, Linkedid=linkedid, Cause="16", **caller)
    await peer.event(
        "Cdr",
        AccountCode="",
        Source=CUSTOMER,
        Destination="200",
        DestinationContext="from-trunk",
        CallerID=f'"Jana Kunde" <{CUSTOMER}>',
        Channel="PJSIP/trunk-00000001",
        DestinationChannel="PJSIP/200-00000002",
        LastApplication="Dial",
        LastData="PJSIP/200",
        StartTime="2026-03-02 09:30:00",
        AnswerTime="2026-03-02 09:30:05",
        EndTime="2026-03-02 09:34:15",
        Duration="255",
        BillableSeconds="250",
        Disposition="ANSWERED",
        AMAFlags="DOCUMENTATION",
        UniqueID=uniqueid,
        UserField="",
    )


async def test_live_calls_reach_the_store_through_the_scheduler_with_their_ids(
    hub: Hub, peer: FakeAmi
) -> None:
    await _add(hub, peer, cdr_wait="1")
    async with _scheduler(hub):
        await peer.wait_for(logins=1)
        await _answered_call(peer, "1772440200.11", "1772440200.11")
        answered = await _stored(hub, "1772440200.11")
        assert answered["subject"] == f"Call {CUSTOMER} → 200 (answered, 4:10)"
        assert answered["native_ids"] == {"1772440200.11"}
        assert answered["sources"] == ["pbx-live"]
        assert answered["occurred_at"].isoformat().startswith("2026-03-02T08:30:00")  # Berlin

        # A missed call: no Cdr (cdr.conf unanswered=no), so the dial events tell it.
        missed = {"Uniqueid": "1772440300.20", "Linkedid": "1772440300.20"}
        leg = {"Uniqueid": "1772440300.21", "Linkedid": "1772440300.20"}
        await peer.event("Newchannel", **missed, CallerIDNum=CUSTOMER, Exten="200")
        await peer.event("Newchannel", **leg, CallerIDNum="200", Exten="200")
        await peer.event("DialBegin", **missed, DestUniqueid="1772440300.21", DestExten="200")
        await peer.event("DialEnd", **missed, DialStatus="NOANSWER")
        await peer.event("Hangup", **leg, Cause="19")
        await peer.event("Hangup", **missed, Cause="16")
        call = await _stored(hub, "1772440300.20")
    assert call["subject"] == f"Call {CUSTOMER} → 200 (no answer, 0:00)"
    assert call["extra"]["status"] == "no-answer"
    assert call["direction"] == "inbound"
    assert call["native_ids"] == {"1772440300.20"}


async def test_a_cdr_with_a_linkedid_mapping_gives_both_ids_and_a_late_cdr_refines_the_call(
    hub: Hub, peer: FakeAmi
) -> None:
    await _add(hub, peer, cdr_wait="0")
    async with _scheduler(hub):
        await peer.wait_for(logins=1)
        # The transfer leg of a call: its own uniqueid, the first channel's linkedid.
        await _answered_call(peer, "1772440400.31", "1772440400.30")
        call = await _stored(hub, "1772440400.30")
        assert call["native_ids"] == {"1772440400.31", "1772440400.30"}
        async with asyncio.timeout(10):
            while "4:10" not in (await _stored(hub, "1772440400.31"))["subject"]:
                await asyncio.sleep(0.05)  # the Hangup's report came first (cdr_wait=0)
    async with hub.sessions() as session:
        calls = await session.scalar(select(func.count()).select_from(InteractionRow))
    assert calls == 1, "the Hangup's and the Cdr's reports are one call"


async def test_the_listener_connects_again_after_a_drop_and_after_silence(
    hub: Hub, peer: FakeAmi
) -> None:
    await _add(hub, peer, ping_seconds="1")
    async with _scheduler(hub):
        await peer.wait_for(logins=1)
        await peer.drop()
        await peer.wait_for(logins=2)
        await _answered_call(peer, "1772440500.40", "1772440500.40")
        assert (await _stored(hub, "1772440500.40"))["sources"] == ["pbx-live"]

        peer.answer_pings = False  # the line goes dead without closing
        await peer.wait_for(logins=3, timeout=15)
        assert peer.pings >= 1
        await _answered_call(peer, "1772440600.50", "1772440600.50")
        await _stored(hub, "1772440600.50")


async def _crmhub(settings: Settings, *args: str) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRMHUB_")}
    env.update(CRMHUB_DATABASE_URL=settings.database_url, CRMHUB_SECRET_KEY=settings.secret_key)
    process = await asyncio.create_subprocess_exec(
        str(CRMHUB), *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_connectors_test_reports_the_version_or_a_readable_refused_login(
    hub: Hub, peer: FakeAmi, settings: Settings
) -> None:
    await _add(hub, peer, secret="wrong-secret-99")
    status, out, err = await _crmhub(settings, "connectors", "test", "pbx-live")
    assert status != 0
    assert f"{peer.host}:{peer.port} refused the login of 'crmhub': Authentication failed" in err
    assert "Traceback" not in err and "wrong-secret-99" not in err + out
    assert peer.refusals == 1

    await add_connector(
        hub,
        "asterisk-ami",
        "pbx-good",
        {"host": peer.host, "port": str(peer.port), "username": "crmhub"},
        {"secret": SECRET},
    )
    status, out, err = await _crmhub(settings, "connectors", "test", "pbx-good")
    assert (status, err) == (0, "")
    assert f"logged in to Asterisk {ASTERISK_VERSION}" in out


async def test_a_port_that_is_no_ami_or_is_closed_is_a_readable_check_error(hub: Hub) -> None:
    async def not_ami(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"SSH-2.0-OpenSSH_9.6\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(not_ami, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    settings = {"host": "127.0.0.1", "port": str(port), "username": "crmhub", "timeout": "2"}
    await add_connector(hub, "asterisk-ami", "ssh", settings, {"secret": SECRET})
    with pytest.raises(ConnectorError) as wrong:
        await check_connector(hub, "ssh")
    assert str(wrong.value) == (
        f"ssh: 127.0.0.1:{port}: not an Asterisk manager interface (it sent SSH-2.0-OpenSSH_9.6)"
    )
    server.close()
    await server.wait_closed()
    await add_connector(hub, "asterisk-ami", "gone", settings, {"secret": SECRET})
    with pytest.raises(ConnectorError, match=r"^gone: .*Connect call failed"):
        await check_connector(hub, "gone")
