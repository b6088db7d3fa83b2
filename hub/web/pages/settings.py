"""/settings: what each user sets for themselves. Today the time zone pages show times in (the
configured `timezone` until they choose): a salesperson travelling, or a call center in
another country, reads times as the clock on their wall says them.

Who sees what: every signed-in user, for their own account only; nothing here reads items.
"""

from __future__ import annotations

import functools
from zoneinfo import available_timezones

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from hub.policy import Permission
from hub.web.endpoints import Endpoint
from hub.web.html import page_zone, render
from hub.web.http import ApiError, hub_of
from storage.users import set_timezone


@functools.cache
def zones() -> tuple[str, ...]:
    """The zone database's regions (no "posixrules" or legacy aliases like "US/Pacific")."""
    return tuple(
        sorted(z for z in available_timezones() if "/" in z and not z.startswith(("Etc/", "US/")))
    )


async def settings_page(request: Request) -> Response:
    caller = request.state.caller
    return render(
        request,
        "settings.html",
        zones=zones(),
        own=caller.timezone,
        configured=hub_of(request).settings.timezone,
        shown=page_zone(request).key,
        saved=request.query_params.get("saved") == "1",
    )


async def save_settings(request: Request) -> Response:
    form = await request.form()
    zone = str(form.get("timezone", "")).strip()
    if zone and zone not in zones():
        raise ApiError(
            422, "bad_timezone", f"{zone[:60]!r} is not a time zone; pick one from the list."
        )
    async with hub_of(request).sessions() as session, session.begin():
        await set_timezone(session, request.state.caller.user_id, zone)
    return RedirectResponse("/settings?saved=1", 303)


ENDPOINTS = [
    Endpoint("/settings", settings_page, Permission.READ),
    Endpoint("/settings", save_settings, Permission.READ, ("POST",)),
]
