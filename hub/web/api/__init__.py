"""The JSON API under /api (DESIGN.md "Public contract"), one module per resource."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from hub.policy import Permission
from hub.web.api import (
    audit,
    blocklist,
    connectors,
    directory,
    interactions,
    meetings,
    messages,
    notes,
    privacy,
    recordings,
    review,
    search,
    sources,
)
from hub.web.endpoints import Answer, Endpoint
from hub.web.http import JSONResponse


async def health(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def openapi(request: Request) -> Response:
    return JSONResponse(request.app.state.openapi)


ENDPOINTS: list[Endpoint] = [
    Endpoint(
        "/api/health",
        health,
        Permission.PUBLIC,
        summary="liveness",
        ok=Answer(200, "OK", {"type": "object", "properties": {"status": {"const": "ok"}}}),
    ),
    Endpoint(
        "/api/openapi.json",
        openapi,
        Permission.SIGNED_IN,
        summary="this document",
        ok=Answer(
            200,
            "the OpenAPI document",
            {
                "type": "object",
                "required": ["openapi", "info", "paths", "components"],
                "properties": {"openapi": {"type": "string", "pattern": "^3\\."}},
            },
        ),
    ),
    *directory.ENDPOINTS,
    *search.ENDPOINTS,
    *interactions.ENDPOINTS,
    *notes.ENDPOINTS,
    *messages.ENDPOINTS,
    *meetings.ENDPOINTS,
    *review.ENDPOINTS,
    *sources.ENDPOINTS,
    *connectors.ENDPOINTS,
    *audit.ENDPOINTS,
    *blocklist.ENDPOINTS,
    *privacy.ENDPOINTS,
    *recordings.ENDPOINTS,
]
