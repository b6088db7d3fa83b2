"""/api/messages: sending a mail as the caller, through a mail connector the caller owns."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from hub.policy import Permission
from hub.web.commands import send
from hub.web.endpoints import Answer, Endpoint
from hub.web.http import JSONResponse, json_object


async def messages(request: Request) -> Response:
    """POST /api/messages: JSON only, which also keeps other sites from posting with a cookie."""
    outcome = await send(request, await json_object(request))
    return JSONResponse(outcome.as_json(), status_code=201)


ENDPOINTS = [
    Endpoint(
        "/api/messages",
        messages,
        Permission.SEND,
        ("POST",),
        "send a mail to customers as the caller, through a mail connector (smtp, exchange, m365) "
        "the caller owns; logged at once, filed in Sent",
        body="OutgoingMessage",
        ok=Answer(
            201,
            "sent to `accepted`; `refused` maps each refused recipient to the server's answer",
            "SendOutcome",
        ),
        errors={
            400: "the body is not a JSON object",
            415: "not application/json",
            422: "a field is wrong, or the caller has no such connector; the message names it",
            502: "the mail server refused every recipient or the login",
            403: "the caller owns no connector to send through",
            503: "the caller's connector to send through is not set up right",
        },
    ),
]
