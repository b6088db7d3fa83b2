"""An account's meetings as an iCalendar document (RFC 5545), as one reader may see them.

Built from read models (hub.web.views.InteractionView), so a field the policy withheld from the
feed's reader is not there to leak: what a VEVENT carries follows the view's disclosure.
- Always: the time (an all-day meeting as its DATE), a stable UID, STATUS:CANCELLED for a
  cancelled meeting, and the link to the item's page (which asks the policy again).
- Subject shown: SUMMARY and LOCATION; otherwise SUMMARY is "Meeting (details not shown)".
- Body shown (full disclosure): DESCRIPTION (the meeting's text, as the snippet) and the
  ORGANIZER and ATTENDEEs with their answers. A calendar subscription is read by a client on
  some device, often shared further: who attended is kept to readers who may read the meeting.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime

import icalendar

from hub.web.views import InteractionView

PRODID = "-//crmhub//account meetings//EN"
WITHHELD = "Meeting (details not shown)"
PARTSTAT = {"accepted", "declined", "tentative", "needs-action", "delegated"}


def feed_document(name: str, items: Iterable[InteractionView], base_url: str) -> bytes:
    """The VCALENDAR of `items` (meetings), named `name` for the subscribing client."""
    calendar = icalendar.Calendar()
    calendar.add("PRODID", PRODID)
    calendar.add("VERSION", "2.0")
    calendar.add("CALSCALE", "GREGORIAN")
    calendar.add("X-WR-CALNAME", f"{name}: meetings")
    for item in items:
        calendar.add_component(_event(item, base_url))
    return calendar.to_ical()


def _event(item: InteractionView, base_url: str) -> icalendar.Event:
    event = icalendar.Event()
    event.add("UID", f"interaction-{item.id}@crmhub")
    event.add("DTSTAMP", datetime.now(UTC))
    if item.all_day:
        day = date.fromisoformat(item.all_day)
        event.add("DTSTART", day)
    else:
        event.add("DTSTART", item.occurred_at.astimezone(UTC))
        if item.ends_at:
            event.add("DTEND", item.ends_at.astimezone(UTC))
    event.add("STATUS", "CANCELLED" if item.cancelled else "CONFIRMED")
    event.add("SUMMARY", item.subject or ("(no subject)" if item.subject is not None else WITHHELD))
    if item.subject is not None and item.location:
        event.add("LOCATION", item.location)
    event.add("URL", f"{base_url.rstrip('/')}/interactions/{item.id}")
    if item.snippet is None:
        return event
    if item.snippet:
        event.add("DESCRIPTION", item.snippet)
    for p in item.participants:
        if p.kind != "email" or not p.address:
            continue
        params = {"CN": p.shown} if p.shown != p.address else {}
        if p.role == "organizer":
            event.add("ORGANIZER", f"mailto:{p.address}", parameters=params)
            continue
        if p.answer in PARTSTAT:
            params = {**params, "PARTSTAT": p.answer.upper()}
        event.add("ATTENDEE", f"mailto:{p.address}", parameters=params)
    return event
