"""build_app(): the Starlette application for a wired Hub."""

from __future__ import annotations

import logging

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import Response

from hub.bootstrap import Hub, secret_key_for
from hub.connector_runs import SyncRuns
from hub.logs import current_request_id
from hub.web import api, calendar_feeds, hooks_pbx, hooks_twilio, observability, pages
from hub.web.endpoints import Endpoint, routes
from hub.web.html import error_page
from hub.web.http import MAX_JSON_BYTES, error_json
from hub.web.openapi import build
from hub.web.security import SESSION_COOKIE, BodyLimit, SecurityHeaders

log = logging.getLogger(__name__)
ENDPOINTS: list[Endpoint] = [
    *api.ENDPOINTS,
    *pages.ENDPOINTS,
    *hooks_pbx.ENDPOINTS,
    *hooks_twilio.ENDPOINTS,
    *calendar_feeds.ENDPOINTS,
    *observability.ENDPOINTS,
]


async def server_error(request: Request, exc: Exception) -> Response:
    """The request edge: log the details, answer without them."""
    log.exception("request %s %s failed", request.method, request.url.path)
    message = "The server failed; the log has the details."
    if request.url.path.startswith("/api/"):
        answer: Response = error_json(500, "internal", message)
    else:
        answer = error_page(request, 500, message)
    if request_id := current_request_id():  # outside RequestIds: the log's lines carry it
        answer.headers["X-Request-Id"] = request_id
    return answer


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    api = request.url.path.startswith("/api/")
    message = {
        404: f"There is no route {request.url.path[:200]}." if api else "There is no such page.",
        405: f"{request.url.path[:200]} does not take {request.method}.",
    }.get(exc.status_code, str(exc.detail))
    headers = dict(exc.headers or {})  # 405 carries Allow
    if api:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        answer = error_json(exc.status_code, code, message)
        answer.headers.update(headers)
        return answer
    return error_page(request, exc.status_code, message, headers=headers or None)


def build_app(hub: Hub) -> Starlette:
    app = Starlette(
        routes=routes(ENDPOINTS),
        middleware=[
            Middleware(observability.RequestIds),
            Middleware(observability.RequestTimes),
            Middleware(SecurityHeaders),
            Middleware(
                BodyLimit, json_bytes=MAX_JSON_BYTES, upload_bytes=hub.settings.max_upload_bytes
            ),
            Middleware(
                SessionMiddleware,
                secret_key=secret_key_for(hub.settings),
                session_cookie=SESSION_COOKIE,
                same_site="lax",
                https_only=False,  # SecurityHeaders marks it Secure whenever HTTPS carries it
                max_age=12 * 3600,
            ),
        ],
        exception_handlers={500: server_error, HTTPException: http_error},
    )
    app.state.hub = hub
    app.state.sync_runs = SyncRuns(hub)  # "Sync now": runs of this process, stopped with it
    app.state.openapi = build(ENDPOINTS)
    return app
