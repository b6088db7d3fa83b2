"""The start page: what a user works on, the moment they log in.

Their own accounts (owner = their address) with last contact and the items of the last 30
days, the latest activity on those accounts, their mailbox's unmatched items and the open
review questions they may answer, each with a count. Who sees what: the accounts and counts
are directory facts every role may read; items go through the policy like everywhere else
(page_of_views), unmatched items are the viewer's own, and review cases are only shown to
roles that review, as far as they may see the items. Missed calls (storage.missed_calls) are
those whose contact or account names the viewer as owner, still open, each shown only if the
viewer may see the call; "done" closes one of the viewer's own, nobody else's (404).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from hub.policy import Permission
from hub.web.endpoints import Endpoint
from hub.web.html import render
from hub.web.http import hub_of, not_found, object_id, viewer_of
from hub.web.reads import page_of_views, scope_of
from storage import missed_calls, overview, queries, review
from storage.items import stored_interactions

RECENT_DAYS = 30
ACTIVITY = 15  # items of "recent activity"
WAITING = 10  # unmatched items and review cases shown, and counted up to


async def start(request: Request) -> Response:
    viewer, scope = viewer_of(request), scope_of(request)
    since = datetime.now(UTC) - timedelta(days=RECENT_DAYS)
    async with hub_of(request).reads() as session:
        owned, more_owned = await overview.owned_accounts(session, viewer.email, since)
        recent_ids = await overview.recent_on(session, [a.id for a in owned], since, ACTIVITY)
        recent = queries.Page(await stored_interactions(session, recent_ids), None)
        activity, _ = await page_of_views(request, session, recent, "start")
        unmatched_page = await queries.list_interactions(
            session, scope, unmatched=True, limit=WAITING
        )
        unmatched, more_unmatched = await page_of_views(request, session, unmatched_page, "start")
        missed = await missed_calls.open_for(session, viewer.email, WAITING + 1)
        more_missed = len(missed) > WAITING
        missed = missed[:WAITING]
        calls = queries.Page(
            await stored_interactions(session, [m.interaction_id for m in missed]), None
        )
        missed_views, _ = await page_of_views(request, session, calls, "start")
        shown = {view.id: view for view in missed_views}
        cases = None
        if viewer.may(Permission.REVIEW):
            cases = await review.list_open(session, scope, None, None, WAITING)
    return render(
        request,
        "start.html",
        days=RECENT_DAYS,
        owned=owned,
        more_owned=more_owned,
        activity=activity,
        unmatched=unmatched,
        more_unmatched=more_unmatched is not None,
        cases=cases.items if cases else None,
        more_cases=bool(cases and cases.next_cursor),
        waiting=WAITING,
        missed=[(m, shown[m.interaction_id]) for m in missed if m.interaction_id in shown],
        more_missed=more_missed,
    )


async def missed_call_done(request: Request) -> Response:
    """The owner has dealt with a missed call: it leaves their start page."""
    async with hub_of(request).sessions() as session, session.begin():
        if not await missed_calls.mark_done(session, object_id(request), viewer_of(request).email):
            raise not_found(f"open missed call {object_id(request)} of yours")
    return RedirectResponse("/#missed", 303)


ENDPOINTS = [
    Endpoint("/", start, Permission.READ),
    Endpoint("/missed-calls/{id:int}/done", missed_call_done, Permission.READ, ("POST",)),
]
