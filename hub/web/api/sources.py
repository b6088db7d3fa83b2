"""/api/quarantine and /api/connectors: what IT sees of the sources (never their secrets,
never the private items of a mailbox)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import Response

from connectors.base import ConfigurationError
from hub.admin import UnknownConnector, change_connector
from hub.policy import Permission
from hub.web.endpoints import PAGING, Answer, Endpoint, Param
from hub.web.http import (
    ApiError,
    JSONResponse,
    hub_of,
    json_object,
    page_limit,
    viewer_of,
)
from hub.web.reads import quarantined_page
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
]
