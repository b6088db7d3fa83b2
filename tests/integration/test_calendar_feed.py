"""The calendar export as a manager and a calendar client use it: a link made through the API,
read without login as iCalendar, showing what its maker may see; revoked, or its maker no
longer allowed, it is 404. SQLite, or PostgreSQL in CI."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import icalendar
from jsonschema import Draft202012Validator

from hub.admin import add_connector, import_directory
from hub.bootstrap import Hub
from hub.pipeline import sync_all
from hub.web.app import ENDPOINTS, build_app
from hub.web.openapi import build
from storage.users import disable_user, set_role
from tests.integration.conftest import logged_in

DATA = Path(__file__).parent.parent / "data"
ICS = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n"
    "BEGIN:VEVENT\r\nUID:feed-1@ourco.example\r\nDTSTAMP:20240101T000000Z\r\n"
    "DTSTART:{start}T090000Z\r\nDTEND:{start}T100000Z\r\nSUMMARY:Jahresgespräch\r\n"
    "DESCRIPTION:Preise 2025\r\nLOCATION:Hamburg\r\nSTATUS:CANCELLED\r\n"
    "ORGANIZER;CN=Anna:mailto:anna@ourco.example\r\n"
    "ATTENDEE;PARTSTAT=ACCEPTED:mailto:j.ohlsen@elbe-logistik.de\r\nEND:VEVENT\r\n"
    "BEGIN:VEVENT\r\nUID:feed-2@ourco.example\r\nDTSTAMP:20240101T000000Z\r\n"
    "DTSTART;VALUE=DATE:{day}\r\nSUMMARY:Messe\r\n"
    "ATTENDEE:mailto:j.ohlsen@elbe-logistik.de\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
)


def _events(body: bytes) -> dict[str, icalendar.Component]:
    calendar = icalendar.Calendar.from_ical(body)
    return {str(e["UID"]): e for e in calendar.walk("VEVENT")}


async def test_a_manager_subscribes_to_an_accounts_meetings(hub: Hub, tmp_path: Path) -> None:
    soon = datetime.now(UTC) + timedelta(days=10)
    await import_directory(hub, DATA / "directory.csv")
    text = ICS.format(start=soon.strftime("%Y%m%d"), day=soon.strftime("%Y%m%d"))
    (tmp_path / "team.ics").write_text(text, encoding="utf-8")
    await add_connector(hub, "ics", "team", {"path": str(tmp_path / "team.ics")}, {})
    assert [r.new for r in await sync_all(hub)] == [2]

    async with logged_in(hub, "boss@ourco.example", "manager") as manager:
        made = await manager.post("/api/accounts/1/calendar-feed", headers={"origin": "http://hub"})
        assert made.status_code == 201, made.text
        schema = build(ENDPOINTS)["components"]["schemas"]["CalendarFeedCreated"]
        Draft202012Validator(schema).validate(made.json())
        url = made.json()["url"]
        assert url.startswith("http://hub/calendars/") and url.endswith(".ics")

        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=build_app(hub)))
        async with client:
            answer = await client.get(url)  # a calendar client: no login
            assert answer.status_code == 200
            assert answer.headers["content-type"].startswith("text/calendar")
            full = _events(answer.content)
            assert len(full) == 2
            meeting = next(e for e in full.values() if str(e["SUMMARY"]) == "Jahresgespräch")
            assert str(meeting["STATUS"]) == "CANCELLED"
            assert str(meeting["LOCATION"]) == "Hamburg"
            assert str(meeting["DESCRIPTION"]) == "Preise 2025"
            assert "j.ohlsen@elbe-logistik.de" in str(meeting["ATTENDEE"])
            fair = next(e for e in full.values() if str(e["SUMMARY"]) == "Messe")
            assert fair["DTSTART"].dt == soon.date(), "an all-day meeting is a DATE"

            # The maker is now a call-center agent: subjects yes, text and attendees no.
            async with hub.sessions() as session, session.begin():
                await set_role(session, "boss@ourco.example", "callcenter", actor="test")
            narrowed = _events((await client.get(url)).content)
            meeting = next(e for e in narrowed.values() if "Jahres" in str(e["SUMMARY"]))
            assert "DESCRIPTION" not in meeting and "ATTENDEE" not in meeting
            assert "ORGANIZER" not in meeting

            async with hub.sessions() as session, session.begin():
                await set_role(session, "boss@ourco.example", "admin", actor="test")
            hidden = _events((await client.get(url)).content)
            assert {str(e["SUMMARY"]) for e in hidden.values()} == {"Meeting (details not shown)"}
            assert all("LOCATION" not in e for e in hidden.values())

            async with hub.sessions() as session, session.begin():
                await set_role(session, "boss@ourco.example", "manager", actor="test")
            revoked = await manager.delete(
                "/api/accounts/1/calendar-feed", headers={"origin": "http://hub"}
            )
            assert revoked.json() == {"account_id": 1, "revoked": 1}
            assert (await client.get(url)).status_code == 404

            again = await manager.post(
                "/api/accounts/1/calendar-feed", headers={"origin": "http://hub"}
            )
            second = again.json()["url"]
            assert second != url and (await client.get(second)).status_code == 200
            async with hub.sessions() as session, session.begin():
                await disable_user(session, "boss@ourco.example", actor="test")
            assert (await client.get(second)).status_code == 404, "the maker's right ended"


async def test_only_managers_reach_the_feed_page(hub: Hub) -> None:
    await import_directory(hub, DATA / "directory.csv")
    async with logged_in(hub, "boss@ourco.example", "manager") as manager:
        account = (await manager.get("/accounts/1")).text
        assert "/accounts/1/calendar-feed" in account
        page = await manager.get("/accounts/1/calendar-feed")
        assert "No link is live" in page.text
    async with logged_in(hub, "sam@ourco.example", "sales") as sales:
        assert "/calendar-feed" not in (await sales.get("/accounts/1")).text
        assert (await sales.get("/accounts/1/calendar-feed")).status_code == 403
