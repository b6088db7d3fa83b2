"""/api/quarantine and /api/connectors: what IT sees of the sources (never their secrets,
never the private items of a mailbox)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from hub.connector_status import connector_statuses
from hub.policy import Permission
from hub.web import connector_commands as commands
from hub.web.endpoints import PAGING, Answer, Endpoint, Param
from hub.web.http import (
    ApiError,
    JSONResponse,
    hub_of,
    json_object,
    page_limit,
)
from hub.web.reads import quarantined_page


async def quarantine(request: Request) -> Response:
    """Admins see every quarantined item's reason; a mailbox owner sees those of their own."""
    views, cursor = await quarantined_page(request, page_limit(request))
    return JSONResponse({"items": [v.as_json() for v in views], "next_cursor": cursor})


async def connectors(request: Request) -> Response:
    """Every connector with its settings and state; secrets are never shown."""
    statuses = await connector_statuses(hub_of(request))
    return JSONResponse({"items": [s.as_json() for s in statuses]})


async def connector_change(request: Request) -> Response:
    """PATCH /api/connectors/{name}: {"settings": {key: value or null}, "enabled": bool,
    "secrets": {key: value}} (an empty secret keeps the stored one)."""
    values = await json_object(request)
    changes, enabled = values.get("settings", {}), values.get("enabled")
    if not isinstance(changes, dict) or not all(
        isinstance(k, str) and (v is None or isinstance(v, str)) for k, v in changes.items()
    ):
        raise ApiError(422, "bad_settings", "settings: expected {name: text or null}")
    if enabled is not None and not isinstance(enabled, bool):
        raise ApiError(422, "bad_settings", "enabled: expected true or false")
    secrets = commands.texts(values.get("secrets"), "secrets")
    changed = await commands.change(
        request, request.path_params["name"], changes, enabled=enabled, secrets=secrets
    )
    return JSONResponse(changed.as_json())


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
        "change a connector's settings (a value null removes one), replace secrets (an empty "
        "one keeps the stored secret), or enable or disable it; a new owner or visibility "
        "applies to its stored items at once; audited",
        (Param("name", "path"),),
        body={
            "type": "object",
            "properties": {
                "settings": {
                    "type": "object",
                    "additionalProperties": {"type": ["string", "null"]},
                },
                "secrets": {"type": "object", "additionalProperties": {"type": "string"}},
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
