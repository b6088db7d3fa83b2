"""The meeting a `CalendarWriter.book` receives, read once for kinds that write item fields.

CalDAV stores the iCalendar as it is; Exchange (EWS CreateItem) and Microsoft 365 (Graph POST
events) take fields instead, so both read the booked VCALENDAR here, the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import icalendar

from connectors.base import MalformedItem
from connectors.calendar import as_datetime


@dataclass(frozen=True)
class Appointment:
    """The one VEVENT of a booking, times in UTC."""

    uid: str
    subject: str
    body: str
    location: str
    start: datetime
    end: datetime
    attendees: list[tuple[str, str]]  # (address, name)


def appointment_of(event: bytes) -> Appointment:
    """The VEVENT of a VCALENDAR; MalformedItem unless there is exactly one, with UID and
    both times."""
    try:
        found = icalendar.Calendar.from_ical(event).walk("VEVENT")
    except ValueError as e:
        raise MalformedItem(f"the meeting to book is not iCalendar: {e}") from e
    if len(found) != 1 or not isinstance(found[0], icalendar.Event):
        raise MalformedItem("a booking holds exactly one VEVENT")
    vevent = found[0]
    if not str(vevent.get("UID", "")).strip():
        raise MalformedItem("a booking's VEVENT needs a UID")
    try:
        start, end = vevent.start, vevent.end
    except icalendar.IncompleteComponent as e:
        raise MalformedItem(f"a booking needs DTSTART and DTEND: {e}") from e
    listed = vevent.get("ATTENDEE") or []
    attendees = listed if isinstance(listed, list) else [listed]
    return Appointment(
        uid=str(vevent["UID"]),
        subject=str(vevent.get("SUMMARY", "")),
        body=str(vevent.get("DESCRIPTION", "")),
        location=str(vevent.get("LOCATION", "")),
        start=as_datetime(start, "UTC").astimezone(UTC),
        end=as_datetime(end, "UTC").astimezone(UTC),
        attendees=[
            (str(a).removeprefix("mailto:").removeprefix("MAILTO:"), str(a.params.get("CN", "")))
            for a in attendees
        ],
    )
