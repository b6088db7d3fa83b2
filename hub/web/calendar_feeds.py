"""Calendar export: a read-only `.ics` subscription to one account's meetings.

`GET /calendars/{token}.ics` is public in the route table: the random token in the URL is the
credential (a calendar client sends no login), stored hashed (storage.calendar_feeds).
Managers make and revoke the link, from the account's page or through
`POST`/`DELETE /api/accounts/{id}/calendar-feed`; making one revokes the previous one.

Who sees what: the feed is read as its creator with their role as it is now (a creator who is
disabled or removed ends the feed: 404), through the same policy as every page
(hub.web.calendar_export says which fields a VEVENT carries at each disclosure). An account's
meetings are attributed items, so they exist for every role; a manager's feed shows them in
full, except where a connector's visibility cap withholds details. A revoked or unknown token
is 404, never 403: a guessed URL learns nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from hub.policy import Permission, Viewer, read_scope
from hub.web.calendar_export import feed_document
from hub.web.endpoints import ID, Answer, Endpoint, Param
from hub.web.html import render
from hub.web.http import JSONResponse, hub_of, not_found, object_id, viewer_of
from hub.web.reads import account_or_404, note_reads
from hub.web.views import InteractionView, interaction_views
from storage import queries
from storage.calendar_feeds import CalendarFeed, create_feed, feed_reader, live_feed, revoke_feeds

PAST = timedelta(days=180)  # what a feed holds: the last half year...
AHEAD = timedelta(days=400)  # ...and what is booked for the next year and a bit
MAX_EVENTS = 1_000  # a key account's meetings in that window; more is not a calendar's job
MEDIA = "text/calendar; charset=utf-8"


def _url(request: Request, token: str) -> str:
    return f"{str(request.base_url).rstrip('/')}/calendars/{token}.ics"


def _feed_json(feed: CalendarFeed, url: str | None = None) -> dict[str, object]:
    doc: dict[str, object] = {
        "id": feed.id,
        "account_id": feed.account_id,
        "created_by": feed.created_by,
        "created_at": feed.created_at.isoformat(),
    }
    if url is not None:
        doc["url"] = url
    return doc


async def feed(request: Request) -> Response:
    """GET /calendars/{token}.ics: the account's meetings of the window, as the feed's
    creator may see them (module docstring); 404 for a revoked or unknown token."""
    token = str(request.path_params["token"])
    now = datetime.now(UTC)
    f = queries.TimelineFilter(channel="meeting", since=now - PAST, until=now + AHEAD)
    async with hub_of(request).reads() as session, session.begin():
        reader = await feed_reader(session, token)
        if reader is None:
            raise not_found("calendar feed")
        viewer = Viewer.of(reader.email, reader.role)
        request.state.viewer = viewer  # audited reads name the feed's creator
        account = await account_or_404(session, reader.feed.account_id)
        views: list[InteractionView] = []
        cursor = None
        while len(views) < MAX_EVENTS:
            page = await queries.account_timeline(
                session, read_scope(viewer), account.id, f, cursor, queries.MAX_LIMIT
            )
            await note_reads(request, session, page.items, "calendar feed")
            views.extend(interaction_views(viewer, page.items))
            cursor = page.next_cursor
            if cursor is None:
                break
    body = feed_document(account.name, views[:MAX_EVENTS], str(request.base_url))
    return Response(body, media_type=MEDIA, headers={"Cache-Control": "private, max-age=300"})


async def create_api(request: Request) -> Response:
    """POST /api/accounts/{id}/calendar-feed: a new link (the previous one revoked)."""
    async with hub_of(request).sessions() as session, session.begin():
        account = await account_or_404(session, object_id(request))
        made, token = await create_feed(session, account.id, viewer_of(request).email)
    return JSONResponse(_feed_json(made, _url(request, token)), status_code=201)


async def revoke_api(request: Request) -> Response:
    """DELETE /api/accounts/{id}/calendar-feed: the account's link stops working (404)."""
    async with hub_of(request).sessions() as session, session.begin():
        account = await account_or_404(session, object_id(request))
        revoked = await revoke_feeds(session, account.id, viewer_of(request).email)
    return JSONResponse({"account_id": account.id, "revoked": revoked})


async def page(request: Request, token: str = "") -> Response:
    """The account's subscription: whether a link is live, and the link itself only right
    after it was made (the token is not stored)."""
    async with hub_of(request).reads() as session:
        account = await account_or_404(session, object_id(request))
        live = await live_feed(session, account.id)
    return render(
        request,
        "calendar_feed.html",
        account=account,
        live=live,
        url=_url(request, token) if token else "",
    )


async def create_page(request: Request) -> Response:
    async with hub_of(request).sessions() as session, session.begin():
        account = await account_or_404(session, object_id(request))
        _, token = await create_feed(session, account.id, viewer_of(request).email)
    return await page(request, token)


async def revoke_page(request: Request) -> Response:
    async with hub_of(request).sessions() as session, session.begin():
        account = await account_or_404(session, object_id(request))
        await revoke_feeds(session, account.id, viewer_of(request).email)
    return RedirectResponse(f"/accounts/{account.id}/calendar-feed", 303)


_FEED = "/api/accounts/{id:int}/calendar-feed"
ENDPOINTS = [
    Endpoint(
        "/calendars/{token}.ics",
        feed,
        Permission.PUBLIC,
        summary="an account's meetings as iCalendar (a subscription link; the token is the "
        "credential): the last 180 days and the next 400, as the link's creator may see them",
        params=(Param("token", "path", doc="the token of the link", required=True),),
        ok=Answer(200, "the VCALENDAR", None, media="text/calendar"),
        errors={404: "no live link with this token"},
    ),
    Endpoint(
        _FEED,
        create_api,
        Permission.MERGE,
        ("POST",),
        "make the account's calendar subscription link (managers); the previous link stops "
        "working; the token is shown only in this answer",
        ID,
        ok=Answer(201, "the new link", "CalendarFeedCreated"),
        errors={404: "no such account"},
    ),
    Endpoint(
        _FEED,
        revoke_api,
        Permission.MERGE,
        ("DELETE",),
        "revoke the account's calendar subscription link (managers): it answers 404 from now",
        ID,
        ok=Answer(200, "how many links were live", "CalendarFeedRevoked"),
        errors={404: "no such account"},
    ),
    Endpoint("/accounts/{id:int}/calendar-feed", page, Permission.MERGE),
    Endpoint("/accounts/{id:int}/calendar-feed", create_page, Permission.MERGE, ("POST",)),
    Endpoint("/accounts/{id:int}/calendar-feed/revoke", revoke_page, Permission.MERGE, ("POST",)),
]
