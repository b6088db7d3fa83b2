"""/api/audit: the audit log for admins, append-only (no route changes it)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from hub.policy import Permission
from hub.web.endpoints import PAGING, Answer, Endpoint, Param
from hub.web.http import (
    JSONResponse,
    date_param,
    hub_of,
    id_cursor,
    page_limit,
    search_words,
)
from hub.web.views import audit_view
from storage import queries


async def audit_log(request: Request) -> Response:
    """The audit log, newest first, filtered by actor, action (or `prefix.`), target, time."""
    f = queries.AuditFilter(
        actor=search_words(request, "actor"),
        action=search_words(request, "action"),
        target=search_words(request, "target"),
        since=date_param(request, "since"),
        until=date_param(request, "until"),
    )
    async with hub_of(request).sessions() as session:
        page = await queries.audit_log(session, f, id_cursor(request), page_limit(request))
    return JSONResponse(
        {"items": [audit_view(r).as_json() for r in page.items], "next_cursor": page.next_cursor}
    )


ENDPOINTS = [
    Endpoint(
        "/api/audit",
        audit_log,
        Permission.ADMINISTER,
        summary="the audit log, newest first (append-only: there is no way to change it)",
        params=(
            Param("actor"),
            Param("action", doc="an action such as login.failed, or a prefix such as user."),
            Param("target"),
            Param("since", doc="ISO date-time, inclusive"),
            Param("until", doc="ISO date-time, exclusive"),
            *PAGING,
        ),
        ok=Answer(200, "a page of audit entries", "AuditPage"),
        errors={400: "a bad filter, limit or cursor"},
    ),
]
