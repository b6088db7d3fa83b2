"""What IT administers over the API: connectors, the quarantine, the audit log, the blocklist
and data-subject exports. Admins administer; they do not read private items (hub.policy)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from sqlalchemy import select
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response

from connectors.base import ConfigurationError
from hub.admin import UnknownConnector, change_connector
from hub.blocklist import add_block, list_blocks, remove_block
from hub.policy import Permission
from hub.web.endpoints import PAGING, Answer, Endpoint, Param
from hub.web.http import (
    ApiError,
    date_param,
    hub_of,
    id_cursor,
    json_object,
    page_limit,
    search_words,
    text_field,
    viewer_of,
)
from hub.web.reads import quarantined_page
from hub.web.views import audit_view
from matching.blocklist import BlockEntryError
from storage import queries
from storage.tables import ConnectorRow


async def quarantine(request: Request) -> Response:
    """Admins see every quarantined item's reason; a mailbox owner sees those of their own."""
    views, cursor = await quarantined_page(request, page_limit(request))
    return JSONResponse({"items": [v.as_json() for v in views], "next_cursor": cursor})


def connector_json(row: ConnectorRow) -> dict[str, Any]:
    return {
        "name": row.name,
        "kind": row.kind,
        "enabled": row.enabled,
        "settings": dict(row.settings or {}),
        "status": row.status,
        "last_error": row.last_error,
        "last_sync_at": row.last_sync_at.isoformat() if row.last_sync_at else None,
    }


async def connectors(request: Request) -> Response:
    """Every connector with its settings and state; secrets are never shown."""
    async with hub_of(request).sessions() as session:
        rows = (await session.execute(select(ConnectorRow).order_by(ConnectorRow.name))).scalars()
        return JSONResponse({"items": [connector_json(r) for r in rows]})


async def connector_change(request: Request) -> Response:
    """PATCH /api/connectors/{name}: {"settings": {key: value or null}, "enabled": bool}."""
    values = await json_object(request)
    changes, enabled = values.get("settings", {}), values.get("enabled")
    if not isinstance(changes, dict) or not all(
        isinstance(k, str) and (v is None or isinstance(v, str)) for k, v in changes.items()
    ):
        raise ApiError(422, "bad_settings", "settings: expected {name: text or null}")
    if enabled is not None and not isinstance(enabled, bool):
        raise ApiError(422, "bad_settings", "enabled: expected true or false")
    name = request.path_params["name"]
    try:
        await change_connector(
            hub_of(request), name, changes, enabled=enabled, actor=viewer_of(request).email
        )
    except UnknownConnector as e:
        raise ApiError(404, "not_found", str(e)) from e
    except ConfigurationError as e:
        raise ApiError(422, "bad_settings", str(e)) from e
    async with hub_of(request).sessions() as session:
        row = (
            await session.execute(select(ConnectorRow).where(ConnectorRow.name == name))
        ).scalar_one()
    return JSONResponse(connector_json(row))


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


async def privacy_export(request: Request) -> Response:
    """POST /api/privacy/export {"subject": ADDRESS_OR_PHONE}: everything stored about them."""
    from hub.privacy import PrivacyError, export_subject

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
        "/api/quarantine",
        quarantine,
        Permission.READ,
        summary="items that could not be read, with the reason: all of them for admins, "
        "those of the caller's own mailboxes for everyone else",
        params=PAGING,
        ok=Answer(200, "a page of quarantined items", "QuarantinePage"),
    ),
    Endpoint(
        "/api/connectors",
        connectors,
        Permission.ADMINISTER,
        summary="every connector with its settings and state (never its secrets)",
        ok=Answer(200, "the connectors", "ConnectorList"),
    ),
    Endpoint(
        "/api/connectors/{name}",
        connector_change,
        Permission.ADMINISTER,
        ("PATCH",),
        "change a connector's settings (a value null removes one) or enable or disable it; a "
        "new owner or visibility applies to its stored items at once; audited",
        (Param("name", "path"),),
        body={
            "type": "object",
            "properties": {
                "settings": {
                    "type": "object",
                    "additionalProperties": {"type": ["string", "null"]},
                },
                "enabled": {"type": "boolean"},
            },
        },
        ok=Answer(200, "the connector after the change", "Connector"),
        errors={
            400: "the body is not a JSON object",
            404: "no such connector",
            415: "not application/json",
            422: "a setting is unknown or wrong; the message names it",
        },
    ),
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
