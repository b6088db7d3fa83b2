"""The pages people read: accounts, an account's or a contact's timeline, one interaction, and
their own unmatched items. Every item goes through the policy (hub.web.views)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from hub.display import mail_html
from hub.policy import Permission
from hub.search import search
from hub.sending import own_mail_connectors
from hub.web.call_notes import notes_shown
from hub.web.endpoints import Endpoint
from hub.web.html import PAGE_SIZE, render
from hub.web.http import (
    ApiError,
    hub_of,
    name_cursor,
    object_id,
    search_words,
    time_cursor,
    timeline_filter,
    viewer_of,
)
from hub.web.pages import notes
from hub.web.reads import (
    account_names,
    account_or_404,
    contact_or_404,
    note_reads,
    page_of_views,
    scope_of,
    visible_interaction,
)
from hub.web.security import CSP_REMOTE_IMAGES
from hub.web.views import (
    InteractionView,
    ThreadRow,
    account_view,
    contact_view,
    thread_rows,
)
from storage import queries
from storage.call_notes import OUTCOMES, CallNote, notes_of
from storage.items import bodies_of


def _filters(request: Request) -> dict[str, str]:
    return {k: request.query_params.get(k, "") for k in ("channel", "since", "until", "q")}


async def accounts(request: Request) -> Response:
    q = search_words(request) or ""
    async with hub_of(request).reads() as session:
        result = await queries.list_accounts(session, q or None, name_cursor(request), PAGE_SIZE)
    views = [account_view(r) for r in result.items]
    return render(request, "accounts.html", q=q, accounts=views, next_cursor=result.next_cursor)


async def _compose(request: Request) -> bool:
    """Whether to offer the mail form: only to someone with a mailbox of their own to send from."""
    return bool(await own_mail_connectors(hub_of(request), viewer_of(request)))


async def _header(
    session: AsyncSession, request: Request, kind: str, key: int, f: queries.TimelineFilter
) -> dict[str, Any]:
    """What a timeline's head shows: counts per channel (every channel present, whatever the
    filter), last and next contact, and the total the filter leaves to page through (unknown
    for a text search, which would have to find every hit to count them)."""
    scope = scope_of(request)
    head = await queries.timeline_head(session, scope, kind, key, datetime.now(UTC))
    counted, last, next_ = head.counts, head.last_at, head.next_at
    if f.since or f.until:
        ranged = await queries.channel_counts(session, scope, kind, key, f.since, f.until)
    else:
        ranged = counted
    total = None
    if not f.q:
        total = ranged.counts.get(f.channel, 0) if f.channel else sum(ranged.counts.values())
        if not ranged.complete:
            total = min(total, queries.COUNTED)  # shown as "1,000+"
    counts = counted.counts
    channels = sorted(counts, key=lambda c: (-counts[c], c))
    return {"counts": {c: counts[c] for c in channels}, "last_at": last, "next_at": next_,
            "total": total, "complete": counted.complete, "total_complete": ranged.complete,
            "counted_at_most": queries.COUNTED}  # fmt: skip


async def _rows(
    session: AsyncSession, request: Request, items: list[InteractionView]
) -> list[ThreadRow]:
    """The page's mails folded per thread, each thread's size as the reader may see it."""
    threads = {v.thread_id for v in items if v.channel == "email" and v.thread_id}
    sizes = await queries.thread_sizes(session, scope_of(request), threads)
    return thread_rows(items, sizes)


async def account(request: Request) -> Response:
    scope = scope_of(request)
    f = timeline_filter(request)
    async with hub_of(request).reads() as session, session.begin():
        row = await account_or_404(session, object_id(request))
        contacts = [contact_view(c) for c in await queries.contacts_of(session, row.id)]
        page = await queries.account_timeline(
            session, scope, row.id, f, time_cursor(request), PAGE_SIZE
        )
        items, cursor = await page_of_views(request, session, page, "timeline")
        header = await _header(session, request, "account", row.id, f)
        rows = await _rows(session, request, items)
        account_ = account_view(row)
    return render(
        request,
        "account.html",
        account=account_,
        contacts=contacts,
        items=items,
        rows=rows,
        next_cursor=cursor,
        newer=page,
        **header,
        filters=_filters(request),
        known_addresses=[e for c in contacts for e in c.emails],
        compose_to="",
        may_send=await _compose(request),
        may_merge=viewer_of(request).may(Permission.MERGE),
        merged=request.session.pop("merged", ""),
    )


async def contact(request: Request) -> Response:
    scope = scope_of(request)
    f = timeline_filter(request)
    async with hub_of(request).reads() as session, session.begin():
        row = await contact_or_404(session, object_id(request))
        linked = {row.account_id} if row.account_id else set()
        account_row = (await queries.accounts_by_ids(session, linked)).get(row.account_id or 0)
        page = await queries.contact_timeline(
            session, scope, row.id, f, time_cursor(request), PAGE_SIZE
        )
        items, cursor = await page_of_views(request, session, page, "timeline")
        header = await _header(session, request, "contact", row.id, f)
        rows = await _rows(session, request, items)
        person = contact_view(row)
        company = account_view(account_row) if account_row else None
    return render(
        request,
        "contact.html",
        contact=person,
        account=company,
        items=items,
        rows=rows,
        next_cursor=cursor,
        newer=page,
        **header,
        filters=_filters(request),
        known_addresses=list(person.emails),
        compose_to=person.emails[0] if person.emails else "",
        may_send=await _compose(request),
        may_merge=viewer_of(request).may(Permission.MERGE),
        merged=request.session.pop("merged", ""),
    )


THREAD_LIMIT = 100  # messages of one thread on a mail's page


def _reply(viewer_email: str, item: InteractionView) -> dict[str, Any]:
    """The reply form, filled: to the sender (or, replying to one's own mail, to its
    recipients), "Re:" once, the text quoted, threaded by In-Reply-To and References."""
    sender = next((p.address for p in item.participants if p.role == "from"), "")
    if sender.lower() == viewer_email.lower():
        to = [p.address for p in item.participants if p.role == "to"]
    else:
        to = [sender] if sender else []
    subject = item.subject or ""
    if not re.match(r"(?i)\s*(re|aw|sv|antw)\s*:", subject):
        subject = f"Re: {subject}"
    who = next((p.shown for p in item.participants if p.role == "from"), sender)
    quoted = "\n".join(f"> {line}" for line in (item.body_text or "").splitlines()[:400])
    return {
        "compose_label": "Reply",
        "compose_to": ", ".join(to),
        "compose_subject": subject,
        "compose_body": f"\n\n{who} wrote:\n{quoted}\n",
        "in_reply_to": item.message_id,
        "known_addresses": [p.address for p in item.participants if p.kind == "email"],
    }


async def interaction(request: Request) -> Response:
    """One item; a mail's remote images only after the reader asked (`?images=1`), per mail.
    A mail shows its whole thread and, to whom may send, a filled reply form."""
    remote = request.query_params.get("images") == "1"
    async with hub_of(request).reads() as session, session.begin():
        row, view = await visible_interaction(request, session)
        await note_reads(request, session, [row], "detail")
        thread: list[InteractionView] = []
        bodies: dict[int, str] = {}
        if view.channel == "email" and view.thread_id:
            stored = await queries.thread_of(
                session, scope_of(request), view.thread_id, THREAD_LIMIT
            )
            if len(stored) > 1:
                page = queries.Page(stored, None)
                thread, _ = await page_of_views(request, session, page, "thread")
                readable = [m.id for m in thread if m.snippet is not None and m.id != view.id]
                bodies = await bodies_of(session, readable)
        names = await account_names(session, [view])
        call_notes: list[CallNote] | None = None
        if notes_shown(view):
            call_notes = await notes_of(session, view.id)
    html = None
    if view.body_text is not None:
        html = await mail_html(hub_of(request), row, remote_images=remote)
    headers = {"Content-Security-Policy": CSP_REMOTE_IMAGES} if remote else None
    reply: dict[str, Any] = {}
    if view.channel == "email" and view.message_id and view.body_text is not None:
        if await _compose(request):
            reply = _reply(viewer_of(request).email, view)
    return render(
        request,
        "interaction.html",
        headers=headers,
        item=view,
        mail=html,
        remote_images=remote,
        accounts=names,
        may_correct=viewer_of(request).may(Permission.CORRECT),
        call_notes=call_notes,
        outcomes=OUTCOMES,
        thread=thread,
        bodies=bodies,
        reply=reply,
        **reply,
    )


SEARCH_LIMIT = 20  # per group on the page


async def search_page(request: Request) -> Response:
    """The header's search. A phone number that names one contact opens the caller's page."""
    q = (search_words(request) or "").strip()
    hub = hub_of(request)
    if not q:
        return render(request, "search.html", q="")
    async with hub.reads() as session:
        found = await search(hub, session, scope_of(request), q, SEARCH_LIMIT)
        if found.caller is not None:
            return RedirectResponse(f"/contacts/{found.caller.id}", status_code=303)
        items, _ = await page_of_views(
            request, session, queries.Page(found.interactions, None), "search"
        )
        linked = {c.account_id for c in found.contacts if c.account_id}
        names = {i: a.name for i, a in (await queries.accounts_by_ids(session, linked)).items()}
    return render(
        request,
        "search.html",
        q=q,
        limit=SEARCH_LIMIT,
        accounts=[account_view(a) for a in found.accounts],
        contacts=[contact_view(c) for c in found.contacts],
        account_names=names,
        items=items,
        phone_or_address=found.query.identity,
    )


async def unmatched(request: Request) -> Response:
    """The viewer's own unattributed items (for admins also those of sources nobody owns), in
    tabs by why matching left them: unknown parties (the ones to assign), internal, bulk."""
    tab = request.query_params.get("tab") or "unknown"
    if tab not in queries.UNMATCHED_TABS:
        raise ApiError(400, "bad_tab", f"tab: use one of {', '.join(queries.UNMATCHED_TABS)}")
    f = queries.TimelineFilter(unmatched_as=tab)
    async with hub_of(request).reads() as session, session.begin():
        page = await queries.list_interactions(
            session,
            scope_of(request),
            unmatched=True,
            f=f,
            cursor=time_cursor(request),
            limit=PAGE_SIZE,
        )
        items, cursor = await page_of_views(request, session, page, "listing")
    return render(
        request,
        "unmatched.html",
        items=items,
        next_cursor=cursor,
        tab=tab,
        tabs=queries.UNMATCHED_TABS,
        may_correct=viewer_of(request).may(Permission.CORRECT),
    )


ENDPOINTS = [
    Endpoint("/accounts", accounts, Permission.READ),
    Endpoint("/accounts/{id:int}", account, Permission.READ),
    Endpoint("/contacts/{id:int}", contact, Permission.READ),
    Endpoint("/interactions/{id:int}", interaction, Permission.READ),
    Endpoint("/unmatched", unmatched, Permission.READ),
    Endpoint("/search", search_page, Permission.READ),
    *notes.ENDPOINTS,
]
