"""/api/privacy/export: a data subject's export, for admins, audited."""

from __future__ import annotations

import tempfile
from pathlib import Path

from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import FileResponse, Response

from hub.policy import Permission
from hub.privacy import PrivacyError, export_subject
from hub.web.endpoints import Answer, Endpoint
from hub.web.http import (
    ApiError,
    hub_of,
    json_object,
    text_field,
    viewer_of,
)


async def privacy_export(request: Request) -> Response:
    """POST /api/privacy/export {"subject": ADDRESS_OR_PHONE}: everything stored about them."""
    values = await json_object(request)
    subject = text_field(values, "subject", limit=320)
    folder = Path(tempfile.mkdtemp(prefix="crmhub-export-"))
    out = folder / "export.zip"
    try:
        await export_subject(hub_of(request), subject, out, actor=viewer_of(request).email)
    except PrivacyError as e:
        _remove(folder)
        raise ApiError(422, "bad_subject", str(e)) from e
    return FileResponse(
        out,
        media_type="application/zip",
        filename="crmhub-export.zip",
        background=BackgroundTask(_remove, folder),
    )


def _remove(folder: Path) -> None:
    for file in folder.iterdir():
        file.unlink()
    folder.rmdir()


ENDPOINTS = [
    Endpoint(
        "/api/privacy/export",
        privacy_export,
        Permission.ADMINISTER,
        ("POST",),
        "a data subject's export: every item where the address or number appears, their "
        "contact record and raw messages, as a zip; audited",
        body={
            "type": "object",
            "required": ["subject"],
            "properties": {"subject": {"type": "string", "description": "address or phone"}},
        },
        ok=Answer(200, "the zip", None, "application/zip"),
        errors={
            400: "the body is not a JSON object",
            415: "not application/json",
            422: "the subject is not an address or a phone number",
        },
    ),
]
