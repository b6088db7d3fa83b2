"""Meetings through the shared calendar translator (connectors/calendar.py): one occurrence is
one dedupe key whichever calendar it is read from (ics, EWS, Graph), STATUS and SEQUENCE
reach storage, and an all-day event is a day, not a midnight, across a DST change."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import icalendar

from connectors.base import ConnectorContext
from connectors.calendar import (
    meeting_interaction,
    occurrence_key,
    occurrences,
    translate_event,
)
from connectors.ews import meeting_from_json
from connectors.m365_events import SERIES_UID
from connectors.m365_events import translate_event as graph_event
from hub.model import Disclosure, Interaction
from hub.policy import Viewer
from hub.web.html import TEMPLATES
from hub.web.views import ThreadRow, interaction_view
from storage.items import StoredAttribution, StoredInteraction, StoredSource

BERLIN = ConnectorContext(timezone="Europe/Berlin")
SERIES = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\n"
    "BEGIN:VEVENT\r\nUID:weekly@ourco.example\r\nDTSTAMP:20240101T000000Z\r\n"
    "DTSTART;TZID=Europe/Berlin:20240321T100000\r\nDTEND;TZID=Europe/Berlin:20240321T110000\r\n"
    "RRULE:FREQ=WEEKLY;COUNT=3\r\nSUMMARY:Jour fixe\r\nSEQUENCE:4\r\nSTATUS:CONFIRMED\r\n"
    "ATTENDEE;PARTSTAT=ACCEPTED:mailto:j.ohlsen@elbe-logistik.de\r\nEND:VEVENT\r\n"
    "BEGIN:VEVENT\r\nUID:fair@ourco.example\r\nDTSTAMP:20240101T000000Z\r\n"
    "DTSTART;VALUE=DATE:20240330\r\nDTEND;VALUE=DATE:20240331\r\nRRULE:FREQ=DAILY;COUNT=3\r\n"
    "SUMMARY:Messe\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
)


def _translated(text: str, now: datetime) -> dict[str, Interaction]:
    calendar = icalendar.Calendar.from_ical(text)
    found = {}
    for event in occurrences(calendar, 60, now):
        key = occurrence_key(event, BERLIN.timezone)
        found[key] = translate_event(BERLIN, event.to_ical(), key)
    return found


def test_one_occurrence_is_one_key_from_ics_ews_and_graph() -> None:
    now = datetime(2024, 3, 25, tzinfo=UTC)
    from_ics = _translated(SERIES, now)
    second = "weekly@ourco.example|20240328T090000Z"  # Thursday 10:00 Berlin, after the change
    ics_key = from_ics[second].dedupe_key
    ews_raw = {
        "occurrence": second,
        "uid": "weekly@ourco.example",
        "start": "2024-03-28T08:00:00+00:00",
        "end": "2024-03-28T09:00:00+00:00",
        "subject": "Jour fixe",
        "attendees": [{"address": "j.ohlsen@elbe-logistik.de", "name": "", "answer": "accepted"}],
    }
    ews_key = meeting_interaction(meeting_from_json(json.dumps(ews_raw).encode())).dedupe_key
    graph_raw = {
        SERIES_UID: "weekly@ourco.example",
        "type": "occurrence",
        "originalStart": "2024-03-28T09:00:00Z",
        "start": {"dateTime": "2024-03-28T08:00:00.0000000", "timeZone": "UTC"},
        "subject": "Jour fixe",
    }
    graph_key = graph_event(json.dumps(graph_raw).encode()).dedupe_key
    assert ics_key == ews_key == graph_key == f"ics:{second}"


def test_status_and_sequence_reach_extra() -> None:
    found = _translated(SERIES, datetime(2024, 3, 25, tzinfo=UTC))
    meeting = found["weekly@ourco.example|20240321T090000Z"]
    assert meeting.extra["status"] == "confirmed"
    assert meeting.extra["sequence"] == 4


def _shown(extra: dict[str, Any], at: datetime, zone: str) -> str:
    """The "when" cell of a customer's meeting on the timeline, rendered for a reader in `zone`."""
    stored = StoredInteraction(
        1, "meeting", "inbound", at, None, None, "Messe", "", None, None, "", extra,
        participants=(),
        attributions=(StoredAttribution(1, None, "contact-email", 1.0, False, "", False),),
        sources=(StoredSource("team", "x", "", "full"),),
        attachments=(),
    )  # fmt: skip
    view = interaction_view(Viewer.of("sam@ourco.example", "sales"), stored)
    assert view is not None and view.disclosure is Disclosure.FULL
    html = TEMPLATES.get_template("_timeline.html").render(
        rows=[ThreadRow(view)], filters={"until": ""}, counts={}, total=None, newer=None,
        next_cursor=None, zone=ZoneInfo(zone),
    )  # fmt: skip
    cell = re.search(r'<td class="muted when">(.*?)</td>', html, re.S)
    assert cell is not None, html
    return " ".join(re.sub(r"<[^>]+>", " ", cell.group(1)).split())


def test_an_all_day_event_is_its_day_across_the_dst_change_in_any_zone() -> None:
    found = _translated(SERIES, datetime(2024, 3, 25, tzinfo=UTC))
    days = [found[k] for k in sorted(found) if k.startswith("fair@")]
    # The night of 30 to 31 March clocks go forward in Berlin: each day is still its day.
    assert [d.extra["all_day"] for d in days] == ["2024-03-30", "2024-03-31", "2024-04-01"]
    berlin = ZoneInfo("Europe/Berlin")
    assert [d.occurred_at for d in days] == [
        datetime(2024, 3, 30, tzinfo=berlin),
        datetime(2024, 3, 31, tzinfo=berlin),
        datetime(2024, 4, 1, tzinfo=berlin),
    ]
    for meeting in days:
        day = meeting.extra["all_day"]
        assert _shown(meeting.extra, meeting.occurred_at, "America/New_York") == f"{day} all day"
        assert _shown(meeting.extra, meeting.occurred_at, "Asia/Tokyo") == f"{day} all day"
        # Shown as a time instead, midnight in Berlin is the evening before in New York.
        as_time = _shown({}, meeting.occurred_at, "America/New_York")
        assert as_time.startswith((date.fromisoformat(day) - timedelta(days=1)).isoformat())


def test_exchange_and_graph_report_cancelled_and_all_day_meetings_as_ics_does() -> None:
    """Outlook marks a cancelled occurrence and an all-day event in item fields (IsCancelled,
    IsAllDayEvent; isCancelled, isAllDay), not in iCalendar: they must reach the same extra."""
    ews = meeting_interaction(
        meeting_from_json(
            json.dumps(
                {
                    "occurrence": "fair@ourco.example",
                    "uid": "fair@ourco.example",
                    "start": "2024-03-29T23:00:00+00:00",
                    "end": "2024-03-30T23:00:00+00:00",
                    "attendees": [],
                    "organizer": None,
                    "cancelled": True,
                    "all_day": "2024-03-30",
                }
            ).encode()
        )
    )
    graph = graph_event(
        json.dumps(
            {
                "iCalUId": "fair@ourco.example",
                "start": {"dateTime": "2024-03-30T00:00:00.0000000", "timeZone": "Europe/Berlin"},
                "end": {"dateTime": "2024-03-31T00:00:00.0000000", "timeZone": "Europe/Berlin"},
                "isAllDay": True,
                "isCancelled": True,
                "subject": "Messe",
            }
        ).encode()
    )
    for meeting in (ews, graph):
        assert meeting.extra["status"] == "cancelled"
        assert meeting.extra["all_day"] == "2024-03-30"
