"""The route table refuses a route that declares no permission (hub.web.endpoints)."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.requests import Request
from starlette.responses import Response

from hub.policy import Permission
from hub.web.app import ENDPOINTS
from hub.web.endpoints import Endpoint, routes


async def _handler(request: Request) -> Response:
    return Response("x")


@pytest.mark.parametrize("permission", [None, "read", "admin"])
def test_a_route_without_a_declared_permission_is_refused(permission: Any) -> None:
    with pytest.raises(TypeError, match="declare the permission"):
        routes([Endpoint("/x", _handler, permission)])


def test_every_route_of_the_app_declares_one() -> None:
    assert ENDPOINTS and all(isinstance(e.permission, Permission) for e in ENDPOINTS)
    assert len(routes(ENDPOINTS)) == len(ENDPOINTS)
