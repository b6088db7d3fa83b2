"""A booked meeting as iCalendar: the event for the organizer's calendar and the iMIP invitation.

Pure: no I/O. The event written into the organizer's calendar carries no METHOD (RFC 4791
4.1: a stored calendar object is not a scheduling message); the copy mailed to the customer is
`METHOD:REQUEST` (RFC 5546 3.2.2, sent as RFC 6047 iMIP: a text/calendar part with the same
method, next to a plain text part, plus the .ics as attachment for clients that show only
attachments). Both hold the same UID, so the customer's answer, a later sync of the calendar
and the meeting logged at booking are one meeting (`connectors.calendar`: `ics:` + UID). A
calendar that keeps a UID of its own (Microsoft 365) has the event logged under that one.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, formataddr, make_msgid
from zoneinfo import ZoneInfo

import icalendar

from matching.identities import email_domain

PRODID = "-//crmhub//booking//EN"
UID_PREFIX = "crmhub-"


@dataclass(frozen=True)
class Booking:
    """What the user asked for, checked: times aware, in the user's zone."""

    organizer: str  # the user's mailbox, as the calendar connector names it
    organizer_name: str
    attendee: str
    attendee_name: str
    start: datetime
    end: datetime
    subject: str
    note: str = ""


def new_uid(organizer: str) -> str:
    """A globally unique UID (RFC 5545 3.8.4.7: right-hand side a domain of ours)."""
    return f"{UID_PREFIX}{uuid.uuid4()}@{email_domain(organizer) or 'crmhub.invalid'}"


def _event(booking: Booking, uid: str, now: datetime) -> icalendar.Event:
    event = icalendar.Event()
    event.add("uid", uid)
    event.add("dtstamp", now.astimezone(UTC))
    event.add("dtstart", booking.start)
    event.add("dtend", booking.end)
    event.add("summary", booking.subject)
    if booking.note:
        event.add("description", booking.note)
    event.add("sequence", 0)
    event.add("status", "CONFIRMED")
    event.add("transp", "OPAQUE")
    organizer = icalendar.vCalAddress(f"mailto:{booking.organizer}")
    if booking.organizer_name:
        organizer.params["CN"] = booking.organizer_name
    event.add("organizer", organizer)
    attendee = icalendar.vCalAddress(f"mailto:{booking.attendee}")
    if booking.attendee_name:
        attendee.params["CN"] = booking.attendee_name
    attendee.params["ROLE"] = "REQ-PARTICIPANT"
    attendee.params["PARTSTAT"] = "NEEDS-ACTION"
    attendee.params["RSVP"] = "TRUE"
    event.add("attendee", attendee)
    return event


def calendar_of(booking: Booking, uid: str, now: datetime, method: str = "") -> bytes:
    """A VCALENDAR with the one VEVENT (and the VTIMEZONE its times need); with `method`, the
    scheduling message of that method."""
    calendar = icalendar.Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    if method:
        calendar.add("method", method)
    calendar.add_component(_event(booking, uid, now))
    calendar.add_missing_timezones()
    return bytes(calendar.to_ical())


def event_of(booking: Booking, uid: str, now: datetime) -> bytes:
    """The VEVENT alone, as the shared calendar translator reads one occurrence."""
    return bytes(_event(booking, uid, now).to_ical())


def invitation(booking: Booking, uid: str, now: datetime, zone: ZoneInfo) -> EmailMessage:
    """The iMIP REQUEST to the attendee, from the organizer."""
    request = calendar_of(booking, uid, now, method="REQUEST")
    when = booking.start.astimezone(zone)
    minutes = int((booking.end - booking.start) / timedelta(minutes=1))
    message = EmailMessage(policy=SMTP)
    message["From"] = formataddr((booking.organizer_name, booking.organizer))
    message["To"] = formataddr((booking.attendee_name, booking.attendee))
    message["Subject"] = f"Invitation: {booking.subject} ({when:%Y-%m-%d %H:%M} {when.tzname()})"
    message["Date"] = format_datetime(now.astimezone(UTC))
    message["Message-ID"] = make_msgid(domain=email_domain(booking.organizer) or None)
    text = [
        f"{booking.organizer_name or booking.organizer} invites you to:",
        "",
        booking.subject,
        f"{when:%A, %Y-%m-%d %H:%M} ({zone.key}), {minutes} minutes",
    ]
    if booking.note:
        text += ["", booking.note]
    text += ["", "Accept or decline in your calendar; the invitation is attached (invite.ics)."]
    message.set_content("\n".join(text) + "\n")
    message.add_alternative(
        request.decode(), subtype="calendar", params={"method": "REQUEST"}, cte="quoted-printable"
    )
    message.add_attachment(request, maintype="application", subtype="ics", filename="invite.ics")
    return message
