"""/api/blocklist: addresses and domains whose items are never stored; everyone keeps a
list for their own mailboxes, admins the list for everyone, and nobody sees another's."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from hub.blocklist import add_block, list_blocks, remove_block
from hub.policy import Permission
from hub.web.endpoints import Answer, Endpoint, Param
from hub.web.http import (
    ApiError,
    JSONResponse,
    hub_of,
    json_object,
    search_words,
    text_field,
    viewer_of,
)
from matching.blocklist import BlockEntryError


def _scope(request: Request, values: Any) -> str:
    """Whose entry: "mine" (the caller's own mailboxes, any role) or "everyone" (admins)."""
    scope = values.get("scope", "mine") if hasattr(values, "get") else "mine"
    viewer = viewer_of(request)
    if scope == "everyone":
        if not viewer.may(Permission.ADMINISTER):
            raise ApiError(403, "forbidden", "an entry for everyone needs the admin role")
        return ""
    if scope != "mine":
        raise ApiError(422, "bad_scope", "scope: use mine or everyone")
    return viewer.email


async def blocklist(request: Request) -> Response:
    """The entries for everyone and the caller's own; other users' entries are theirs alone."""
    viewer = viewer_of(request)
    hub = hub_of(request)
    shown = [*await list_blocks(hub, ""), *await list_blocks(hub, viewer.email)]
    return JSONResponse(
        {
            "items": [
                {
                    "entry": e.entry,
                    "scope": "mine" if e.user else "everyone",
                    "created_by": e.created_by,
                    "created_at": e.created_at.isoformat(),
                }
                for e in shown
            ]
        }
    )


async def blocklist_add(request: Request) -> Response:
    values = await json_object(request)
    user = _scope(request, values)
    try:
        counts = await add_block(
            hub_of(request), text_field(values, "entry", limit=320), user, viewer_of(request).email
        )
    except BlockEntryError as e:
        raise ApiError(422, "bad_entry", str(e)) from e
    return JSONResponse(counts.as_json(), status_code=201 if counts.added else 200)


async def blocklist_remove(request: Request) -> Response:
    user = _scope(request, request.query_params)
    entry = search_words(request, "entry") or ""
    try:
        removed = await remove_block(hub_of(request), entry, user, viewer_of(request).email)
    except BlockEntryError as e:
        raise ApiError(422, "bad_entry", str(e)) from e
    if not removed:
        raise ApiError(404, "not_found", f"There is no such entry {entry[:100]!r}.")
    return JSONResponse({"removed": True})


ENTRY = {
    "type": "object",
    "required": ["entry"],
    "properties": {
        "entry": {"type": "string", "description": "an address or a domain"},
        "scope": {"enum": ["mine", "everyone"], "description": "default mine"},
    },
}


ENDPOINTS = [
    Endpoint(
        "/api/blocklist",
        blocklist,
        Permission.SIGNED_IN,
        summary="blocklist entries for everyone, and the caller's own",
        ok=Answer(200, "the entries", "BlocklistEntries"),
    ),
    Endpoint(
        "/api/blocklist",
        blocklist_add,
        Permission.SIGNED_IN,
        ("POST",),
        "never store mail or calls whose only outside parties are this address or domain; "
        "scope mine (the caller's mailboxes) or everyone (admins); stored items it blocks are "
        "removed at once; audited",
        body=ENTRY,
        ok=Answer(201, "added, and what it removed (200: it was there already)", "BlockCounts"),
        errors={
            400: "the body is not a JSON object",
            403: "scope everyone without the admin role",
            415: "not application/json",
            422: "not an address or domain, or a bad scope",
        },
    ),
    Endpoint(
        "/api/blocklist",
        blocklist_remove,
        Permission.SIGNED_IN,
        ("DELETE",),
        "remove an entry (what it removed stays removed)",
        (Param("entry", required=True), Param("scope", enum=("mine", "everyone"))),
        ok=Answer(200, "removed", {"type": "object", "properties": {"removed": {"const": True}}}),
        errors={
            403: "scope everyone without the admin role",
            404: "no such entry",
            422: "not an address or domain",
        },
    ),
]
