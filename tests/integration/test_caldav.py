"""The caldav connector against a real Radicale (tests/radicale.py), through the real pipeline.

What is asserted is what issue 16 promises: an initial sync and incremental ones after an add,
a change, a move between calendars and a delete (a cancelled meeting stays, marked cancelled);
a token the server no longer knows; a series gaining an exception; the same event in two users'
calendars as one meeting with two sources; an all-day event across a DST change; `crmhub
connectors test`; and booking into the calendar with free/busy read back.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select, update

from connectors.base import Booked, ConfigurationError, ConnectorContext, ConnectorError
from connectors.caldav import CalDavConnector
from connectors.caldav_listing import list_changes, multiget
from hub.admin import add_connector
from hub.bootstrap import Hub
from hub.model import Interaction, RawItem
from hub.pipeline import SyncReport, sync_connector
from storage.tables import ConnectorRow, InteractionRow, SourceRow
from tests.radicale import CalDavUser, Radicale, caldav_user, event, radicale

__all__ = ["caldav_user", "radicale"]  # fixtures, imported for pytest
CRMHUB = Path(sys.executable).parent / "crmhub"
BERLIN = ZoneInfo("Europe/Berlin")
SOON = (datetime.now(UTC) + timedelta(days=10)).replace(hour=9, minute=0, second=0, microsecond=0)


def _stamp(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def _timed(uid: str, at: datetime, **fields: Any) -> str:
    return event(uid, _stamp(at), _stamp(at + timedelta(hours=1)), **fields)


def _settings(user: CalDavUser, **more: str) -> dict[str, str]:
    return {"url": f"{user.server.url}/", "username": user.name, **more}


async def _add(hub: Hub, name: str, user: CalDavUser, **more: str) -> None:
    await add_connector(hub, "caldav", name, _settings(user, **more), {"password": user.password})


async def _sync(hub: Hub, name: str = "cal") -> SyncReport:
    report = await sync_connector(hub, name, await hub.identity_index())
    assert report.error == "", report.error
    return report


async def _meeting(hub: Hub, uid: str) -> InteractionRow:
    async with hub.sessions() as session:
        row = await session.execute(
            select(InteractionRow).where(InteractionRow.dedupe_key == f"ics:{uid}")
        )
        return row.scalar_one()


async def _count(hub: Hub, connector: str = "cal") -> tuple[int, int]:
    """(interactions, sources) of one connector."""
    async with hub.sessions() as session:
        row = await session.execute(
            select(func.count(func.distinct(SourceRow.interaction_id)), func.count()).where(
                SourceRow.connector == connector
            )
        )
        interactions, sources = row.one()
    return int(interactions), int(sources)


async def _cursor(hub: Hub, name: str = "cal") -> dict[str, Any]:
    async with hub.sessions() as session:
        row = await session.execute(select(ConnectorRow.cursor).where(ConnectorRow.name == name))
        return dict(row.scalar_one() or {})


async def _set_cursor(hub: Hub, cursor: dict[str, Any], name: str = "cal") -> None:
    async with hub.sessions() as session, session.begin():
        await session.execute(
            update(ConnectorRow).where(ConnectorRow.name == name).values(cursor=cursor)
        )


async def _fetch(connector: CalDavConnector) -> AsyncIterator[RawItem]:
    async for raws, _ in connector.raw_batches({}):
        for raw in raws:
            yield raw


async def test_initial_then_add_change_move_and_delete(hub: Hub, caldav_user: CalDavUser) -> None:
    user = caldav_user
    user.make_calendar("home", "Home")
    user.put("work", "a.ics", _timed("a@ourco.example", SOON, summary="Angebot"))
    user.put("work", "b.ics", _timed("b@ourco.example", SOON, summary="Vertrag"))
    user.put("work", "c.ics", _timed("c@ourco.example", SOON, summary="Abschluss"))
    weekly = "RRULE:FREQ=WEEKLY;COUNT=3\r\n"
    user.put("work", "s.ics", _timed("s@ourco.example", SOON, summary="Jour fixe", extra=weekly))
    await _add(hub, "cal", user)
    first = await _sync(hub)
    assert (first.fetched, first.new, first.quarantined) == (6, 6, 0)
    assert (await _sync(hub)).fetched == 0, "nothing changed, nothing fetched"

    user.put("work", "d.ics", _timed("d@ourco.example", SOON, summary="Neu"))
    later = SOON + timedelta(hours=3)
    user.put("work", "b.ics", _timed("b@ourco.example", later, summary="Vertrag (verschoben)"))
    user.put("home", "a.ics", user.get("work", "a.ics"))  # moved: a client copies, then deletes
    user.delete("work", "a.ics")
    user.delete("work", "c.ics")
    second = await _sync(hub)
    assert second.new == 1, "only d is new"
    assert await _count(hub) == (7, 7), "a moved is still one meeting, c stays cancelled"

    changed = await _meeting(hub, "b@ourco.example")
    assert changed.subject == "Vertrag (verschoben)"
    assert changed.occurred_at.astimezone(UTC) == later
    moved = await _meeting(hub, "a@ourco.example")
    assert (moved.extra or {}).get("status") != "cancelled"
    deleted = await _meeting(hub, "c@ourco.example")
    assert (deleted.extra or {}).get("status") == "cancelled"
    cursor = await _cursor(hub)
    assert cursor["pending"] == {}, "cancellations are delivered, not kept"
    assert (await _sync(hub)).fetched == 0


async def test_a_deleted_event_stays_with_its_subject_and_customer(
    hub: Hub, caldav_user: CalDavUser
) -> None:
    caldav_user.put("work", "c.ics", _timed("c@ourco.example", SOON, summary="Abschluss"))
    await _add(hub, "cal", caldav_user)
    await _sync(hub)
    caldav_user.delete("work", "c.ics")
    await _sync(hub)
    deleted = await _meeting(hub, "c@ourco.example")
    assert (deleted.extra or {}).get("status") == "cancelled"
    assert deleted.subject == "Abschluss", "a cancelled meeting keeps what it was"


async def test_a_token_the_server_forgot_lists_anew_without_doubles(
    hub: Hub, caldav_user: CalDavUser
) -> None:
    user = caldav_user
    for n in range(3):
        user.put("work", f"e{n}.ics", _timed(f"e{n}@ourco.example", SOON + timedelta(days=n)))
    await _add(hub, "cal", user)
    assert (await _sync(hub)).new == 3
    cursor = await _cursor(hub)
    (state,) = cursor["calendars"].values()
    real_token = state["token"]
    state["token"] = "http://radicale.org/ns/sync/" + "0" * 64  # well-formed, never issued
    await _set_cursor(hub, cursor)
    user.put("work", "e3.ics", _timed("e3@ourco.example", SOON + timedelta(days=3)))
    user.delete("work", "e0.ics")
    report = await _sync(hub)
    assert (report.fetched, report.new) == (2, 1), "e3, and e0's cancellation; e1, e2 not again"
    assert (await _meeting(hub, "e0@ourco.example")).extra.get("status") == "cancelled"
    (state,) = (await _cursor(hub))["calendars"].values()
    assert state["mode"] == "sync" and state["token"] not in ("", real_token)
    assert await _count(hub) == (4, 4)


async def test_etag_mode_finds_changes_and_asks_for_a_real_token_again(
    hub: Hub, caldav_user: CalDavUser
) -> None:
    """A calendar in ETag mode (its server refused sync-collection) is read by comparing
    ETags until its retry day, and then asked for sync-collection again: the library's own
    fallback ("fake-" tokens) would never ask again."""
    user = caldav_user
    user.put("work", "e0.ics", _timed("e0@ourco.example", SOON))
    await _add(hub, "cal", user)
    await _sync(hub)
    cursor = await _cursor(hub)
    (key,) = cursor["calendars"]
    tomorrow = (date.today() + timedelta(days=1)).isoformat()
    hrefs = cursor["calendars"][key]["hrefs"]
    cursor["calendars"][key] = {"mode": "etag", "retry": tomorrow, "hrefs": hrefs}
    await _set_cursor(hub, cursor)
    user.put("work", "e1.ics", _timed("e1@ourco.example", SOON))
    assert ((await _sync(hub)).fetched, (await _cursor(hub))["calendars"][key]["mode"]) == (
        1,
        "etag",
    )
    cursor = await _cursor(hub)
    cursor["calendars"][key]["retry"] = date.today().isoformat()
    cursor["calendars"][key].pop("token", None)
    await _set_cursor(hub, cursor)
    assert (await _sync(hub)).fetched == 0, "the full listing matches every ETag"
    state = (await _cursor(hub))["calendars"][key]
    assert state["mode"] == "sync" and state["token"].startswith("http://radicale.org/ns/sync/")
    cursor["calendars"][key] = {**state, "token": "fake-0123"}  # the library's own kind
    await _set_cursor(hub, cursor)
    assert (await _sync(hub)).fetched == 0
    assert not (await _cursor(hub))["calendars"][key]["token"].startswith("fake-")


async def test_an_exception_added_to_a_series(hub: Hub, caldav_user: CalDavUser) -> None:
    user = caldav_user
    weekly = "RRULE:FREQ=WEEKLY;COUNT=4\r\n"
    series = _timed("jf@ourco.example", SOON, summary="Jour fixe", extra=weekly)
    user.put("work", "jf.ics", series)
    await _add(hub, "cal", user)
    assert (await _sync(hub)).new == 4
    second = SOON + timedelta(weeks=1)
    third = SOON + timedelta(weeks=2)
    exception = _timed(
        "jf@ourco.example", second + timedelta(hours=2), summary="Jour fixe (später)",
        extra=f"RECURRENCE-ID:{_stamp(second)}\r\n",
    )  # fmt: skip
    with_exdate = series.replace(weekly, weekly + f"EXDATE:{_stamp(third)}\r\n")
    body = with_exdate.replace("END:VCALENDAR\r\n", "") + exception.split("VERSION:2.0\r\n")[1]
    body = body.replace("PRODID:-//crmhub tests//EN\r\n", "", 1)
    user.put("work", "jf.ics", body)
    report = await _sync(hub)
    assert report.new == 0, "the exception and the removed one are the same occurrences"
    assert await _count(hub) == (4, 4)
    moved = await _meeting(hub, f"jf@ourco.example|{_stamp(second)}")
    assert moved.subject == "Jour fixe (später)"
    assert moved.occurred_at.astimezone(UTC) == second + timedelta(hours=2)
    removed = await _meeting(hub, f"jf@ourco.example|{_stamp(third)}")
    assert removed.extra.get("status") == "cancelled" and removed.subject == "Jour fixe"


async def test_the_same_event_in_two_users_calendars_is_one_meeting(
    hub: Hub, radicale: Radicale
) -> None:
    anna, ben = radicale.add_user(), radicale.add_user()
    for user in (anna, ben):
        user.make_calendar("work", "Work")
        user.put("work", "kickoff.ics", _timed("kickoff@firma.example", SOON, summary="Kick-off"))
    await _add(hub, "anna-cal", anna)
    await _add(hub, "ben-cal", ben)
    assert (await _sync(hub, "anna-cal")).new == 1
    again = await _sync(hub, "ben-cal")
    assert (again.new, again.duplicates) == (0, 1)
    meeting = await _meeting(hub, "kickoff@firma.example")
    async with hub.sessions() as session:
        sources = await session.execute(
            select(SourceRow.connector).where(SourceRow.interaction_id == meeting.id)
        )
        assert sorted(sources.scalars()) == ["anna-cal", "ben-cal"]


def _next_dst_change(after: date) -> date:
    """The next day on which Europe/Berlin changes its UTC offset (within a year)."""
    day = after + timedelta(days=1)
    while True:
        noon = datetime(day.year, day.month, day.day, 12, tzinfo=BERLIN)
        if noon.utcoffset() != (noon - timedelta(days=1)).utcoffset():
            return day
        day += timedelta(days=1)


async def test_an_all_day_event_across_a_dst_change_keeps_its_days(
    caldav_user: CalDavUser,
) -> None:
    change = _next_dst_change(date.today())
    before = change - timedelta(days=1)
    span = event(
        "conference@firma.example", before.strftime("%Y%m%d"),
        (change + timedelta(days=1)).strftime("%Y%m%d"), summary="Messe",
    ).replace("DTSTART:", "DTSTART;VALUE=DATE:").replace("DTEND:", "DTEND;VALUE=DATE:")  # fmt: skip
    daily = span.replace("conference@", "standup@").replace(
        "SUMMARY:Messe", "SUMMARY:Tagesplan\r\nRRULE:FREQ=DAILY;COUNT=3"
    )
    daily = daily.replace(f"DTEND;VALUE=DATE:{(change + timedelta(days=1)):%Y%m%d}", "DURATION:P1D")
    caldav_user.put("work", "messe.ics", span)
    caldav_user.put("work", "daily.ics", daily)
    context = ConnectorContext(timezone="Europe/Berlin")
    connector = CalDavConnector(
        "cal", _settings(caldav_user), {"password": caldav_user.password}, context
    )
    meetings: dict[str, Interaction] = {
        raw.external_id: connector.translate(raw) async for raw in _fetch(connector)
    }
    messe = meetings["conference@firma.example"]
    assert messe.occurred_at.astimezone(BERLIN).timetuple()[:5] == (*before.timetuple()[:3], 0, 0)
    assert messe.ends_at is not None
    assert messe.ends_at.astimezone(BERLIN).date() == change + timedelta(days=1)
    days = sorted(
        m.occurred_at.astimezone(BERLIN) for key, m in meetings.items() if key.startswith("standup")
    )
    assert [d.date() for d in days] == [before + timedelta(days=n) for n in range(3)]
    assert {(d.hour, d.minute) for d in days} == {(0, 0)}, "midnight on both sides of the change"


async def test_calendars_are_selected_by_name_or_url(caldav_user: CalDavUser) -> None:
    user = caldav_user
    user.make_calendar("home", "Privat")
    user.put("work", "w.ics", _timed("w@ourco.example", SOON))
    user.put("home", "h.ics", _timed("h@ourco.example", SOON))
    secrets = {"password": user.password}
    by_name = CalDavConnector("cal", _settings(user, calendars="Privat"), secrets)
    assert [r.external_id async for r in _fetch(by_name)] == ["h@ourco.example"]
    one_url = CalDavConnector("cal", {**_settings(user), "url": user.calendar_url("work")}, secrets)
    assert [r.external_id async for r in _fetch(one_url)] == ["w@ourco.example"]
    wrong = CalDavConnector("cal", _settings(user, calendars="Urlaub"), secrets)
    with pytest.raises(ConfigurationError, match=r"no calendar 'Urlaub'.*found: Privat, Work"):
        await wrong.check()


async def test_private_events_are_never_fetched(caldav_user: CalDavUser) -> None:
    caldav_user.put("work", "p.ics", _timed("p@ourco.example", SOON, extra="CLASS:PRIVATE\r\n"))
    connector = CalDavConnector("cal", _settings(caldav_user), {"password": caldav_user.password})
    (raw,) = [r async for r in _fetch(connector)]
    assert (raw.private, raw.data) == ("iCalendar CLASS:PRIVATE", b"")


def test_the_sync_report_reads_what_calendar_multiget_reads(caldav_user: CalDavUser) -> None:
    """The changed members' data comes with the sync-collection REPORT, read by crmhub, not
    by the library: it must be the text (and ETag) the library's calendar-multiget gives."""
    user = caldav_user
    long = "Agenda: Angebot\\, Lieferung; Grüße aus Köln " * 6
    user.put("work", "a.ics", _timed("a@ourco.example", SOON, summary="Ä" * 40))
    user.put("work", "b.ics", _timed("b@ourco.example", SOON, extra=f"DESCRIPTION:{long}\r\n"))
    weekly = "RRULE:FREQ=WEEKLY;COUNT=3\r\nEXDATE:" + _stamp(SOON + timedelta(weeks=1)) + "\r\n"
    user.put("work", "s.ics", _timed("s@ourco.example", SOON, extra=weekly))
    connector = CalDavConnector("cal", _settings(user), {"password": user.password})
    (calendar,) = connector.calendars()
    first = list_changes(calendar, {}, date.today())
    assert set(first.data) == {"a.ics", "b.ics", "s.ics"}
    library = multiget(calendar, sorted(first.data))
    assert {n: (text, first.changed[n]) for n, text in first.data.items()} == library
    user.put("work", "a.ics", _timed("a@ourco.example", SOON, summary="verschoben"))
    user.delete("work", "b.ics")
    second = list_changes(calendar, first.state, date.today())
    assert (set(second.data), second.deleted) == ({"a.ics"}, {"b.ics"})
    assert second.data["a.ics"] == multiget(calendar, ["a.ics"])["a.ics"][0]
    assert list_changes(calendar, second.state, date.today()).changed == {}


def test_the_login_goes_first_only_where_it_cannot_leak(caldav_user: CalDavUser) -> None:
    """Basic credentials go with the first request over TLS or to this host (no 401 round
    trip, which Radicale delays by a second); to a plain-http host elsewhere only when the
    server asks for them. A server that refuses a Basic login is asked for its scheme."""
    secrets = {"password": "pw"}
    for url, first in (
        ("https://dav.ourco.example/", "basic"),
        ("http://127.0.0.1:5232/", "basic"),
        ("http://dav.ourco.example/", None),
    ):
        connector = CalDavConnector("cal", {"url": url, "username": "anna"}, secrets)
        assert connector.client().auth_type == first, url
    wrong = CalDavConnector(
        "cal", {"url": caldav_user.calendar_url("work"), "username": caldav_user.name}, secrets
    )
    with pytest.raises(ConnectorError, match=f"refused the login of {caldav_user.name}"):
        asyncio.run(wrong.check())
    assert wrong.client().auth_type is None, "asked again, letting the library negotiate"


def _cli(db: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("CRMHUB_")}
    full.update(
        CRMHUB_DATABASE_URL=f"sqlite:///{db}",
        CRMHUB_SECRET_KEY="caldav-test-secret-0123456789",
        **env,
    )
    return subprocess.run(
        [str(CRMHUB), *args], env=full, capture_output=True, text=True, timeout=120, check=False
    )


def test_connectors_test_lists_calendars_with_event_counts(
    caldav_user: CalDavUser, tmp_path: Path
) -> None:
    user = caldav_user
    user.make_calendar("home", "Home")
    user.put("work", "w1.ics", _timed("w1@ourco.example", SOON))
    user.put("work", "w2.ics", _timed("w2@ourco.example", SOON))
    db = tmp_path / "cli.db"
    for name, password in (("cal", user.password), ("wrongpw", "not-the-password")):
        sets = [arg for k, v in _settings(user).items() for arg in ("--set", f"{k}={v}")]
        added = _cli(
            db, "connectors", "add", "caldav", name, *sets, "--secret", "password=DAV_PW",
            DAV_PW=password,
        )  # fmt: skip
        assert added.returncode == 0, added.stderr
    good = _cli(db, "connectors", "test", "cal")
    assert good.returncode == 0, good.stderr
    assert "cal: calendar 'Work': 2 events" in good.stdout
    assert "cal: calendar 'Home': 0 events" in good.stdout
    bad = _cli(db, "connectors", "test", "wrongpw")
    message = (bad.stdout + bad.stderr).strip()
    assert bad.returncode != 0 and f"refused the login of {user.name}" in message, message
    assert "Traceback" not in message and "not-the-password" not in message


async def test_booking_writes_the_event_and_free_busy_shows_it(
    hub: Hub, caldav_user: CalDavUser
) -> None:
    user = caldav_user
    user.make_calendar("sales", "Vertrieb")
    await _add(hub, "cal", user, book_calendar="Vertrieb")
    start = SOON + timedelta(days=2)
    invitation = _timed("booked@ourco.example", start, summary="Folgetermin").replace(
        "VERSION:2.0\r\n", "VERSION:2.0\r\nMETHOD:REQUEST\r\n"
    )
    connector = CalDavConnector(
        "cal", _settings(user, book_calendar="Vertrieb"), {"password": user.password}
    )
    booked = await connector.book(invitation.encode(), user.name)
    assert booked == Booked("Vertrieb", "booked@ourco.example", invited_by_server=False)
    stored = user.get("sales", "booked@ourco.example.ics").decode()
    assert "SCHEDULE-AGENT=CLIENT" in stored and "METHOD" not in stored
    busy = await connector.free_busy(
        user.name, start - timedelta(hours=2), start + timedelta(hours=4)
    )
    assert busy == [(start, start + timedelta(hours=1))]
    first = await _sync(hub)
    assert first.new == 1 and (await _meeting(hub, "booked@ourco.example")).subject == "Folgetermin"
