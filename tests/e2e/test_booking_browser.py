"""Booking a follow-up from a contact's page in a real Chromium, against a real Radicale.

A sales person opens the contact, checks their busy times, books an hour that collides (and is
told so), confirms, and the customer's invitation arrives at the test SMTP server carrying the
UID of the meeting the page then links to.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import icalendar
import pytest
from aiosmtpd.controller import Controller
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select

from hub.admin import add_connector, import_directory
from hub.bootstrap import build_hub
from storage.tables import ContactRow, InteractionRow
from storage.users import add_user
from tests.e2e.conftest import DATA, PASSWORD, Server, _settings
from tests.e2e.test_browser import log_in
from tests.mailserver import RecordingMailserver, start_mailserver
from tests.radicale import CalDavUser, caldav_user, radicale  # noqa: F401

pytestmark = pytest.mark.browser
ANNA = "anna@ourco.example"
JANA = "j.ohlsen@elbe-logistik.de"  # Jana Ohlsen of tests/data/directory.csv
BERLIN = ZoneInfo("Europe/Berlin")


@pytest.fixture
def smtp() -> Iterator[tuple[Controller, RecordingMailserver]]:
    recorder = RecordingMailserver()
    controller = start_mailserver(recorder)
    yield controller, recorder
    controller.stop()


async def _seed(database_url: str, user: CalDavUser, smtp_port: int, busy: datetime) -> int:
    hub = build_hub(_settings(database_url), migrate=True)
    try:
        await import_directory(hub, DATA / "directory.csv")
        async with hub.sessions() as session, session.begin():
            await add_user(session, ANNA, "sales", PASSWORD)
        await add_connector(
            hub,
            "caldav",
            "anna-cal",
            {"url": user.home, "username": user.name, "owner": ANNA},
            {"password": user.password},
        )
        await add_connector(
            hub, "smtp", "anna-send", {"host": "127.0.0.1", "port": str(smtp_port),
                                       "tls": "none", "owner": ANNA}, {},
        )  # fmt: skip
        async with hub.sessions() as session:
            found = await session.execute(
                select(ContactRow.id).where(ContactRow.name == "Jana Ohlsen")
            )
            jana = int(found.scalar_one())
    finally:
        await hub.close()
    stamp = busy.astimezone(ZoneInfo("UTC")).strftime("%Y%m%dT%H%M%SZ")
    until = (busy + timedelta(hours=1)).astimezone(ZoneInfo("UTC")).strftime("%Y%m%dT%H%M%SZ")
    user.put("work", "jour-fixe.ics", (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//tests//EN\r\nBEGIN:VEVENT\r\n"
        f"UID:jour-fixe@ourco.example\r\nDTSTAMP:{stamp}\r\nDTSTART:{stamp}\r\nDTEND:{until}\r\n"
        "SUMMARY:Jour fixe\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    ))  # fmt: skip
    return jana


async def _meeting_uid(database_url: str, interaction_id: int) -> str:
    hub = build_hub(_settings(database_url))
    try:
        async with hub.sessions() as session:
            row = await session.get(InteractionRow, interaction_id)
            assert row is not None and row.channel == "meeting"
            return row.dedupe_key.removeprefix("ics:")
    finally:
        await hub.close()


def _in_thread(work: object) -> object:
    """Run a coroutine outside Playwright's event loop (its sync API keeps one in this thread)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, work).result()  # type: ignore[arg-type]


def test_book_a_follow_up_from_a_contact_page(
    browser: Browser,
    database_url: str,
    tmp_path: Path,
    serve: object,
    caldav_user: CalDavUser,  # noqa: F811
    smtp: tuple[Controller, RecordingMailserver],
) -> None:
    controller, recorder = smtp
    day = (datetime.now(BERLIN) + timedelta(days=3)).date()
    start = datetime(day.year, day.month, day.day, 10, 0, tzinfo=BERLIN)
    jana = _in_thread(_seed(database_url, caldav_user, controller.port, start))
    server: Server = serve(database_url, tmp_path)  # type: ignore[operator]
    context = browser.new_context(base_url=server.url)
    context.set_default_timeout(15_000)
    page: Page = context.new_page()
    try:
        log_in(page, ANNA, PASSWORD, f"/contacts/{jana}")
        expect(page.get_by_role("heading", name="Jana Ohlsen")).to_be_visible()
        page.get_by_text("Book a follow-up").click()
        page.get_by_role("link", name="See my busy times first").click()
        busy = page.locator("#busy-times li")
        expect(busy).to_have_count(1)
        expect(busy.first).to_contain_text(f"{day:%Y-%m-%d} 10:00")

        page.get_by_label("Start").fill(f"{day:%Y-%m-%d}T10:30")
        page.get_by_label("Length").select_option("60")
        page.get_by_label("Subject").fill("Folgetermin Lager Nord")
        page.get_by_role("button", name=re.compile("Book and invite")).click()
        expect(page.get_by_role("alert")).to_contain_text("your calendar is busy then")
        assert recorder.received == []

        page.get_by_label("Book anyway").check()
        page.get_by_role("button", name=re.compile("Book and invite")).click()
        expect(page.get_by_role("heading", name="Booked", exact=True)).to_be_visible()
        expect(page.get_by_text(f"Invitation sent to {JANA}")).to_be_visible()
        href = page.get_by_role("link", name="Open the logged meeting").get_attribute("href")
        assert href is not None
    finally:
        context.close()

    (_, rcpts, content) = recorder.received[-1]
    assert rcpts == [JANA]
    message = email.message_from_bytes(content, policy=email.policy.default)
    (part,) = [p for p in message.walk() if p.get_content_type() == "text/calendar"]
    assert part.get_param("method") == "REQUEST"
    (event,) = icalendar.Calendar.from_ical(part.get_content()).walk("VEVENT")
    assert event["DTSTART"].dt == start + timedelta(minutes=30)
    assert event["DTEND"].dt == start + timedelta(minutes=90)
    assert str(event["ATTENDEE"]) == f"mailto:{JANA}"
    uid = _in_thread(_meeting_uid(database_url, int(href.rsplit("/", 1)[1])))
    assert str(event["UID"]) == uid
