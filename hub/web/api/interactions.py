"""/api/interactions and /api/attachments: items as far as the caller may see them, and
manual corrections of their attribution."""

from __future__ import annotations

import unicodedata
from urllib.parse import quote

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import Response

from hub.policy import Permission, item_disclosure, shows_attachments
from hub.web.call_notes import notes_shown
from hub.web.commands import correct_link
from hub.web.endpoints import ID, PAGING, TIMELINE, Answer, Endpoint, Param
from hub.web.http import (
    ApiError,
    JSONResponse,
    hub_of,
    json_object,
    not_found,
    object_id,
    optional_id,
    page_limit,
    required_id,
    search_words,
    time_cursor,
    timeline_filter,
    viewer_of,
)
from hub.web.reads import note_reads, page_of_views, read_interaction, scope_of
from storage import queries
from storage.blobs import read_blob
from storage.call_notes import notes_of
from storage.tables import AttachmentRow, InteractionRow


async def interactions(request: Request) -> Response:
    params = request.query_params
    unmatched = params.get("unmatched")
    if unmatched not in (None, "", "true", "false", "1", "0"):
        raise ApiError(400, "bad_unmatched", "unmatched must be true or false")
    async with hub_of(request).reads() as session, session.begin():
        page = await queries.list_interactions(
            session,
            scope_of(request),
            message_id=search_words(request, "message_id"),
            connector=search_words(request, "connector"),
            external_id=search_words(request, "external_id"),
            unmatched=None if not unmatched else unmatched in ("true", "1"),
            f=timeline_filter(request),
            cursor=time_cursor(request),
            limit=page_limit(request),
        )
        views, cursor = await page_of_views(request, session, page, "listing")
    return JSONResponse({"items": [v.as_json() for v in views], "next_cursor": cursor})


async def interaction(request: Request) -> Response:
    """The item; a call also with its notes (null where the caller may not read them) and its
    recordings, each a link that streams it through crmhub (none where they may not)."""
    view = await read_interaction(request)
    doc = view.as_json(full=True)
    if view.channel == "call":
        async with hub_of(request).reads() as session:
            shown = await notes_of(session, view.id) if notes_shown(view) else None
        doc["notes"] = None if shown is None else [n.as_json() for n in shown]
        doc["recordings"] = [
            {"sid": sid, "url": f"/api/interactions/{view.id}/recording?sid={sid}"}
            for sid in view.recordings
        ]
    return JSONResponse(doc)


async def attachment(request: Request) -> Response:
    """The attachment's bytes, for those who may see the item's attachments (else 404)."""
    viewer = viewer_of(request)
    async with hub_of(request).reads() as session, session.begin():
        row = await session.get(AttachmentRow, object_id(request))
        item = await session.get(InteractionRow, row.interaction_id) if row else None
        if row is None or item is None or row.blob_id is None:
            raise not_found(f"stored attachment {object_id(request)}")
        if not shows_attachments(item_disclosure(viewer, item)):
            raise not_found(f"stored attachment {object_id(request)}")
        await note_reads(request, session, [item], "attachment")
        data = await read_blob(session, row.blob_id)
    return Response(
        data,
        media_type=row.content_type,
        headers={"Content-Disposition": content_disposition(row.filename)},
    )


_SPELLED_OUT = str.maketrans(
    {"ß": "ss", "ä": "ae", "ö": "oe", "ü": "ue", "Ä": "Ae", "Ö": "Oe", "Ü": "Ue"}
)


def content_disposition(filename: str) -> str:
    """The exact name in RFC 5987 `filename*` (RFC 6266), which browsers use, and an ASCII
    fallback for old clients, spelled out rather than blanked: "Maßblatt" as "Massblatt"."""
    plain = unicodedata.normalize("NFKD", filename.translate(_SPELLED_OUT))
    plain = "".join(c for c in plain if not unicodedata.combining(c))
    fallback = "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "_" for c in plain)
    return (
        f"attachment; filename=\"{fallback or 'attachment'}\"; filename*=UTF-8''{quote(filename)}"
    )


async def correct_attribution(request: Request) -> Response:
    """POST /api/interactions/{id}/attributions: a person adds or removes a customer link.

    Answers the item as it is now; once its last link is removed it is private to its owners
    again, and for anyone else the answer says only that (`visibility` none).
    """
    values = await json_object(request)

    async def ids(session: AsyncSession) -> tuple[int, int | None]:
        if isinstance(values.get("account_id"), str) or isinstance(values.get("contact_id"), str):
            raise ApiError(422, "bad_correction", "account_id, contact_id: expected numbers")
        return (
            required_id(values, "account_id", code="bad_correction"),
            optional_id(values, "contact_id", code="bad_correction"),
        )

    view = await correct_link(request, str(values.get("action", "")), ids)
    if view is None:
        return JSONResponse({"id": object_id(request), "visibility": "none", "attributions": []})
    return JSONResponse(view.as_json(full=True))


ENDPOINTS = [
    Endpoint(
        "/api/interactions",
        interactions,
        Permission.READ,
        summary="interactions the caller may see, newest first; every filter optional",
        params=(
            Param("message_id"),
            Param("connector"),
            Param(
                "external_id",
                doc="with connector: the item's id in that source; without: its id in any "
                "source, or the call's own id (a Twilio CallSid, an Asterisk uniqueid or "
                "linkedid). An item the caller may not see is simply not listed",
            ),
            Param("unmatched", kind="boolean"),
            *TIMELINE,
            *PAGING,
        ),
        ok=Answer(200, "a page of interactions", "InteractionPage"),
        errors={400: "a bad filter, limit or cursor"},
    ),
    Endpoint(
        "/api/interactions/{id:int}",
        interaction,
        Permission.READ,
        summary="one interaction with its text, as far as the caller may see it",
        params=ID,
        ok=Answer(200, "the interaction", "InteractionWithText"),
        errors={404: "no such interaction, or not one the caller may see"},
    ),
    Endpoint(
        "/api/interactions/{id:int}/attributions",
        correct_attribution,
        Permission.CORRECT,
        ("POST",),
        "a person links the item to an account (add) or unlinks it (remove); manual links "
        "survive re-matching and removed ones are never re-added; recorded in the audit log",
        ID,
        body={
            "type": "object",
            "required": ["action", "account_id"],
            "properties": {
                "action": {"enum": ["add", "remove"]},
                "account_id": {"type": "integer"},
                "contact_id": {"type": ["integer", "null"]},
            },
        },
        ok=Answer(200, "the interaction after the change", "Corrected"),
        errors={
            400: "the body is not a JSON object",
            404: "no such interaction, or not one the caller may see",
            415: "not application/json",
            422: "a field is wrong; the message names it",
        },
    ),
    Endpoint(
        "/api/attachments/{id:int}",
        attachment,
        Permission.READ,
        summary="download an attachment (roles that see mail bodies, and the owners)",
        params=ID,
        ok=Answer(200, "the attachment's bytes, with its own media type", None, "*/*"),
        errors={404: "no such attachment, or not one the caller may see"},
    ),
]
