"""Graph calendar events (the JSON of a calendarView delta) -> the shared calendar translator.

Graph gives every occurrence of a series an `iCalUId` of its own, while an iCalendar file or
CalDAV names the occurrence by the series' UID plus RECURRENCE-ID. So the fetcher stores the
series master's `iCalUId` in the event's JSON (`SERIES_UID`), and the occurrence's original
start (`originalStart`) plays RECURRENCE-ID: the same meeting from an .ics file, CalDAV,
Exchange or Graph gets the same dedupe key and is stored once.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from connectors.base import MalformedItem
from connectors.calendar import Attendee, Meeting, meeting_interaction, occurrence_id
from hub.model import Interaction

SERIES_UID = "crmhubSeriesICalUId"  # added by the fetcher: the series master's iCalUId
PRIVATE = ("private", "personal")
# Graph's attendee answers as iCalendar PARTSTAT values (lower-case), as calendar.py keeps them.
ANSWERS = {
    "accepted": "accepted",
    "declined": "declined",
    "tentativelyaccepted": "tentative",
    "notresponded": "needs-action",
    "none": "",
    "organizer": "accepted",
}
_FRACTION = re.compile(r"(\.\d{1,6})\d*")


def parse_time(value: Any, zone: str = "UTC") -> datetime:
    """A Graph dateTimeTimeZone (`{"dateTime": ..., "timeZone": ...}`) or a DateTimeOffset
    string as an aware datetime; Graph writes seven fractional digits, Python reads six."""
    if isinstance(value, dict):
        zone = str(value.get("timeZone") or zone)
        value = value.get("dateTime")
    if not isinstance(value, str) or not value:
        raise MalformedItem(f"event time {value!r} is not a date-time")
    text = _FRACTION.sub(lambda m: m.group(1), value.strip()).replace("Z", "+00:00")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as e:
        raise MalformedItem(f"event time {value!r} is not a date-time") from e
    if parsed.tzinfo is None:
        try:
            parsed = parsed.replace(tzinfo=ZoneInfo(zone) if zone != "UTC" else UTC)
        except (ZoneInfoNotFoundError, ValueError):
            parsed = parsed.replace(tzinfo=UTC)  # a Windows zone name: crmhub asks for UTC
    return parsed


def private_reason(event: dict[str, Any], markers: frozenset[str]) -> str:
    """Why an Outlook item is never stored, or "": Private/Personal sensitivity, or a category
    that `private_marker` names (any case)."""
    sensitivity = str(event.get("sensitivity") or "").lower()
    if sensitivity in PRIVATE:
        return f"Outlook sensitivity {sensitivity.capitalize()}"
    for category in event.get("categories") or []:
        if str(category).strip().casefold() in markers:
            return f"Outlook category {category!r} (private_marker)"
    return ""


def _attendee(entry: Any, answer: str = "") -> Attendee:
    email = (entry or {}).get("emailAddress") or {}
    return Attendee(str(email.get("address") or ""), str(email.get("name") or ""), answer)


def translate_event(data: bytes) -> Interaction:
    """One event's JSON (as the fetcher stored it) -> the meeting Interaction."""
    try:
        event = json.loads(data)
    except ValueError as e:
        raise MalformedItem(f"event is not JSON: {e}") from e
    if not isinstance(event, dict) or "start" not in event:
        raise MalformedItem("event without start")
    uid = str(event.get(SERIES_UID) or event.get("iCalUId") or event.get("id") or "")
    if not uid:
        raise MalformedItem("event without iCalUId or id")
    recurrence = None
    if event.get("type") in ("occurrence", "exception"):
        original = event.get("originalStart")
        recurrence = parse_time(original) if original else parse_time(event["start"])
    attendees = [
        _attendee(
            a, ANSWERS.get(str(((a or {}).get("status") or {}).get("response", "")).lower(), "")
        )
        for a in event.get("attendees") or []
    ]
    organizer = _attendee(event.get("organizer")) if event.get("organizer") else None
    location = (event.get("location") or {}).get("displayName") or ""
    return meeting_interaction(
        Meeting(
            occurrence=occurrence_id(uid, recurrence),
            uid=uid,
            start=parse_time(event["start"]),
            end=parse_time(event["end"]) if event.get("end") else None,
            subject=str(event.get("subject") or ""),
            description=str(event.get("bodyPreview") or ""),
            location=str(location),
            organizer=organizer,
            attendees=attendees,
            status="cancelled" if event.get("isCancelled") else "",
            all_day=_day(event["start"]) if event.get("isAllDay") else None,
        )
    )


def _day(value: Any) -> date | None:
    """The day of an all-day event as Graph writes it: the date of its start in the event's
    own zone (midnight there), not converted to UTC."""
    text = str(value.get("dateTime") if isinstance(value, dict) else value or "")
    try:
        return date.fromisoformat(text[:10])
    except ValueError:
        return None
