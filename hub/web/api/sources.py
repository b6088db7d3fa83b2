"""/api/quarantine: what could not be read, and why (never the private items of a mailbox);
the connectors themselves are hub.web.api.connectors."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from hub.policy import Permission
from hub.web.endpoints import PAGING, Answer, Endpoint
from hub.web.http import (
    JSONResponse,
    page_limit,
)
from hub.web.reads import quarantined_page


async def quarantine(request: Request) -> Response:
    """Admins see every quarantined item's reason; a mailbox owner sees those of their own."""
    views, cursor = await quarantined_page(request, page_limit(request))
    return JSONResponse({"items": [v.as_json() for v in views], "next_cursor": cursor})


ENDPOINTS = [
    Endpoint(
        "/api/quarantine",
        quarantine,
        Permission.READ,
        summary="items that could not be read, with the reason: all of them for admins, "
        "those of the caller's own mailboxes for everyone else",
        params=PAGING,
        ok=Answer(200, "a page of quarantined items", "QuarantinePage"),
    ),
]
