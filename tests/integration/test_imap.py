"""The imap connector against a real Dovecot: nothing lost, nothing duplicated, never hanging."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from connectors.base import ConnectorContext, ConnectorError
from connectors.imap import ImapConnector
from connectors.imap_client import ImapSession
from hub.admin import add_connector
from hub.bootstrap import Hub
from hub.jobs import Scheduler
from hub.model import Translated
from hub.pipeline import sync_all
from storage.packing import kept as stored
from storage.tables import InteractionRow, SourceRow
from tests.fetching import fetch_all, fetched_batches
from tests.integration.dovecot import Dovecot, MailUser, start_dovecot

PASSWORD = "imap-test-password"


@pytest.fixture(scope="module")
def server() -> Iterator[Dovecot]:
    with start_dovecot() as dovecot:
        yield dovecot


@pytest.fixture
def user(server: Dovecot) -> MailUser:
    server.reset()
    return server.add_user("anna@ourco.example", PASSWORD)


def mail(
    n: int,
    *,
    sender: str = "kunde@firma.example",
    subject: str = "Anfrage",
    to: str = "anna@ourco.example",
    extra: str = "",
    body: str = "",
) -> bytes:
    return (
        f"From: Kunde {n} <{sender}>\r\nTo: {to}\r\nSubject: {subject} {n}\r\n"
        f"Message-ID: <m{n}@firma.example>\r\nDate: Mon, 8 Jan 2024 09:{n % 60:02d}:00 +0100\r\n"
        f"{extra}\r\n{body or f'Text {n}'}\r\n"
    ).encode()


def settings_for(server: Dovecot, user: MailUser, **more: str) -> dict[str, str]:
    return server.connector_settings(user, **more)


async def _add(hub: Hub, server: Dovecot, user: MailUser, name: str = "anna", **more: str) -> None:
    await add_connector(
        hub, "imap", name, settings_for(server, user, **more), {"password": PASSWORD}
    )


async def _count(hub: Hub, model: type, *where: Any) -> int:
    async with hub.sessions() as session:
        query = select(func.count()).select_from(model)
        for clause in where:
            query = query.where(clause)
        return int((await session.execute(query)).scalar_one())


async def test_initial_sync_of_5000_messages_then_a_pass_without_changes(
    hub: Hub, server: Dovecot, user: MailUser
) -> None:
    server.fill_maildir(user, "INBOX", (mail(n) for n in range(5000)))
    server.append(user, "Sent", mail(9000, sender="anna@ourco.example", to="kunde@firma.example"))
    await _add(hub, server, user)
    first = (await sync_all(hub))[0]
    assert (first.error, first.fetched, first.new) == ("", 5001, 5001)
    assert await _count(hub, InteractionRow) == 5001
    async with hub.sessions() as session:
        sent = (
            await session.execute(
                select(InteractionRow).where(InteractionRow.message_id == "<m9000@firma.example>")
            )
        ).scalar_one()
    assert sent.direction == "outbound", "mail from an internal address is outbound"

    started = time.perf_counter()
    again = (await sync_all(hub))[0]
    assert (again.error, again.fetched, again.new) == ("", 0, 0)
    assert time.perf_counter() - started < 2.0


async def test_same_message_in_inbox_and_sent_is_one_interaction_with_two_sources(
    hub: Hub, server: Dovecot, user: MailUser
) -> None:
    raw = mail(1, subject="Klammer (offen")  # an unbalanced parenthesis in the subject
    server.append(user, "INBOX", raw)
    server.append(user, "Sent", raw)
    await _add(hub, server, user)
    report = (await sync_all(hub))[0]
    assert (report.new, report.duplicates) == (1, 1)
    assert await _count(hub, SourceRow) == 2
    async with hub.sessions() as session:
        row = (await session.execute(select(InteractionRow))).scalar_one()
    assert row.subject == "Klammer (offen 1"


async def test_uidvalidity_change_remaps_without_duplicates_and_repeated_resets_stop(
    hub: Hub, server: Dovecot, user: MailUser
) -> None:
    server.fill_maildir(user, "INBOX", (mail(n) for n in range(30)))
    await _add(hub, server, user, folders="INBOX")
    assert (await sync_all(hub))[0].new == 30
    for value in (4242, 4243, 4244):
        server.set_uidvalidity(user, "INBOX", value)
        report = (await sync_all(hub))[0]
        assert (report.error, report.new, report.duplicates) == ("", 0, 30)
    assert await _count(hub, InteractionRow) == 30
    server.set_uidvalidity(user, "INBOX", 4245)
    report = (await sync_all(hub))[0]
    assert "UIDVALIDITY" in report.error and "4 times" in report.error
    assert await _count(hub, InteractionRow) == 30


def _connector(server: Dovecot, user: MailUser, **more: str) -> ImapConnector:
    return ImapConnector(
        "anna",
        settings_for(server, user, **more),
        {"password": PASSWORD},
        ConnectorContext(internal_domains=("ourco.example",)),
    )


async def _drain(
    connector: ImapConnector, cursor: dict[str, Any], after_first: Any = None
) -> tuple[list[str], dict[str, Any]]:
    ids: list[str] = []
    async for batch in fetched_batches(connector, cursor):
        ids += [i.interaction.dedupe_key for i in batch.items if isinstance(i, Translated)]
        cursor = batch.cursor
        if after_first is not None:
            await asyncio.to_thread(after_first)
            after_first = None
    return ids, cursor


async def test_connection_killed_mid_fetch_reconnects_and_misses_nothing(
    server: Dovecot, user: MailUser, caplog: pytest.LogCaptureFixture
) -> None:
    server.fill_maildir(user, "INBOX", (mail(n) for n in range(1200)))
    connector = _connector(server, user, folders="INBOX")
    with caplog.at_level("WARNING", logger="connectors.base"):
        ids, _ = await _drain(connector, {}, after_first=lambda: server.kick(user))
    assert any("retrying in" in r.getMessage() for r in caplog.records), "no drop happened"
    assert sorted(ids) == sorted({f"mid:<m{n}@firma.example>" for n in range(1200)})


async def test_message_moved_between_folders_during_sync_is_found_once(
    server: Dovecot, user: MailUser
) -> None:
    server.fill_maildir(user, "INBOX", (mail(n) for n in range(1100)))
    connector = _connector(server, user, folders="INBOX,Geschäftlich")
    # After the first batch, move some of the not yet fetched mail to the other folder.
    ids, cursor = await _drain(
        connector, {}, after_first=lambda: server.move(user, "INBOX", "Geschäftlich", "1050:1100")
    )
    more, _ = await _drain(connector, cursor)
    everything = ids + more
    assert sorted(set(everything)) == sorted({f"mid:<m{n}@firma.example>" for n in range(1100)})


async def test_large_messages_and_the_size_limit(server: Dovecot, user: MailUser) -> None:
    big = os.urandom(15_000_000).hex()[:20_000_000]
    attachment = "\r\n".join(big[i : i + 76] for i in range(0, len(big), 76))
    body = (
        "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b1\r\n\r\n--b1\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\nSiehe Anhang.\r\n--b1\r\n"
        "Content-Type: application/octet-stream\r\n"
        'Content-Disposition: attachment; filename="scan.bin"\r\n\r\n'
        f"{attachment}\r\n--b1--\r\n"
    )
    raw = mail(1, extra=body.split("\r\n\r\n", 1)[0] + "\r\n", body=body.split("\r\n\r\n", 1)[1])
    assert len(raw) > 20_000_000
    server.append(user, "INBOX", raw)
    for limit, kept in ((25_000_000, True), (1_000_000, False)):
        connector = ImapConnector(
            "anna",
            settings_for(server, user, folders="INBOX"),
            {"password": PASSWORD},
            ConnectorContext(max_message_bytes=limit),
        )
        (item,), _ = await fetch_all(connector)
        assert isinstance(item, Translated), item
        (att,) = item.interaction.attachments
        assert att.filename == "scan.bin" and att.size > 14_000_000
        assert stored(att) is kept
        assert (len(item.raw.data) > 20_000_000) is kept, "oversized raw kept without the body"
        assert item.interaction.snippet == "Siehe Anhang."


async def test_plaintext_and_bad_credentials_are_refused_clearly(
    server: Dovecot, user: MailUser
) -> None:
    wrong = ImapConnector("anna", settings_for(server, user), {"password": "wrong"})
    with pytest.raises(ConnectorError, match="refused the login") as caught:
        await fetch_all(wrong)
    assert "wrong" not in str(caught.value)
    # Implicit TLS spoken to the STARTTLS port fails as a TLS problem, not a hang.
    plain_port = ImapConnector(
        "anna",
        settings_for(server, user, port=str(server.imap_port), timeout="5", retries="0"),
        {"password": PASSWORD},
    )
    with pytest.raises(ConnectorError):
        await fetch_all(plain_port)
    starttls = _connector(server, user, tls="starttls", port=str(server.imap_port))
    assert (await _drain(starttls, {}))[0] == []


async def test_plaintext_login_needs_tls_none_explicitly(user: MailUser) -> None:
    with start_dovecot(allow_plaintext=False) as strict:
        account = strict.add_user("tom@ourco.example", PASSWORD)
        strict.append(account, "INBOX", mail(1))
        plain = ImapConnector(
            "tom",
            settings_for(strict, account, tls="none", port=str(strict.imap_port)),
            {"password": PASSWORD},
        )
        with pytest.raises(ConnectorError, match=r"LOGINDISABLED|tls="):
            await fetch_all(plain)
        secure = ImapConnector(
            "tom",
            settings_for(strict, account, tls="starttls", port=str(strict.imap_port)),
            {"password": PASSWORD},
        )
        assert len((await _drain(secure, {}))[0]) == 1


async def test_check_lists_folders_with_counts(server: Dovecot, user: MailUser) -> None:
    server.append(user, "INBOX", mail(1))
    server.append(user, "Geschäftlich", mail(2))
    lines = await _connector(server, user).check()
    assert any("INBOX: 1 messages" in line for line in lines)
    assert any("Geschäftlich: 1 messages" in line for line in lines)
    assert any("Sent: 0 messages \\sent" in line for line in lines)


async def test_idle_brings_new_mail_to_the_timeline_within_two_seconds(
    hub: Hub, server: Dovecot, user: MailUser
) -> None:
    await _add(hub, server, user, folders="INBOX")
    scheduler = Scheduler(hub)
    task = asyncio.create_task(scheduler.run())
    try:
        deadline = time.monotonic() + 10
        while not scheduler.watchers and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)  # the watcher is in IDLE now
        await asyncio.to_thread(server.append, user, "INBOX", mail(77))
        started = time.monotonic()
        while time.monotonic() - started < 2.0:
            if await _count(hub, InteractionRow) == 1:
                break
            await asyncio.sleep(0.05)
        assert await _count(hub, InteractionRow) == 1, "not in the timeline within 2 s"
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def _db_count(db: Path) -> int:
    try:
        with sqlite3.connect(db, timeout=1) as conn:
            return int(conn.execute("SELECT count(*) FROM interactions").fetchone()[0])
    except sqlite3.Error:
        return 0


def test_sigkill_mid_batch_then_resume_gives_the_exact_count(
    server: Dovecot, user: MailUser, tmp_path: Path
) -> None:
    server.fill_maildir(user, "INBOX", (mail(n) for n in range(3000)))
    db = tmp_path / "crash.db"
    env = dict(
        os.environ,
        CRMHUB_DATABASE_URL=f"sqlite:///{db}",
        CRMHUB_SECRET_KEY="k" * 32,
        CRMHUB_INTERNAL_DOMAINS="ourco.example",
        IMAP_TEST_PASSWORD=PASSWORD,
    )
    cli = [sys.executable, "-m", "hub"]
    args = [f"--set={k}={v}" for k, v in settings_for(server, user, folders="INBOX").items()]
    subprocess.run(
        [
            *cli,
            "connectors",
            "add",
            "imap",
            "anna",
            *args,
            "--secret",
            "password=IMAP_TEST_PASSWORD",
        ],
        env=env,
        check=True,
        capture_output=True,
    )
    proc = subprocess.Popen(
        [*cli, "sync"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 60
    while _db_count(db) == 0 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    partial = _db_count(db)
    assert 0 < partial < 3000, "the kill must land between two batches"
    rerun = subprocess.run([*cli, "sync", "--json"], env=env, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    with sqlite3.connect(db) as conn:
        assert conn.execute(
            "SELECT count(*), count(DISTINCT dedupe_key) FROM interactions"
        ).fetchone() == (3000, 3000)
        assert conn.execute("SELECT count(*) FROM sources").fetchone()[0] == 3000


async def test_idle_survives_a_bye_and_still_reports_new_mail(
    server: Dovecot, user: MailUser
) -> None:
    """`doveadm kick` makes Dovecot send BYE mid-IDLE: the watcher reconnects, never hangs."""
    connector = _connector(server, user, folders="INBOX")
    events = connector.watch()
    first = asyncio.ensure_future(events.__anext__())
    try:
        await asyncio.sleep(1.0)  # logged in and idling
        await asyncio.to_thread(server.kick, user)
        await asyncio.sleep(3.0)  # reconnected (back-off is about 1-2 s) and idling again
        assert not first.done()
        await asyncio.to_thread(server.append, user, "INBOX", mail(5))
        assert await asyncio.wait_for(first, timeout=5) == "idle"
    finally:
        first.cancel()
        await events.aclose()


async def test_max_connections_is_respected_across_connectors(
    server: Dovecot, user: MailUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.fill_maildir(user, "INBOX", (mail(n) for n in range(300)))
    active, peak = 0, 0
    original_open = ImapSession.open.__func__  # type: ignore[attr-defined]
    original_close = ImapSession.close

    async def counting_open(cls: type[ImapSession], *args: Any, **kwargs: Any) -> ImapSession:
        nonlocal active, peak
        session = await original_open(cls, *args, **kwargs)
        active += 1
        peak = max(peak, active)
        return session

    async def counting_close(self: ImapSession) -> None:
        nonlocal active
        active -= 1
        await original_close(self)

    monkeypatch.setattr(ImapSession, "open", classmethod(counting_open))
    monkeypatch.setattr(ImapSession, "close", counting_close)
    connectors = [_connector(server, user, folders="INBOX", max_connections="1") for _ in range(3)]
    results = await asyncio.gather(*(_drain(c, {}) for c in connectors))
    assert [len(ids) for ids, _ in results] == [300, 300, 300]
    assert peak == 1
