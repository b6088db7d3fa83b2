"""/api/meetings: booking a follow-up meeting in the caller's own calendar (hub.booking)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from hub.policy import Permission
from hub.web.endpoints import Answer, Endpoint
from hub.web.http import JSONResponse, json_object
from hub.web.meeting_commands import book


async def meetings(request: Request) -> Response:
    """POST /api/meetings: JSON only, which also keeps other sites from posting with a cookie."""
    outcome = await book(request, await json_object(request))
    return JSONResponse(outcome.as_json(), status_code=201)


ENDPOINTS = [
    Endpoint(
        "/api/meetings",
        meetings,
        Permission.SEND,
        ("POST",),
        "book a meeting with a customer in the caller's own calendar (a caldav, exchange or m365 "
        "connector the caller owns), invite them with an iCalendar REQUEST through the caller's "
        "mail connector, and log it at once as upcoming",
        body="NewMeeting",
        ok=Answer(
            201,
            "booked and logged; `invited` lists who got the invitation, `invitation_error` says "
            "why nobody did",
            "BookedMeeting",
        ),
        errors={
            400: "the body is not a JSON object",
            404: "no such contact or account",
            409: "the caller's calendar is busy then; send confirm=true to book anyway",
            415: "not application/json",
            422: "a field is wrong, or the caller has no such connector; the message names it",
            403: "the caller owns no calendar or no mail connector",
            502: "the caller's calendar refused the meeting (nothing was booked)",
            503: "the caller's calendar or mail connector is not set up right",
        },
    ),
]
