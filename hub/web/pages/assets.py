"""The files the pages load from hub/web/static: scripts and styles of our own origin, as the
Content-Security-Policy (hub.web.security) allows, never inline. Pages work without them.

Only a file that is there, by its name and of a type listed here: nothing else of the server's
disk is reachable through this route (a name holds no "/").
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response

from hub.policy import Permission
from hub.web.endpoints import Endpoint
from hub.web.http import not_found

STATIC = Path(__file__).parent.parent / "static"
TYPES = {".js": "text/javascript", ".css": "text/css"}


async def static_file(request: Request) -> Response:
    name = str(request.path_params["name"])
    path = STATIC / name
    if name.startswith(".") or path.suffix not in TYPES or not path.is_file():
        raise not_found("such file")
    return Response(
        path.read_bytes(), media_type=TYPES[path.suffix], headers={"cache-control": "no-cache"}
    )


ENDPOINTS = [Endpoint("/static/{name}", static_file, Permission.PUBLIC)]
