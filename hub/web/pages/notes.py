"""The call page's note form: the same note as the API writes (hub.web.call_notes), then back
to the call, at its notes."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from hub.policy import Permission
from hub.web.call_notes import write_note
from hub.web.endpoints import Endpoint
from hub.web.http import object_id


async def note_form(request: Request) -> Response:
    form = await request.form()
    await write_note(request, str(form.get("outcome", "")), str(form.get("text", "")))
    return RedirectResponse(f"/interactions/{object_id(request)}#notes", 303)


ENDPOINTS = [Endpoint("/interactions/{id:int}/notes", note_form, Permission.CORRECT, ("POST",))]
