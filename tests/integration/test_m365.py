"""The m365 connector against a local Graph fake (tests/graph_fake.py), through the real pipeline.

No Microsoft Graph can run here, so these tests talk HTTPS to a fake that answers with the
documented wire formats (the fake's docstring names the Microsoft Learn pages): delta pages
with nextLink and deltaLink, `$value` MIME, `$batch`, calendarView delta, sendMail, the token
endpoint, and the faults Graph really produces (429 with Retry-After, 410 for an expired delta,
403 for a missing permission, AADSTS errors). What is asserted is what crmhub promises: nothing
lost, nothing doubled, private items never fetched, and errors IT can act on.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
import requests
from sqlalchemy import func, select, update

from config.settings import Settings
from connectors.base import ConfigurationError, ConnectorError
from connectors.m365 import M365Connector
from hub.admin import add_connector
from hub.bootstrap import Hub
from hub.pipeline import SyncReport, sync_all
from hub.sending import Outgoing, send_mail
from storage.tables import ConnectorRow, InteractionRow, SourceRow
from tests.graph_fake import GraphFake, mail, start_graph_fake

ANNA = "anna@ourco.example"
BEN = "ben@ourco.example"
CLI = [sys.executable, "-m", "hub"]


@pytest.fixture(scope="module")
def graph(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GraphFake]:
    with start_graph_fake(tmp_path_factory.mktemp("graph")) as fake:
        yield fake


@pytest.fixture
def fake(graph: GraphFake) -> GraphFake:
    """The module's server with a fresh tenant: Anna's and Ben's mailboxes, nothing else."""
    state = graph.state
    with state.lock:
        state.mailboxes.clear()
        state.groups.clear()
        state.faults.clear()
        state.log.clear()
        state.roles = {"Mail.Read", "Mail.Send", "Calendars.Read", "GroupMember.Read.All"}
        state.consented, state.max_page, state.delay = True, 1000, 0.0
    state.revoke_tokens()  # a token lives in the process for an hour, as Graph's do
    state.add_mailbox(ANNA)
    state.add_mailbox(BEN)
    return graph


async def _add(hub: Hub, fake: GraphFake, name: str = "m365", **more: str) -> None:
    settings = fake.settings(**({"mailboxes": ANNA, "calendar": "off"} | more))
    await add_connector(hub, "m365", name, settings, fake.secrets)


async def _sync(hub: Hub, name: str = "m365") -> SyncReport:
    (report,) = await sync_all(hub, [name])
    assert not report.error, report.error
    return report


async def _count(hub: Hub, model: type, *where: Any) -> int:
    async with hub.sessions() as session:
        query = select(func.count()).select_from(model)
        for clause in where:
            query = query.where(clause)
        return int((await session.execute(query)).scalar_one())


async def test_sync_pages_and_a_resync_without_changes_adds_nothing(
    hub: Hub, fake: GraphFake
) -> None:
    for n in range(45):
        fake.state.add_message(ANNA, mail(n))
    fake.state.add_message(ANNA, mail(99, sender=ANNA, to="kunde@firma.example"), "sentitems")
    fake.state.max_page = 10
    await _add(hub, fake)
    first = await _sync(hub)
    assert (first.fetched, first.new) == (46, 46)
    assert await _count(hub, SourceRow, SourceRow.connector == "m365") == 46
    # MIME came through $batch, at most 20 a request, never one by one
    assert not fake.state.requests("$value HTTP") and fake.state.requests("/$batch")
    again = await _sync(hub)
    assert (again.fetched, again.new, again.duplicates) == (0, 0, 0)
    async with hub.sessions() as session:
        cursor = (
            await session.execute(select(ConnectorRow.cursor).where(ConnectorRow.name == "m365"))
        ).scalar_one()
    links = cursor["mailboxes"][ANNA]["folders"]
    assert set(links) == {"inbox", "sentitems"} and all("$deltatoken=" in v for v in links.values())


async def test_each_batch_holds_one_mailbox_of_a_group_and_names_it(fake: GraphFake) -> None:
    fake.state.groups["g-1"] = ("vertrieb@ourco.example", [ANNA, BEN])
    for n in range(5):
        fake.state.add_message(ANNA, mail(n))
        fake.state.add_message(BEN, mail(100 + n, to=BEN))
    connector = M365Connector(
        "grp", fake.settings(group="vertrieb@ourco.example", calendar="off"), fake.secrets
    )
    seen: dict[str, int] = {}
    async for raws, _ in connector.raw_batches({}):
        owners = {r.owner for r in raws}
        assert len(owners) <= 1, owners
        for raw in raws:
            seen[raw.owner] = seen.get(raw.owner, 0) + 1
    assert seen == {ANNA: 5, BEN: 5}


async def test_throttling_waits_as_long_as_graph_asks_and_loses_nothing(
    hub: Hub, fake: GraphFake
) -> None:
    for n in range(30):
        fake.state.add_message(ANNA, mail(n))
    fake.state.fail("/$batch", 429, retry_after=1)
    fake.state.fail("messages/delta", 503, retry_after=0)
    fake.state.fail("/sentitems/", 504, retry_after=0)
    await _add(hub, fake)
    report = await _sync(hub)
    assert report.new == 30
    refused = fake.state.requests("/$batch")[0][0]  # the first one is the refused one
    again = [t for t, _, target in fake.state.requests("/inbox/messages/delta") if t > refused]
    assert again, "the page was not fetched again"
    assert again[0] - refused >= 1.0, "Retry-After: 1 was not honoured"


async def test_expired_delta_restarts_the_folder_without_doubles(hub: Hub, fake: GraphFake) -> None:
    for n in range(30):
        fake.state.add_message(ANNA, mail(n))
    fake.state.max_page = 10
    await _add(hub, fake)
    assert (await _sync(hub)).new == 30
    for n in range(30, 35):
        fake.state.add_message(ANNA, mail(n))
    fake.state.expire(ANNA, "inbox")
    fake.state.log.clear()
    after = await _sync(hub)
    assert (after.new, after.duplicates) == (5, 30)
    assert fake.state.requests("/inbox/messages/delta?$select="), "the folder was not read again"
    assert await _count(hub, InteractionRow) == 35
    # crmhub's own state reset: the cursor emptied (as after restoring a backup)
    async with hub.sessions() as session, session.begin():
        await session.execute(update(ConnectorRow).values(cursor={}))
    reset = await _sync(hub)
    assert (reset.new, reset.duplicates) == (0, 35)
    assert await _count(hub, SourceRow) == 35


async def test_private_items_are_skipped_without_fetching_them(hub: Hub, fake: GraphFake) -> None:
    fake.state.add_folder(ANNA, "Geheim")
    kept = fake.state.add_message(ANNA, mail(1))
    secret = [
        fake.state.add_message(ANNA, mail(2), sensitivity="private"),
        fake.state.add_message(ANNA, mail(3), sensitivity="personal"),
        fake.state.add_message(ANNA, mail(4), categories=["Privat"]),
        fake.state.add_message(ANNA, mail(5), "geheim"),
    ]
    await _add(hub, fake, folders="inbox,Geheim", private_marker="privat,geheim")
    report = await _sync(hub)
    assert (report.new, report.skipped) == (1, 4)
    fetched = " ".join(unquote(target) for _, _, target in fake.state.requests("$value"))
    assert kept in fetched
    assert not [s for s in secret if s in fetched], "a private message was downloaded"
    async with hub.sessions() as session:
        keys = set((await session.execute(select(InteractionRow.dedupe_key))).scalars())
    assert keys == {"mid:<m1@firma.example>"}


async def test_a_moved_message_is_not_doubled(hub: Hub, fake: GraphFake) -> None:
    moved = fake.state.add_message(ANNA, mail(1))
    fake.state.add_message(ANNA, mail(2))
    await _add(hub, fake, folders="inbox,archive")
    assert (await _sync(hub)).new == 2
    fake.state.move(ANNA, moved, "inbox", "archive")
    fake.state.delete(ANNA, next(iter(fake.state.mailboxes[ANNA].folders["inbox"].items)), "inbox")
    after = await _sync(hub)
    assert (after.new, after.errors) == (0, 0)
    assert await _count(hub, InteractionRow) == 2
    assert await _count(hub, SourceRow) == 2


def _when(days: int, hour: int = 9) -> datetime:
    start = datetime.now(UTC).replace(hour=hour, minute=0, second=0, microsecond=0)
    return start + timedelta(days=days)


def _graph_time(moment: datetime) -> dict[str, str]:
    return {"dateTime": moment.strftime("%Y-%m-%dT%H:%M:%S.0000000"), "timeZone": "UTC"}


def _occurrence(n: int, original: datetime, start: datetime, kind: str) -> dict[str, Any]:
    return {
        "id": f"AAMkEvent{n}",
        "type": kind,
        "seriesMasterId": "AAMkMaster",
        "iCalUId": f"040000008200E00074C5B7101A82E008000000{n}",  # per occurrence, as Graph
        "subject": "Wochenrunde" if kind == "occurrence" else "Wochenrunde (verschoben)",
        "bodyPreview": "Agenda",
        "start": _graph_time(start),
        "end": _graph_time(start + timedelta(hours=1)),
        "originalStart": original.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "sensitivity": "normal",
        "categories": [],
        "location": {"displayName": "Teams"},
        "organizer": {"emailAddress": {"name": "Anna", "address": ANNA}},
        "attendees": [
            {
                "type": "required",
                "status": {"response": "accepted" if n != 2 else "declined"},
                "emailAddress": {"name": "Kunde", "address": "kunde@firma.example"},
            }
        ],
    }


async def test_a_recurring_series_with_an_exception_matches_the_same_ics(
    hub: Hub, fake: GraphFake, tmp_path: Path
) -> None:
    uid = "series-7@ourco.example"
    first = _when(7)
    starts = [first + timedelta(weeks=w) for w in range(3)]
    fake.state.add_series_master(ANNA, {"id": "AAMkMaster", "iCalUId": uid, "type": "seriesMaster"})
    fake.state.add_event(ANNA, _occurrence(1, starts[0], starts[0], "occurrence"))
    fake.state.add_event(
        ANNA, _occurrence(2, starts[1], starts[1] + timedelta(hours=1), "exception")
    )
    fake.state.add_event(ANNA, _occurrence(3, starts[2], starts[2], "occurrence"))
    private = _occurrence(4, first, first, "occurrence") | {
        "id": "AAMkPrivate",
        "type": "singleInstance",
        "sensitivity": "private",
    }
    fake.state.add_event(ANNA, private)
    await _add(hub, fake, calendar="on", folders="inbox")
    report = await _sync(hub)
    assert (report.new, report.skipped) == (3, 1)
    async with hub.sessions() as session:
        rows = (
            await session.execute(
                select(InteractionRow.dedupe_key, InteractionRow.subject).order_by(
                    InteractionRow.occurred_at
                )
            )
        ).all()
    stamp = [s.strftime("%Y%m%dT%H%M%SZ") for s in starts]
    assert [r[0] for r in rows] == [f"ics:{uid}|{s}" for s in stamp]
    assert rows[1][1] == "Wochenrunde (verschoben)"
    ics = tmp_path / "team.ics"
    end = (first + timedelta(hours=1)).strftime("%Y%m%dT%H%M%SZ")
    moved = (starts[1] + timedelta(hours=1)).strftime("%Y%m%dT%H%M%SZ")
    moved_end = (starts[1] + timedelta(hours=2)).strftime("%Y%m%dT%H%M%SZ")
    ics.write_text(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n"
        f"BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTART:{stamp[0]}\r\nDTEND:{end}\r\n"
        "RRULE:FREQ=WEEKLY;COUNT=3\r\nSUMMARY:Wochenrunde\r\n"
        f"ORGANIZER;CN=Anna:mailto:{ANNA}\r\nEND:VEVENT\r\n"
        f"BEGIN:VEVENT\r\nUID:{uid}\r\nRECURRENCE-ID:{stamp[1]}\r\nDTSTART:{moved}\r\n"
        f"DTEND:{moved_end}\r\nSUMMARY:Wochenrunde (verschoben)\r\nEND:VEVENT\r\n"
        "END:VCALENDAR\r\n"
    )
    await add_connector(hub, "ics", "team", {"path": str(ics)}, {})
    from_file = await _sync(hub, "team")
    assert (from_file.new, from_file.duplicates) == (0, 3)


async def test_sending_files_the_copy_in_sent_items_and_the_next_sync_knows_it(
    hub: Hub, fake: GraphFake
) -> None:
    await _add(hub, fake)
    outgoing = Outgoing(ANNA, ["kunde@firma.example"], "Angebot", "Anbei das Angebot.")
    outcome = await send_mail(hub, "m365", outgoing)
    assert outcome.sent_folder == "Sent Items" and outcome.accepted == ["kunde@firma.example"]
    (sent,) = fake.state.mailboxes[ANNA].sent
    assert f"Message-ID: {outcome.message_id}".encode() in sent
    report = await _sync(hub)
    assert (report.new, report.duplicates) == (0, 1)
    with pytest.raises(ConfigurationError, match="must be one of this connector's mailboxes"):
        await send_mail(hub, "m365", Outgoing(BEN, ["kunde@firma.example"], "x", "y"))
    fake.state.roles.discard("Mail.Send")
    fake.state.revoke_tokens()  # new roles take effect with the next token, as in Entra
    with pytest.raises(ConnectorError, match=r"application permission Mail\.Send"):
        await send_mail(hub, "m365", outgoing)


async def test_ca_file_wins_over_requests_ca_bundle(
    fake: GraphFake, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = "/etc/ssl/certs/ca-certificates.crt"
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", bundle)
    # the trap: a plain session's own verify loses to the environment
    plain = requests.Session()
    plain.verify = str(fake.ca_file)
    with pytest.raises(requests.exceptions.SSLError):
        plain.get(f"{fake.url}/{fake.state.tenant_id}/v2.0/.well-known/openid-configuration")
    connector = M365Connector("m365", fake.settings(mailboxes=ANNA), fake.secrets)
    lines = await connector.check()
    assert any("Inbox: 0 messages" in line for line in lines), lines


def test_validate_settings_says_what_is_wrong() -> None:
    base = {"tenant_id": "t", "client_id": "c"}
    cases = {
        "set exactly one of mailboxes": base,
        "set exactly one of mailboxes ": base | {"mailboxes": ANNA, "group": "g"},
        "'anna' is not a mail address": base | {"mailboxes": "anna"},
        "graph_url='http://graph.local' is not an https URL": base
        | {"mailboxes": ANNA, "graph_url": "http://graph.local"},
        "calendar='maybe'; use on or off": base | {"mailboxes": ANNA, "calendar": "maybe"},
        "missing setting client_id": {"tenant_id": "t", "mailboxes": ANNA},
    }
    for expected, settings in cases.items():
        with pytest.raises(ConfigurationError) as caught:
            M365Connector.validate_settings(settings)
        assert expected.strip() in str(caught.value)


def _env(database_url: str, secret_key: str, **more: str) -> dict[str, str]:
    """What an operator exports before running crmhub against this database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRMHUB_")}
    return env | {
        "CRMHUB_DATABASE_URL": database_url,
        "CRMHUB_SECRET_KEY": secret_key,
        "CRMHUB_INTERNAL_DOMAINS": "ourco.example",
        **more,
    }


def _cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = _env(settings.database_url, settings.secret_key)
    return subprocess.run(
        [*CLI, *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def _tests(settings: Settings, *names: str) -> list[subprocess.CompletedProcess[str]]:
    with ThreadPoolExecutor(len(names)) as pool:
        return list(pool.map(lambda n: _cli(settings, "connectors", "test", n), names))


def _failed_with(result: subprocess.CompletedProcess[str], *expected: str) -> None:
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    for text in expected:
        assert text in result.stderr, result.stderr


async def test_connectors_test_explains_what_is_missing(
    hub: Hub, fake: GraphFake, settings: Settings
) -> None:
    await _add(hub, fake, "ok", calendar="on")
    await _add(hub, fake, "tenant", tenant_id="wrong-tenant")
    await _add(hub, fake, "nobody", mailboxes="nobody@ourco.example")
    await add_connector(hub, "m365", "grp", fake.settings(group="g-9"), fake.secrets)
    fake.state.groups["g-9"] = ("g9@ourco.example", [ANNA])
    ok, tenant, nobody = _tests(settings, "ok", "tenant", "nobody")
    assert ok.returncode == 0, ok.stderr
    assert f"{ANNA}:" in ok.stdout and "Inbox: 0 messages" in ok.stdout, ok.stdout
    _failed_with(tenant, "tenant 'wrong-tenant' not found", "AADSTS90002")
    _failed_with(nobody, "mailbox 'nobody@ourco.example' not found", "ErrorInvalidUser")

    fake.state.roles -= {"Mail.Read", "GroupMember.Read.All"}
    mail_read, group_read = _tests(settings, "ok", "grp")
    _failed_with(mail_read, "application permission Mail.Read", "/adminconsent?client_id=")
    _failed_with(group_read, "application permission GroupMember.Read.All")

    fake.state.roles = {"Mail.Read"}
    (calendar,) = _tests(settings, "ok")
    _failed_with(calendar, "application permission Calendars.Read")

    fake.state.consented = False
    (consent,) = _tests(settings, "ok")
    url = f"{fake.url}/{fake.state.tenant_id}/adminconsent?client_id={fake.state.client_id}"
    _failed_with(consent, "has no admin consent", "AADSTS7000229", url)


def _interactions(db: Path) -> int:
    try:
        with sqlite3.connect(db, timeout=1) as conn:
            return int(conn.execute("SELECT count(*) FROM interactions").fetchone()[0])
    except sqlite3.Error:
        return 0


def test_sigkill_mid_sync_then_resume_loses_and_doubles_nothing(
    fake: GraphFake, tmp_path: Path
) -> None:
    total = 400
    for n in range(total):
        fake.state.add_message(ANNA, mail(n))
    fake.state.max_page, fake.state.delay = 20, 0.03
    db = tmp_path / "crash.db"
    env = _env(f"sqlite:///{db}", "m365-crash-secret-0123456789", M365_SECRET=fake.state.secret)
    setting_args = [
        f"--set={k}={v}"
        for k, v in fake.settings(mailboxes=ANNA, calendar="off", folders="inbox").items()
    ]
    add = subprocess.run(
        [*CLI, "connectors", "add", "m365", "tenant", *setting_args, "--secret",
         "client_secret=M365_SECRET"],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert add.returncode == 0, add.stderr
    proc = subprocess.Popen(
        [*CLI, "sync"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 60
    while _interactions(db) == 0 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    partial = _interactions(db)
    assert 0 < partial < total, f"the kill must land mid-sync ({partial} of {total})"
    fake.state.delay = 0.0
    rerun = subprocess.run(
        [*CLI, "sync", "--json"], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert rerun.returncode == 0, rerun.stderr
    with sqlite3.connect(db) as conn:
        keys = [r[0] for r in conn.execute("SELECT dedupe_key FROM interactions")]
        sources = conn.execute(
            "SELECT count(*), count(DISTINCT external_id) FROM sources"
        ).fetchone()
    assert sorted(keys) == sorted(f"mid:<m{n}@firma.example>" for n in range(total))
    assert tuple(sources) == (total, total)
    (report,) = json.loads(rerun.stdout)["connectors"]
    assert report["new"] == total - partial, report
