"""Server-rendered HTML pages: usable without JavaScript, readable on a phone."""

from __future__ import annotations

from hub.web.endpoints import Endpoint
from hub.web.pages import (
    actions,
    admin,
    assets,
    browse,
    connectors,
    meetings,
    pop,
    review,
    session,
    settings,
    start,
)

ENDPOINTS: list[Endpoint] = [
    *session.ENDPOINTS,
    *start.ENDPOINTS,
    *browse.ENDPOINTS,
    *actions.ENDPOINTS,
    *review.ENDPOINTS,
    *admin.ENDPOINTS,
    *connectors.ENDPOINTS,
    *assets.ENDPOINTS,
    *settings.ENDPOINTS,
    *pop.ENDPOINTS,
    *meetings.ENDPOINTS,
]
