"""`POST /hooks/pbx/{connector}`: a PBX's signed call event (docs/pbx-webhook.md).

Public (a PBX has no login), so the request proves itself: it must carry a valid
HMAC-SHA256 signature of the named `pbx-webhook` connector, made within the replay window.
Anything else (no such connector, unsigned, forged, tampered, stale) gets the same 403,
which tells the sender nothing about which connectors exist; the reason goes to the audit
log and the server log, where IT looks. A signed body that is no valid event gets 400 with
what is wrong, so the PBX's adapter can be fixed. A valid event is stored exactly as a sync
stores it (`hub.pipeline.ingest_pushed`): under the connector's owner and visibility cap, and
a replay or a late, older state of the same call is absorbed, never stored twice.

Who sees what: the route returns only counts, never an item; the stored call is then seen
through the API and the pages as any call of that connector (DESIGN.md "Who sees what").
"""

from __future__ import annotations

import logging
import time

from starlette.requests import Request
from starlette.responses import Response

from connectors.base import ConnectorError, MalformedItem
from connectors.pbx_webhook import (
    EVENT_SCHEMA,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    PbxWebhookConnector,
    parse_event,
)
from hub.model import RawItem
from hub.pipeline import ingest_pushed
from hub.policy import Permission
from hub.web.endpoints import Answer, Endpoint, Param
from hub.web.http import JSONResponse, error_json, hub_of
from hub.web.refusals import audit_refusal
from storage.connectors_state import connector_row

log = logging.getLogger(__name__)
KIND = PbxWebhookConnector.kind
REFUSED = "the request is not signed with this webhook's signing_secret within 5 minutes"


async def pbx_call_event(request: Request) -> Response:
    """Take one signed call event and store it (docs/pbx-webhook.md)."""
    name = request.path_params["connector"]
    body = await request.body()
    problem = await _signature_problem(request, name, body)
    if problem:
        return await _refuse(request, name, problem)
    try:
        event = parse_event(body)
    except MalformedItem as e:
        return error_json(400, "bad_event", str(e))
    # The call's id is the item's id: a replay, or a later state of the same call, is the
    # same item of this connector, which storage absorbs or brings up to date.
    raw = RawItem(event.call_id, body, "application/json")
    report = await ingest_pushed(hub_of(request), name, [raw])
    c = report.counts
    return JSONResponse(
        {"new": c.new, "updated": c.updated, "duplicates": c.duplicates, "skipped": report.skipped}
    )


async def _signature_problem(request: Request, name: str, body: bytes) -> str:
    """Why the request is not signed by the enabled pbx-webhook connector `name`, or ""."""
    hub = hub_of(request)
    async with hub.sessions() as session:
        row = await connector_row(session, name)
    if row is None or row.kind != KIND or not row.enabled:
        return f"no enabled {KIND} connector named {name!r}"
    try:
        connector = hub.connector(row)
    except (ConnectorError, ValueError) as e:
        return f"the connector cannot be built: {e}"
    assert isinstance(connector, PbxWebhookConnector)
    return connector.signature_problem(
        request.headers.get(TIMESTAMP_HEADER, ""),
        request.headers.get(SIGNATURE_HEADER, ""),
        body,
        time.time(),
    )


async def _refuse(request: Request, name: str, problem: str) -> Response:
    client = request.client.host if request.client else ""
    after = {"hook": "pbx", "client": client, "reason": problem}
    await audit_refusal(request, "webhook", name, after, problem)
    return error_json(403, "forbidden", REFUSED)


ENDPOINTS: list[Endpoint] = [
    Endpoint(
        "/hooks/pbx/{connector}",
        pbx_call_event,
        Permission.PUBLIC,
        methods=("POST",),
        summary="a PBX's call event, signed with the connector's signing_secret",
        params=(Param("connector", "path", doc="the pbx-webhook connector's name"),),
        body=EVENT_SCHEMA,
        ok=Answer(
            200,
            "stored: how many calls were new, updated or already known",
            {
                "type": "object",
                "required": ["new", "updated", "duplicates", "skipped"],
                "properties": {
                    k: {"type": "integer", "minimum": 0}
                    for k in ("new", "updated", "duplicates", "skipped")
                },
            },
        ),
        errors={
            400: "the body is not a valid call event; the message says what is wrong",
            403: "not signed by the connector's secret within the replay window",
        },
    ),
]
