"""The exchange connector against FakeEws (tests/ews_fake.py), through the real pipeline.

No Exchange Server can run here, so these tests talk to a local HTTPS fake that answers the SOAP
requests exchangelib sends with the envelopes the EWS reference documents (the fake's docstring
names the pages). Everything above the wire is the production path: exchangelib, the connector,
`hub.pipeline.sync_connector` (through `sync_all`), storage, the `crmhub` CLI and
`hub.sending.send_mail`.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from connectors.base import ConnectorContext, ConnectorError
from connectors.exchange import PAGE_SIZE, ExchangeConnector
from hub.admin import add_connector
from hub.bootstrap import Hub
from hub.model import RawItem
from hub.pipeline import sync_all
from hub.sending import Outgoing, send_mail
from storage.tables import InteractionRow, SourceRow
from tests.ews_fake import FakeAttendee, FakeEvent, FakeEws

ANNA, BEN = "anna@ourco.example", "ben@ourco.example"
CRMHUB = Path(sys.executable).parent / "crmhub"


@pytest.fixture
def ews(tmp_path: Path) -> Iterator[FakeEws]:
    with FakeEws.running(tmp_path) as fake:
        fake.add_mailbox(ANNA)
        fake.add_mailbox(BEN)
        yield fake


def mail(n: int, *, sender: str = "kunde@firma.example", to: str = ANNA, extra: str = "") -> bytes:
    return (
        f"From: Kunde <{sender}>\r\nTo: {to}\r\nSubject: Anfrage {n}\r\n"
        f"Message-ID: <m{n}@firma.example>\r\nDate: Mon, 8 Jan 2024 09:{n % 60:02d}:00 +0100\r\n"
        f"{extra}\r\nText {n}\r\n"
    ).encode()


async def _add(
    hub: Hub, ews: FakeEws, *mailboxes: str, name: str = "exchange", **more: str
) -> None:
    await add_connector(
        hub, "exchange", name, ews.settings(*mailboxes, **more), {"password": ews.password}
    )


async def _count(hub: Hub, model: type, *where: Any) -> int:
    async with hub.sessions() as session:
        query = select(func.count()).select_from(model)
        for clause in where:
            query = query.where(clause)
        return int((await session.execute(query)).scalar_one())


def _connector(ews: FakeEws, *mailboxes: str, **more: str) -> ExchangeConnector:
    return ExchangeConnector(
        "exchange",
        ews.settings(*mailboxes, **more),
        {"password": ews.password},
        ConnectorContext(internal_domains=("ourco.example",), calendar_window_days=60),
    )


async def _batches(
    connector: ExchangeConnector, cursor: dict[str, Any] | None = None
) -> list[tuple[list[RawItem], dict[str, Any]]]:
    return [(raws, next_cursor) async for raws, next_cursor in connector.raw_batches(cursor or {})]


async def test_many_mailboxes_each_item_owned_by_its_mailbox_and_a_second_pass_is_empty(
    hub: Hub, ews: FakeEws
) -> None:
    for n in range(3):
        ews.deliver(ANNA, mail(n))
    ews.deliver(BEN, mail(10, to=BEN))
    ews.deliver(BEN, mail(11, sender=BEN, to="kunde@firma.example"), folder="sentitems")
    ews.add_folder(BEN, "Projekte")
    ews.add_folder(BEN, "Acme", parent="Projekte")
    ews.deliver(BEN, mail(12, to=BEN), folder="Acme")
    await _add(hub, ews, ANNA, BEN, folders="Projekte/Acme", calendar="off")

    first = (await sync_all(hub))[0]
    assert (first.error, first.fetched, first.new) == ("", 6, 6)
    async with hub.sessions() as session:
        owners = dict(
            (await session.execute(select(InteractionRow.message_id, SourceRow.owner).join(
                SourceRow, SourceRow.interaction_id == InteractionRow.id
            ))).all()
        )  # fmt: skip
    assert owners == {
        "<m0@firma.example>": ANNA,
        "<m1@firma.example>": ANNA,
        "<m2@firma.example>": ANNA,
        "<m10@firma.example>": BEN,
        "<m11@firma.example>": BEN,
        "<m12@firma.example>": BEN,
    }
    again = (await sync_all(hub))[0]
    assert (again.error, again.fetched, again.new) == ("", 0, 0)

    batches = await _batches(_connector(ews, ANNA, BEN, folders="Projekte/Acme", calendar="off"))
    assert all(len({raw.owner for raw in raws}) == 1 for raws, _ in batches if raws)


async def test_paging_commits_each_pages_sync_state_with_its_items_only(ews: FakeEws) -> None:
    for n in range(2 * PAGE_SIZE + 50):
        ews.deliver(ANNA, mail(n))
    batches = await _batches(_connector(ews, ANNA, calendar="off"))
    sizes = [len(raws) for raws, _ in batches if raws]
    assert sizes == [PAGE_SIZE, PAGE_SIZE, 50]
    inbox = ews.mailboxes[ANNA].folder("inbox").folder_id
    states = [c["mailboxes"][ANNA]["folders"].get(inbox) for _, c in batches]
    assert len(set(filter(None, states))) >= 3, "every page hands out a new state with its items"

    # Resuming from the first page's cursor fetches exactly the rest.
    rest = await _batches(_connector(ews, ANNA, calendar="off"), batches[0][1])
    resumed = [raw.external_id for raws, _ in rest for raw in raws]
    everything = [raw.external_id for raws, _ in batches for raw in raws]
    assert resumed == everything[PAGE_SIZE:]


async def test_private_sensitivity_category_and_folder_are_never_downloaded(
    hub: Hub, ews: FakeEws
) -> None:
    public = ews.deliver(ANNA, mail(1))
    ews.deliver(ANNA, mail(2), sensitivity="Private")
    ews.deliver(ANNA, mail(3), sensitivity="Personal")
    ews.deliver(ANNA, mail(4), categories=["Kunde", "Privat"])
    ews.add_folder(ANNA, "Privat")
    ews.deliver(ANNA, mail(5), folder="Privat")
    ews.add_event(
        ANNA,
        FakeEvent(ews.new_id(), "private-uid", "Arzt", _soon(), sensitivity="Private"),
    )
    await _add(hub, ews, ANNA, folders="Privat", private_marker="privat")

    report = (await sync_all(hub))[0]
    assert (report.error, report.new, report.skipped) == ("", 1, 5)
    assert await _count(hub, InteractionRow) == 1
    assert ews.downloaded == [public], "only the mail that may be stored was downloaded"


async def test_invalid_sync_state_resyncs_the_folder_without_duplicates(
    hub: Hub, ews: FakeEws
) -> None:
    for n in range(30):
        ews.deliver(ANNA, mail(n))
    await _add(hub, ews, ANNA, calendar="off")
    assert (await sync_all(hub))[0].new == 30
    ews.invalidate_sync_states(ANNA, "inbox")
    ews.deliver(ANNA, mail(99))
    report = (await sync_all(hub))[0]
    assert (report.error, report.new, report.duplicates) == ("", 1, 30)
    assert await _count(hub, InteractionRow) == 31
    assert await _count(hub, SourceRow) == 31, "the same EWS item id: no second source"
    assert (await sync_all(hub))[0].fetched == 0, "the new state was stored"


async def test_server_busy_waits_as_long_as_the_server_asks_then_resumes(
    hub: Hub, ews: FakeEws
) -> None:
    for n in range(5):
        ews.deliver(ANNA, mail(n))
    ews.busy("SyncFolderItems", back_off_ms=700, times=2)
    await _add(hub, ews, ANNA, calendar="off")
    started = time.monotonic()
    report = (await sync_all(hub))[0]
    waited = time.monotonic() - started
    assert (report.error, report.new) == ("", 5)
    assert waited >= 1.4, f"BackOffMilliseconds 700 twice, yet the sync took {waited:.2f} s"
    assert ews.requests.count("SyncFolderItems") >= 4  # 2 refused + inbox + sent


async def test_a_server_that_stays_busy_fails_the_sync_with_a_readable_error(
    hub: Hub, ews: FakeEws
) -> None:
    ews.deliver(ANNA, mail(1))
    ews.busy("SyncFolderItems", back_off_ms=50, times=10)
    await _add(hub, ews, ANNA, calendar="off", retries="2")
    report = (await sync_all(hub))[0]
    assert "server busy" in report.error and "gave up after 2 retries" in report.error
    assert "Traceback" not in report.error


async def test_a_moved_message_is_one_interaction_with_a_source_per_place(
    hub: Hub, ews: FakeEws
) -> None:
    """Exchange gives a moved message a new item id: a Create in the target folder, a Delete in
    the old one. Storage recognises the Message-ID and adds a source; the old source stays
    (deletions are not synced: what was logged stays logged)."""
    item = ews.deliver(ANNA, mail(1))
    ews.add_folder(ANNA, "Erledigt")
    await _add(hub, ews, ANNA, folders="Erledigt", calendar="off")
    assert (await sync_all(hub))[0].new == 1
    ews.move(ANNA, item, "Erledigt")
    report = (await sync_all(hub))[0]
    assert (report.error, report.fetched, report.new, report.duplicates) == ("", 1, 0, 1)
    assert await _count(hub, InteractionRow) == 1
    assert await _count(hub, SourceRow) == 2


def _soon(days: int = 1) -> datetime:
    return (datetime.now(UTC) + timedelta(days=days)).replace(
        hour=9, minute=0, second=0, microsecond=0
    )


async def test_a_recurring_series_with_an_exception_and_answers_from_item_fields(
    hub: Hub, ews: FakeEws
) -> None:
    start = _soon()
    second = start + timedelta(days=7)
    series = ews.add_event(
        ANNA,
        FakeEvent(
            ews.new_id(),
            "040000008200E00074C5B7101A82E008-weekly",
            "Jour fixe",
            start,
            every=timedelta(days=7),
            count=4,
            organizer=FakeAttendee(ANNA, "Anna"),
            required=[FakeAttendee("kunde@firma.example", "Kunde", "Accept")],
            optional=[FakeAttendee("chef@firma.example", "Chef", "Tentative")],
            exceptions={
                second: {
                    "start": second + timedelta(hours=2),
                    "subject": "Jour fixe (verschoben)",
                    "required": [FakeAttendee("kunde@firma.example", "Kunde", "Decline")],
                }
            },
        ),
    )
    await _add(hub, ews, ANNA)
    first = (await sync_all(hub))[0]
    assert (first.error, first.new) == ("", 4)
    async with hub.sessions() as session:
        rows = (
            (await session.execute(select(InteractionRow).order_by(InteractionRow.occurred_at)))
            .scalars()
            .all()
        )
    rid = second.strftime("%Y%m%dT%H%M%SZ")
    assert [r.dedupe_key for r in rows][1] == f"ics:{series.uid}|{rid}"
    moved = rows[1]
    assert moved.subject == "Jour fixe (verschoben)"
    assert moved.occurred_at.replace(tzinfo=UTC) == second + timedelta(hours=2)
    assert moved.extra["answers"] == {
        "kunde@firma.example": "declined",
        "chef@firma.example": "tentative",
    }
    assert rows[0].extra["answers"]["kunde@firma.example"] == "accepted"
    assert all(r.channel == "meeting" for r in rows)

    again = (await sync_all(hub))[0]
    assert (again.error, again.fetched) == ("", 0), "no calendar change, no calendar read"
    series.subject = "Jour fixe neu"
    ews.touch_event(ANNA, series.item_id)
    changed = (await sync_all(hub))[0]
    assert (changed.error, changed.fetched, changed.new) == ("", 4, 0)


async def test_sending_goes_through_the_mailbox_with_the_copy_in_sent_items(
    hub: Hub, ews: FakeEws
) -> None:
    await _add(hub, ews, ANNA, calendar="off")
    outcome = await send_mail(
        hub,
        "exchange",
        Outgoing(ANNA, ["kunde@firma.example"], "Angebot", "Anbei das Angebot."),
    )
    assert outcome.accepted == ["kunde@firma.example"]
    assert outcome.sent_folder == "Sent Items" and not outcome.sent_copy_error
    (sent,) = ews.mailboxes[ANNA].sent
    assert b"Subject: Angebot" in sent and outcome.message_id.encode() in sent
    assert outcome.interaction_id is not None
    report = (await sync_all(hub))[0]
    assert (report.error, report.new, report.duplicates) == ("", 0, 1), "the Sent Items copy"


async def test_sending_as_a_mailbox_the_connector_does_not_hold_is_refused(ews: FakeEws) -> None:
    connector = _connector(ews, ANNA, BEN)
    from email.message import EmailMessage

    message = EmailMessage()
    message["From"] = "eve@ourco.example"
    message["To"] = "kunde@firma.example"
    with pytest.raises(ConnectorError, match="not one of the mailboxes"):
        await connector.send(message)
    assert ews.mailboxes[ANNA].sent == [] and ews.mailboxes[BEN].sent == []


async def test_ca_file_wins_over_requests_ca_bundle(ews: FakeEws, monkeypatch: Any) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    assert await _connector(ews, ANNA).check()
    # A fake of its own: the first fake's CA is now trusted for its host and port.
    with FakeEws.running(Path(ews.ca_file).parent) as second:
        second.add_mailbox(ANNA)
        settings = second.settings(ANNA)
        del settings["ca_file"]
        plain = ExchangeConnector("plain", settings, {"password": second.password})
        with pytest.raises(ConnectorError, match="not trusted: set ca_file"):
            await plain.check()


def _cli(db: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("CRMHUB_")}
    full.update(
        CRMHUB_DATABASE_URL=f"sqlite:///{db}",
        CRMHUB_INTERNAL_DOMAINS="ourco.example",
        CRMHUB_SECRET_KEY="exchange-test-secret-0123456789",
        **env,
    )
    return subprocess.run(
        [str(CRMHUB), *args], env=full, capture_output=True, text=True, timeout=120, check=False
    )


def _add_cli(db: Path, name: str, settings: dict[str, str], password: str) -> None:
    sets = [arg for key, value in settings.items() for arg in ("--set", f"{key}={value}")]
    added = _cli(
        db, "connectors", "add", "exchange", name, *sets, "--secret", "password=EWS_PASSWORD",
        EWS_PASSWORD=password,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr


def test_connectors_test_explains_what_is_missing(ews: FakeEws, tmp_path: Path) -> None:
    db = tmp_path / "cli.db"
    ews.deny_impersonation(BEN)
    ews.deliver(ANNA, mail(1))
    _add_cli(db, "good", ews.settings(ANNA), ews.password)
    _add_cli(db, "wrongpw", ews.settings(ANNA), "not-the-password")
    _add_cli(db, "denied", ews.settings(BEN), ews.password)
    _add_cli(db, "nobody", ews.settings("nobody@ourco.example"), ews.password)
    unreachable = ews.settings(ANNA)
    unreachable["service_endpoint"] = "https://127.0.0.1:9/EWS/Exchange.asmx"
    _add_cli(db, "noserver", unreachable, ews.password)

    good = _cli(db, "connectors", "test", "good")
    assert good.returncode == 0, good.stderr
    assert "logged in to" in good.stdout and f"{ANNA}: Inbox: 1 items" in good.stdout
    expected = {
        "wrongpw": "refused the login of",
        "denied": "ApplicationImpersonation",
        "nobody": "mailbox nobody@ourco.example not found",
        "noserver": "cannot reach https://127.0.0.1:9/EWS/Exchange.asmx",
    }
    for name, words in expected.items():
        result = _cli(db, "connectors", "test", name)
        message = (result.stdout + result.stderr).strip()
        assert result.returncode != 0 and words in message, (name, message)
        assert "Traceback" not in message and len(message.splitlines()) == 1, message
        assert ews.password not in message


def test_connectors_add_rejects_bad_exchange_settings_with_one_line(tmp_path: Path) -> None:
    db = tmp_path / "bad.db"
    cases = {
        ("--set", "username=svc", "--set", "mailboxes=a@ourco.example"): "missing setting server",
        (
            "--set", "username=svc", "--set", "mailboxes=not-an-address",
            "--set", "server=mail.ourco.example",
        ): "'not-an-address' is not a mail address",
        (
            "--set", "username=svc", "--set", "mailboxes=a@ourco.example",
            "--set", "server=mail.ourco.example", "--set", "auth=kerberos",
        ): "auth='kerberos'; use ntlm or basic",
        (
            "--set", "username=svc", "--set", "mailboxes=a@ourco.example",
            "--set", "service_endpoint=http://mail.ourco.example/EWS/Exchange.asmx",
        ): "must start with https://",
    }  # fmt: skip
    for args, words in cases.items():
        result = _cli(db, "connectors", "add", "exchange", "x", *args)
        assert result.returncode != 0 and words in result.stderr, result.stderr


def _interactions(db: Path) -> tuple[list[str], int]:
    try:
        with sqlite3.connect(db, timeout=1) as conn:
            keys = sorted(r[0] for r in conn.execute("SELECT dedupe_key FROM interactions"))
            sources = conn.execute("SELECT count(*) FROM sources").fetchone()[0]
        return keys, int(sources)
    except sqlite3.Error:
        return [], 0


def test_sigkill_mid_sync_then_resume_loses_and_doubles_nothing(
    ews: FakeEws, tmp_path: Path
) -> None:
    total = 12 * PAGE_SIZE
    for n in range(total):
        ews.deliver(ANNA, mail(n))
    ews.delay = 0.05  # a page takes a while, so the kill lands between two of them
    db = tmp_path / "crash.db"
    _add_cli(db, "exchange", ews.settings(ANNA, calendar="off"), ews.password)
    full = {k: v for k, v in os.environ.items() if not k.startswith("CRMHUB_")}
    full.update(
        CRMHUB_DATABASE_URL=f"sqlite:///{db}",
        CRMHUB_INTERNAL_DOMAINS="ourco.example",
        CRMHUB_SECRET_KEY="exchange-test-secret-0123456789",
    )
    proc = subprocess.Popen(
        [str(CRMHUB), "sync"], env=full, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 120
    while not _interactions(db)[0] and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    partial = len(_interactions(db)[0])
    assert 0 < partial < total, "the kill must land between two batches"

    ews.delay = 0.0
    rerun = _cli(db, "sync", "--json")
    assert rerun.returncode == 0, rerun.stderr
    keys, sources = _interactions(db)
    assert keys == sorted(f"mid:<m{n}@firma.example>" for n in range(total))
    assert sources == total, "no item stored twice under two external ids"
    again = _cli(db, "sync", "--json")
    assert '"fetched": 0' in again.stdout


async def test_fetch_runs_in_threads_and_never_blocks_the_loop(ews: FakeEws) -> None:
    """Other connectors keep running while EWS answers slowly."""
    for n in range(3):
        ews.deliver(ANNA, mail(n))
    ews.delay = 0.2
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticker = asyncio.create_task(tick())
    started = time.monotonic()
    await _batches(_connector(ews, ANNA, calendar="off"))
    elapsed = time.monotonic() - started
    ticker.cancel()
    assert ticks >= elapsed / 0.01 * 0.25, f"{ticks} ticks in {elapsed:.2f} s"
