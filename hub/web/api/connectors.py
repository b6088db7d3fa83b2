"""Connector administration under /api/connectors (admins only): list, add, change, remove,
test, sync now and its progress, and what each kind takes. Secrets are never shown."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from hub.connector_kinds import kind_forms
from hub.connector_status import connector_statuses
from hub.policy import Permission
from hub.web import connector_commands as commands
from hub.web.endpoints import Answer, Endpoint, Param
from hub.web.http import ApiError, JSONResponse, hub_of, json_object, text_field

NAME = (Param("name", "path"),)
NOT_FOUND = {404: "no such connector"}
JSON_BODY = {400: "the body is not a JSON object", 415: "not application/json"}


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


async def connector_kinds(request: Request) -> Response:
    return JSONResponse({"items": [form.as_json() for form in kind_forms()]})


async def connector_add(request: Request) -> Response:
    values = await json_object(request)
    kind, name = text_field(values, "kind", limit=200), text_field(values, "name", limit=100)
    if not kind:
        raise ApiError(422, "bad_settings", "kind: expected a connector kind")
    added = await commands.create(
        request,
        kind,
        name,
        commands.texts(values.get("settings"), "settings"),
        commands.texts(values.get("secrets"), "secrets"),
    )
    return JSONResponse(added.as_json(), status_code=201)


async def connector_remove(request: Request) -> Response:
    name = request.path_params["name"]
    await commands.remove(request, name)
    return JSONResponse({"name": name, "removed": True})


async def connector_test(request: Request) -> Response:
    outcome = await commands.check(request, request.path_params["name"])
    return JSONResponse(outcome.as_json())


async def connector_sync(request: Request) -> Response:
    progress = await commands.start_sync(request, request.path_params["name"])
    return JSONResponse(progress.as_json(), status_code=202)


async def connector_sync_progress(request: Request) -> Response:
    progress = await commands.progress(request, request.path_params["name"])
    return JSONResponse(progress.as_json())


ENDPOINTS = [
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
            **JSON_BODY,
            **NOT_FOUND,
            422: "a setting is unknown or wrong; the message names it",
        },
    ),
    Endpoint(
        "/api/connector-kinds",
        connector_kinds,
        Permission.ADMINISTER,
        summary="every registered connector kind with the settings it takes, which of them are "
        "required and which are secrets (write-only)",
        ok=Answer(200, "the kinds", "ConnectorKinds"),
    ),
    Endpoint(
        "/api/connectors",
        connector_add,
        Permission.ADMINISTER,
        ("POST",),
        "add a connector: its kind, a name, settings and secrets (stored encrypted, never shown "
        "back); audited",
        body="NewConnector",
        ok=Answer(201, "the connector added", "Connector"),
        errors={
            **JSON_BODY,
            409: "a connector of that name exists",
            422: "the kind, the name, a setting or a secret is wrong; the message names it",
        },
    ),
    Endpoint(
        "/api/connectors/{name}",
        connector_remove,
        Permission.ADMINISTER,
        ("DELETE",),
        "remove a connector; the items logged from it stay, with the owner and cap they had; "
        "audited",
        NAME,
        ok=Answer(200, "removed", "ConnectorRemoved"),
        errors=NOT_FOUND,
    ),
    Endpoint(
        "/api/connectors/{name}/test",
        connector_test,
        Permission.ADMINISTER,
        ("POST",),
        "read the source as a sync would, without storing anything: what it holds, or the "
        "error with a hint for IT; audited",
        NAME,
        ok=Answer(200, "the outcome, usable or not", "ConnectorTest"),
        errors=NOT_FOUND,
    ),
    Endpoint(
        "/api/connectors/{name}/sync",
        connector_sync,
        Permission.ADMINISTER,
        ("POST",),
        "start one sync of the connector in the serving process; follow it with GET on the "
        "same path; audited",
        NAME,
        ok=Answer(202, "started", "SyncProgress"),
        errors={**NOT_FOUND, 409: "a sync of the connector is running already"},
    ),
    Endpoint(
        "/api/connectors/{name}/sync",
        connector_sync_progress,
        Permission.ADMINISTER,
        summary="the connector's latest sync run: items fetched so far, and the counts once "
        "it ended",
        params=NAME,
        ok=Answer(200, "the latest run", "SyncProgress"),
        errors=NOT_FOUND,
    ),
]
