"""/api/interactions/{id}/notes: an agent's notes and outcomes on a call (hub.web.call_notes
says who sees and writes them)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from hub.policy import Permission
from hub.web.call_notes import read_notes, write_note
from hub.web.endpoints import ID, Answer, Endpoint
from hub.web.http import JSONResponse, json_object, object_id
from storage.call_notes import MAX_TEXT, OUTCOMES


async def notes(request: Request) -> Response:
    item, found = await read_notes(request)
    shown = None if found is None else [n.as_json() for n in found]
    return JSONResponse({"interaction_id": item, "notes": shown})


async def add(request: Request) -> Response:
    """POST: one note, answered with all of the call's notes (201)."""
    values = await json_object(request)
    found = await write_note(request, values.get("outcome", ""), values.get("text", ""))
    return JSONResponse(
        {"interaction_id": object_id(request), "notes": [n.as_json() for n in found]},
        status_code=201,
    )


ENDPOINTS = [
    Endpoint(
        "/api/interactions/{id:int}/notes",
        notes,
        Permission.READ,
        summary="a call's notes and outcomes, oldest first; null for a caller who sees the "
        "call's metadata only",
        params=ID,
        ok=Answer(200, "the call's notes", "CallNotes"),
        errors={404: "no such call, or not one the caller may see"},
    ),
    Endpoint(
        "/api/interactions/{id:int}/notes",
        add,
        Permission.CORRECT,
        ("POST",),
        "an agent adds a note and an outcome to a call; the note's words find the call in "
        "searches of those who may read its notes",
        ID,
        body={
            "type": "object",
            "properties": {
                "outcome": {"enum": ["", *OUTCOMES]},
                "text": {"type": "string", "maxLength": MAX_TEXT},
            },
            "description": "an outcome, a text, or both",
        },
        ok=Answer(201, "the call's notes with the new one", "CallNotes"),
        errors={
            400: "the body is not a JSON object",
            403: "the caller's role does not see this call's notes",
            404: "no such call, or not one the caller may see",
            415: "not application/json",
            422: "a field is wrong; the message names it",
        },
    ),
]
