"""iMIP replies (RFC 6047, RFC 5546 3.2.3): an attendee's "accepted"/"declined" sent by mail.

A calendar client answers an invitation with a mail that carries a `text/calendar;
method=REPLY` part: one VEVENT with the meeting's UID (and RECURRENCE-ID for one occurrence of
a series), the SEQUENCE it answers, and the replying ATTENDEE with its PARTSTAT. The shared
mail translator hands that part here and keeps the facts in `extra["imip_reply"]`; the hub
applies them to the stored meeting (hub.meeting_replies) and does not log the mail as a
conversation with the customer.
"""

from __future__ import annotations

from typing import Any

import icalendar

from connectors.calendar import as_datetime, occurrence_id

EXTRA_KEY = "imip_reply"


def is_reply_part(content_type: str, method: str | None) -> bool:
    """A MIME part that announces an iMIP REPLY in its Content-Type (RFC 6047 2.4 makes the
    `method` parameter mandatory for iMIP)."""
    return content_type == "text/calendar" and (method or "").strip().upper() == "REPLY"


def reply_facts(data: bytes, tz: str) -> dict[str, Any] | None:
    """The reply's UID, occurrence id (None for a whole series), SEQUENCE and answers by
    attendee address, or None when the part is not a readable REPLY (the mail is then logged
    as any other)."""
    try:
        calendar = icalendar.Calendar.from_ical(data)
    except ValueError:
        return None
    if str(calendar.get("METHOD", "")).strip().upper() != "REPLY":
        return None
    for event in calendar.walk("VEVENT"):
        uid = str(event.get("UID", "")).strip()
        if not uid:
            return None
        try:
            rid = event.get("RECURRENCE-ID")
            recurrence = None if rid is None else as_datetime(rid.dt, tz)
            sequence = int(str(event.get("SEQUENCE", 0)).strip() or 0)
        except (ValueError, AttributeError):
            return None
        attendees = event.get("ATTENDEE") or []
        answers: dict[str, str] = {}
        for attendee in attendees if isinstance(attendees, list) else [attendees]:
            address = str(attendee).strip()
            address = address[7:] if address.lower().startswith("mailto:") else address
            answer = str(attendee.params.get("PARTSTAT", "")).strip().lower()
            if address and answer:
                answers[address.lower()] = answer
        if not answers:
            return None
        return {
            "uid": uid,
            # One occurrence of a series, or None: the reply answers every occurrence of `uid`.
            "occurrence": None if recurrence is None else occurrence_id(uid, recurrence),
            "sequence": sequence,
            "answers": answers,
        }
    return None
