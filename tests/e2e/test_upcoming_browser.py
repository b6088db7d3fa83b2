"""Meetings on a customer's page in a real headless Chromium: what is ahead stands above the
timeline, next first, a cancelled meeting marked and struck through; the past follows, newest
first, and no meeting says "outbound" (Debian's Chromium; missing, the tests fail)."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from playwright.sync_api import Browser, expect

from tests.e2e.test_browser import log_in, timeline_rows
from tests.e2e.test_timeline_browser import DIRECTORY, PASSWORD, _browsing, _site, _user

if TYPE_CHECKING:
    from tests.e2e.conftest import Cli, Server

pytestmark = pytest.mark.browser


def _event(uid: str, at: datetime, summary: str, status: str = "CONFIRMED") -> str:
    return (
        f"BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20240101T000000Z\r\n"
        f"DTSTART:{at:%Y%m%dT%H%M%SZ}\r\nDTEND:{at + timedelta(hours=1):%Y%m%dT%H%M%SZ}\r\n"
        f"SUMMARY:{summary}\r\nSTATUS:{status}\r\n"
        "ORGANIZER:mailto:sales@ourco.example\r\n"
        "ATTENDEE;PARTSTAT=ACCEPTED:mailto:ole@weser-werft.example\r\nEND:VEVENT\r\n"
    )


@pytest.fixture
def meeting_site(crmhub: Cli, serve: Callable[[str, Path], Server], tmp_path: Path) -> Server:
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    events = [
        _event("later@x", now + timedelta(days=9), "Werftbesuch"),
        _event("next@x", now + timedelta(days=2), "Angebot besprechen"),
        _event("off@x", now + timedelta(days=5), "Abnahme", "CANCELLED"),
        _event("past@x", now - timedelta(days=3), "Kickoff"),
        _event("older@x", now - timedelta(days=30), "Erstgespräch"),
    ]
    ics = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\n" + "".join(events)
    files = {"directory.csv": DIRECTORY, "team.ics": ics + "END:VCALENDAR\r\n"}
    team = ("connectors", "add", "ics", "team", "--set", f"path={tmp_path / 'team.ics'}")
    return _site(crmhub, serve, tmp_path, files, team, ("sync",),
                 _user("sales@ourco.example", "sales"))  # fmt: skip


def test_upcoming_meetings_stand_above_the_past_and_a_cancelled_one_is_marked(
    browser: Browser, meeting_site: Server
) -> None:
    with _browsing(browser, meeting_site) as page:
        log_in(page, "sales@ourco.example", PASSWORD, "/accounts/1")
        expect(page.get_by_role("heading", name="Upcoming")).to_be_visible()
        ahead = page.locator("ol.upcoming li")
        expect(ahead).to_have_count(3)
        assert [a.locator("a").inner_text() for a in ahead.all()] == [
            "Angebot besprechen",
            "Abnahme",
            "Werftbesuch",
        ]
        cancelled = page.locator("ol.upcoming li[data-cancelled]")
        expect(cancelled).to_have_count(1)
        expect(cancelled.locator(".chip.cancelled")).to_have_text("cancelled")
        expect(cancelled.locator("s a")).to_have_text("Abnahme")
        assert timeline_rows(page) == [("meeting", "Kickoff"), ("meeting", "Erstgespräch")]
        expect(page.locator("table.timeline")).not_to_contain_text("outbound")

        cancelled.locator("a").click()
        expect(page.get_by_role("status")).to_contain_text("cancelled this meeting")
        expect(page.locator("p.muted").filter(has_text=re.compile("meeting"))).not_to_contain_text(
            "outbound"
        )
