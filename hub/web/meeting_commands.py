"""Booking a meeting for the API and the pages' form alike (hub.booking does the work).

One reading of the request and one mapping of failures to statuses, so that `POST /api/meetings`
and the "Book a follow-up" form accept the same fields and fail with the same messages.
Who is invited is read from the directory, which every role may read; a contact of another
account than the one named is refused, never guessed.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from starlette.requests import Request

from connectors.base import ConfigurationError, ConnectorError
from hub.booking import (
    BookingError,
    BookingOutcome,
    NoOwnCalendar,
    SlotTaken,
    book_meeting,
)
from hub.invitation import Booking
from hub.sending import NoOwnMailConnector
from hub.web.html import page_zone
from hub.web.http import ApiError, hub_of, optional_id, text_field, viewer_of
from hub.web.reads import account_or_404, contact_or_404
from matching.identities import normalize_email
from storage import queries

CODE = "bad_meeting"
DEFAULT_MINUTES = 30
MIN_MINUTES, MAX_MINUTES = 5, 480
MAX_SUBJECT, MAX_NOTE = 300, 5000
TRUE = {True, "1", "on", "true", "yes"}


def start_of(values: dict[str, Any], zone: ZoneInfo) -> datetime:
    """`start` as an aware time; one without an offset (a form's datetime-local) is read in
    the caller's zone."""
    raw = text_field(values, "start", limit=60, code=CODE)
    if not raw:
        raise ApiError(422, CODE, "start: say when the meeting starts (like 2026-03-03T10:00)")
    try:
        start = datetime.fromisoformat(raw)
    except ValueError as e:
        raise ApiError(422, CODE, f"start: {raw!r} is not a date and time") from e
    return start if start.tzinfo else start.replace(tzinfo=zone)


def minutes_of(values: dict[str, Any]) -> int:
    raw = values.get("duration", "")
    if raw in ("", None):
        return DEFAULT_MINUTES
    if isinstance(raw, str) and raw.strip().isdigit():
        raw = int(raw)
    if not isinstance(raw, int) or isinstance(raw, bool) or not MIN_MINUTES <= raw <= MAX_MINUTES:
        raise ApiError(
            422, CODE, f"duration: minutes from {MIN_MINUTES} to {MAX_MINUTES} (default 30)"
        )
    return raw


async def attendee_of(request: Request, values: dict[str, Any]) -> tuple[str, str]:
    """(address, name) of the customer to invite: an address of the contact named, or, with
    an account alone, an address of one of its contacts."""
    contact_id = optional_id(values, "contact_id", code=CODE)
    account_id = optional_id(values, "account_id", code=CODE)
    wanted = text_field(values, "attendee", limit=320, code=CODE)
    async with hub_of(request).reads() as session:
        if contact_id is not None:
            person = await contact_or_404(session, contact_id)
            if account_id is not None and person.account_id != account_id:
                raise ApiError(
                    422, CODE, f"contact_id: {person.name} is not of account {account_id}"
                )
            people = [person]
        elif account_id is not None:
            await account_or_404(session, account_id)
            people = await queries.contacts_of(session, account_id)
            if not wanted:
                raise ApiError(422, CODE, "attendee: name which contact's address to invite")
        else:
            raise ApiError(422, CODE, "contact_id: name the customer (contact_id or account_id)")
    for person in people:
        for address in person.emails:
            if not wanted or normalize_email(address) == normalize_email(wanted):
                return address, person.name
    if not wanted:
        raise ApiError(422, CODE, f"contact_id: {people[0].name} has no mail address to invite")
    raise ApiError(422, CODE, f"attendee: {wanted!r} is no address of this customer's contacts")


async def book(request: Request, values: dict[str, Any]) -> BookingOutcome:
    """Book for the signed-in user; failures become ApiError with a status that says whose."""
    zone = page_zone(request)
    start = start_of(values, zone)
    end = start + timedelta(minutes=minutes_of(values))
    subject = " ".join(text_field(values, "subject", limit=MAX_SUBJECT, code=CODE).split())
    if not subject:
        raise ApiError(422, CODE, "subject: must not be empty")
    note = text_field(values, "note", limit=MAX_NOTE, code=CODE)
    names = {
        k: text_field(values, k, limit=100, code=CODE) or None
        for k in ("calendar_connector", "mail_connector")
    }
    address, name = await attendee_of(request, values)
    viewer = viewer_of(request)
    booking = Booking(viewer.email, "", address, name, start, end, subject, note)
    try:
        return await book_meeting(
            hub_of(request),
            viewer,
            booking,
            zone,
            confirm=values.get("confirm", False) in TRUE,
            calendar=names["calendar_connector"],
            mail=names["mail_connector"],
        )
    except BookingError as e:
        raise ApiError(422, CODE, str(e)) from e
    except SlotTaken as e:
        raise ApiError(409, "slot_taken", str(e)) from e
    except NoOwnCalendar as e:
        raise ApiError(403, "no_calendar_connector", str(e)) from e
    except NoOwnMailConnector as e:
        raise ApiError(403, "no_mail_connector", str(e)) from e
    except ConfigurationError as e:
        raise ApiError(503, "booking_not_configured", str(e)) from e
    except ConnectorError as e:
        raise ApiError(502, "calendar_refused", f"your calendar refused the meeting: {e}") from e
