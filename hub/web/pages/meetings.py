"""The "Book a follow-up" form: the booking page with the user's busy times, and its POST.

The form itself sits on account and contact pages (templates/_booking.html); these handlers
book exactly as `POST /api/meetings` does (hub.web.meeting_commands). The busy times shown are
the signed-in user's own, from their own calendar connector: nobody sees another's calendar.
A slot that collides comes back with the busy times and a "book anyway" box; whatever fails,
what was typed comes back in the form.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from connectors.base import ConfigurationError, ConnectorError
from hub.booking import BookingError, busy_times
from hub.policy import Permission
from hub.sending import own_mail_connectors
from hub.web.endpoints import Endpoint
from hub.web.html import render, safe_next
from hub.web.http import ApiError, hub_of, optional_id, viewer_of
from hub.web.meeting_commands import CODE, book
from hub.web.reads import account_or_404, contact_or_404
from hub.web.views import ContactView, contact_view
from storage import queries

BUSY_DAYS = 7  # how far ahead the booking page shows the user's busy times
FIELDS = ("contact_id", "account_id", "start", "duration", "subject", "note", "back")


async def _people(
    contact_id: int | None, account_id: int | None, request: Request
) -> list[ContactView]:
    """Whom the form offers: the account's contacts (the contact's account's, given a contact),
    or the contact alone."""
    async with hub_of(request).reads() as session:
        if contact_id is not None:
            person = await contact_or_404(session, contact_id)
            account_id = account_id or person.account_id
            if account_id is None:
                return [contact_view(person)]
        if account_id is None:
            raise ApiError(422, CODE, "Open the booking from an account's or a contact's page.")
        await account_or_404(session, account_id)
        return [contact_view(c) for c in await queries.contacts_of(session, account_id)]


async def _busy(request: Request) -> tuple[list[tuple[datetime, datetime]] | None, str]:
    """The user's busy times of the next days, or None and why they cannot be shown."""
    start = datetime.now(UTC)
    try:
        _, busy = await busy_times(
            hub_of(request), viewer_of(request), start, start + timedelta(days=BUSY_DAYS)
        )
    except (BookingError, ConfigurationError, ConnectorError) as e:
        return None, f"Your busy times cannot be shown: {e}"
    if busy is None:
        return None, "Your calendar does not tell its busy times; check it yourself."
    return busy, ""


async def _page(
    request: Request, values: dict[str, Any], status: int = 200, problem: str = ""
) -> Response:
    people = await _people(
        optional_id(values, "contact_id", code=CODE),
        optional_id(values, "account_id", code=CODE),
        request,
    )
    busy, note = await _busy(request)
    return render(
        request,
        "booking.html",
        status=status,
        problem=problem,
        outcome=None,
        back=safe_next(values.get("back") or "/"),
        booking_people=people,
        booking_values=values,
        booking_busy=busy,
        busy_note=note,
        busy_days=BUSY_DAYS,
        may_send=bool(await own_mail_connectors(hub_of(request), viewer_of(request))),
    )


async def new_meeting(request: Request) -> Response:
    """GET /meetings/new?contact_id=|account_id=: the form next to the user's busy times."""
    values = {k: request.query_params.get(k, "") for k in FIELDS}
    if not values["back"]:
        if values["contact_id"]:
            values["back"] = f"/contacts/{values['contact_id']}"
        elif values["account_id"]:
            values["back"] = f"/accounts/{values['account_id']}"
    return await _page(request, values)


async def book_form(request: Request) -> Response:
    """POST /meetings from the form: booked, or the form again with what went wrong."""
    form = await request.form()
    values: dict[str, Any] = {k: str(form.get(k, "")) for k in FIELDS}
    values["confirm"] = str(form.get("confirm", ""))
    try:
        outcome = await book(request, values)
    except ApiError as e:
        if e.status == 404:
            raise
        values["collided"] = e.status == 409
        return await _page(request, values, e.status, e.message)
    return render(request, "booking.html", outcome=outcome, back=safe_next(values["back"]))


ENDPOINTS = [
    Endpoint("/meetings/new", new_meeting, Permission.SEND),
    Endpoint("/meetings", book_form, Permission.SEND, ("POST",)),
]
