"""Pages for IT: the quarantine (reasons, and raw bytes where the policy allows) and the
audit log. A mailbox owner sees the quarantined items of their own mailboxes."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from hub.policy import Permission, may_read_quarantined
from hub.web.endpoints import Endpoint
from hub.web.html import PAGE_SIZE, render
from hub.web.http import (
    date_param,
    hub_of,
    id_cursor,
    not_found,
    object_id,
    search_words,
    viewer_of,
)
from hub.web.reads import quarantined_page
from hub.web.views import audit_view
from storage import audit, queries
from storage.blobs import read_blob
from storage.tables import QuarantineRow


async def quarantined(request: Request) -> Response:
    items, cursor = await quarantined_page(request, PAGE_SIZE)
    return render(request, "quarantine.html", items=items, next_cursor=cursor)


async def quarantined_raw(request: Request) -> Response:
    """The raw bytes of a quarantined item, as text, so its owner (or IT, for a source nobody
    owns) can see why it failed; for anyone else it does not exist."""
    viewer = viewer_of(request)
    async with hub_of(request).sessions() as session, session.begin():
        row = await session.get(QuarantineRow, object_id(request))
        if row is None or row.raw_blob_id is None or not may_read_quarantined(viewer, row.owner):
            raise not_found("such quarantined item")
        data = await read_blob(session, row.raw_blob_id)
        if not viewer.owns(row.owner):
            audit.record(
                session, viewer.email, "quarantine.read", after={"id": row.id}, target=row.connector
            )
    return Response(data.decode("utf-8", "replace"), media_type="text/plain; charset=utf-8")


async def audit_page(request: Request) -> Response:
    filters = {k: search_words(request, k) or "" for k in ("actor", "action", "target")}
    f = queries.AuditFilter(
        actor=filters["actor"] or None,
        action=filters["action"] or None,
        target=filters["target"] or None,
        since=date_param(request, "since"),
        until=date_param(request, "until"),
    )
    async with hub_of(request).sessions() as session:
        page = await queries.audit_log(session, f, id_cursor(request), PAGE_SIZE)
    return render(
        request,
        "audit.html",
        entries=[audit_view(r) for r in page.items],
        next_cursor=page.next_cursor,
        filters={**filters, **{k: request.query_params.get(k, "") for k in ("since", "until")}},
    )


ENDPOINTS = [
    Endpoint("/quarantine", quarantined, Permission.READ),
    Endpoint("/quarantine/{id:int}/raw", quarantined_raw, Permission.READ),
    Endpoint("/audit", audit_page, Permission.ADMINISTER),
]
