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
from hub.web import api, pages, review

log = logging.getLogger(__name__)


async def server_error(request: Request, exc: Exception) -> Response:
    log.exception("request %s %s failed", request.method, request.url.path)
    if request.url.path.startswith("/api/"):
        return api.error(500, "internal", "the server failed; the log has the details")
    return Response("The server failed; the log has the details.", status_code=500)


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if request.url.path.startswith("/api/"):
        return api.error(exc.status_code, "http_error", str(exc.detail))
    return pages.error_page(request, exc.status_code, str(exc.detail))


def build_app(hub: Hub) -> Starlette:
    app = Starlette(
        routes=[*review.ROUTES, *api.ROUTES, *pages.ROUTES],
        middleware=[
            Middleware(
                SessionMiddleware,
                secret_key=secret_key_for(hub.settings),
                session_cookie="crmhub_session",
                same_site="lax",
                https_only=False,
                max_age=12 * 3600,
            )
        ],
        exception_handlers={500: server_error, HTTPException: http_error},
    )
    app.state.hub = hub
    return app
