"""Calls and meetings read as people talk about them: a call by the names of its parties, its
length once; a meeting with start and end, place, attendees and their answers, and each
customer once however many of its people attend. SQLite, or PostgreSQL in CI."""

from __future__ import annotations

import re
from pathlib import Path

from sqlalchemy import select

from hub.admin import add_connector, import_directory
from hub.bootstrap import Hub
from hub.pipeline import sync_all
from storage.tables import InteractionRow
from tests.integration.conftest import logged_in

DATA = Path(__file__).parent.parent / "data"
CDR = (
    # A known customer (Jana Ohlsen, 040 3344556) calls extension 201: 2 minutes 5 seconds.
    '"","040 3344556","201","from-trunk","""Jana"" <040 3344556>","PJSIP/t-1","PJSIP/201-1",'
    '"Dial","PJSIP/201,30","2024-01-09 14:00:00","2024-01-09 14:00:05","2024-01-09 14:02:10",'
    '130,125,"ANSWERED","DOCUMENTATION","1704808800.1",""\n'
    # A withheld number calls the switchboard.
    '"","anonymous","200","from-trunk","""Anonymous"" <anonymous>","PJSIP/t-2","PJSIP/200-1",'
    '"Dial","PJSIP/200,30","2024-01-10 09:00:00","2024-01-10 09:00:02","2024-01-10 09:01:02",'
    '62,60,"ANSWERED","DOCUMENTATION","1704877200.2",""\n'
)
ICS = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//test//EN
BEGIN:VEVENT
UID:meeting-1@ourco.example
DTSTAMP:20240101T000000Z
DTSTART:20240111T090000Z
DTEND:20240111T103000Z
SUMMARY:Jahresgespräch Elbe Logistik
LOCATION:Hamburg, Speicherstadt 5
ORGANIZER;CN=Anna:mailto:anna@ourco.example
ATTENDEE;CN=Jana Ohlsen;PARTSTAT=ACCEPTED:mailto:j.ohlsen@elbe-logistik.de
ATTENDEE;CN=Piet Brandt;PARTSTAT=DECLINED:mailto:piet.brandt@gmail.com
END:VEVENT
END:VCALENDAR
"""


async def _load(hub: Hub, tmp_path: Path) -> dict[str, int]:
    await import_directory(hub, DATA / "directory.csv")
    (tmp_path / "Master.csv").write_text(CDR, encoding="utf-8")
    (tmp_path / "team.ics").write_text(ICS, encoding="utf-8")
    await add_connector(hub, "asterisk-cdr", "pbx", {"path": str(tmp_path / "Master.csv")}, {})
    await add_connector(hub, "ics", "team", {"path": str(tmp_path / "team.ics")}, {})
    reports = await sync_all(hub)
    assert [(r.new, r.error) for r in reports] == [(2, ""), (1, "")]
    async with hub.sessions() as session:
        rows = await session.execute(
            select(InteractionRow.id, InteractionRow.channel, InteractionRow.occurred_at)
        )
        ids = {}
        for id_, channel, at in rows:
            ids[channel if channel == "meeting" else f"call-{at.day}"] = id_
    return ids


def _text(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


async def test_a_call_shows_the_contact_by_name_and_its_length_once(
    hub: Hub, tmp_path: Path
) -> None:
    ids = await _load(hub, tmp_path)
    async with logged_in(hub, "anna@ourco.example") as browser:
        call = _text((await browser.get(f"/interactions/{ids['call-9']}")).text)
        timeline = _text((await browser.get("/accounts/1?channel=call")).text)
    assert "Call from Jana Ohlsen to 201" in call
    assert call.count("2:05") == 1, call
    assert "125 s" not in call and "after 125" not in call
    assert "Call from Jana Ohlsen to 201 answered · 2:05" in timeline
    assert "040 3344556 →" not in timeline


async def test_a_withheld_caller_is_shown_as_withheld_and_not_as_internal(
    hub: Hub, tmp_path: Path
) -> None:
    ids = await _load(hub, tmp_path)
    async with logged_in(hub, "it@ourco.example", "admin") as browser:
        call = _text((await browser.get(f"/interactions/{ids['call-10']}")).text)
    assert "Call from withheld number to 200" in call
    assert "internal only" not in call


async def test_a_meeting_shows_its_time_span_place_answers_and_each_customer_once(
    hub: Hub, tmp_path: Path
) -> None:
    ids = await _load(hub, tmp_path)
    async with logged_in(hub, "anna@ourco.example") as browser:
        page = (await browser.get(f"/interactions/{ids['meeting']}")).text
    text = _text(page)
    assert "10:00–11:30 CET" in text, text  # Europe/Berlin in January
    assert "Hamburg, Speicherstadt 5" in text
    assert "Jana Ohlsen j.ohlsen@elbe-logistik.de accepted" in text
    assert "Piet Brandt piet.brandt@gmail.com declined" in text
    attributed = page.split('<ul class="attributions">', 1)[1].split("</ul>", 1)[0]
    assert attributed.count('href="/accounts/') == 1, attributed
    assert attributed.count("Not this customer") == 1
    assert "outbound" not in text.split("Attributed to")[0], "a meeting has no direction"


async def test_a_role_that_may_not_read_subjects_gets_no_place_either(
    hub: Hub, tmp_path: Path
) -> None:
    """The place of a meeting says as much as its subject: admins see neither."""
    ids = await _load(hub, tmp_path)
    async with logged_in(hub, "it@ourco.example", "admin") as browser:
        page = _text((await browser.get(f"/interactions/{ids['meeting']}")).text)
    assert "Speicherstadt" not in page and "Jahresgespräch" not in page
    assert "accepted" in page, "who came is metadata, which admins see"
