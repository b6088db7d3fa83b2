"""/api/accounts and /api/contacts: the directory, each record's timeline, merges, and the
call-center look-up. The directory is readable by every role; items by `disclosure`."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from hub.policy import Permission
from hub.web.commands import merge
from hub.web.endpoints import ID, PAGING, TIMELINE, Answer, Endpoint, Param
from hub.web.http import (
    ApiError,
    JSONResponse,
    hub_of,
    json_object,
    name_cursor,
    not_found,
    object_id,
    page_limit,
    search_words,
    time_cursor,
    timeline_filter,
)
from hub.web.lookup import identity_of, look_up
from hub.web.reads import account_or_404, contact_or_404, id_or_404, page_of_views, scope_of
from hub.web.views import account_view, contact_view
from storage import queries
from storage.tables import MAX_ID, AccountRow, ContactRow


async def accounts(request: Request) -> Response:
    async with hub_of(request).reads() as session:
        page = await queries.list_accounts(
            session, search_words(request), name_cursor(request), page_limit(request)
        )
    items = [account_view(r).as_json() for r in page.items]
    return JSONResponse({"items": items, "next_cursor": page.next_cursor})


async def _account_json(request: Request) -> dict[str, Any]:
    async with hub_of(request).reads() as session:
        row = await account_or_404(session, object_id(request))
        contacts = await queries.contacts_of(session, row.id)
    return {
        **account_view(row).as_json(),
        "contacts": [contact_view(c).as_json() for c in contacts],
    }


async def account(request: Request) -> Response:
    return JSONResponse(await _account_json(request))


async def account_timeline(request: Request) -> Response:
    async with hub_of(request).reads() as session, session.begin():
        account_id = object_id(request)
        page = await queries.account_timeline(
            session,
            scope_of(request),
            account_id,
            timeline_filter(request),
            time_cursor(request),
            page_limit(request),
        )
        if not page.items:  # an account with items exists: only an empty page asks
            await id_or_404(session, AccountRow, account_id, "account")
        views, cursor = await page_of_views(request, session, page, "timeline")
    return JSONResponse({"items": [v.as_json() for v in views], "next_cursor": cursor})


async def contact(request: Request) -> Response:
    async with hub_of(request).reads() as session:
        row = await contact_or_404(session, object_id(request))
    return JSONResponse(contact_view(row).as_json())


async def contact_timeline(request: Request) -> Response:
    async with hub_of(request).reads() as session, session.begin():
        contact_id = object_id(request)
        page = await queries.contact_timeline(
            session,
            scope_of(request),
            contact_id,
            timeline_filter(request),
            time_cursor(request),
            page_limit(request),
        )
        if not page.items:  # an contact with items exists: only an empty page asks
            await id_or_404(session, ContactRow, contact_id, "contact")
        views, cursor = await page_of_views(request, session, page, "timeline")
    return JSONResponse({"items": [v.as_json() for v in views], "next_cursor": cursor})


async def lookup(request: Request) -> Response:
    """Call-center screen pop: who is this number or address, and what happened lately
    (hub.web.lookup, shared with the /pop page)."""
    phone, email = identity_of(request)
    return JSONResponse((await look_up(request, phone, email)).as_json())


async def _merge_from(request: Request, what: str) -> int:
    """The body's `from`: the id of the duplicate to fold into the record the path names."""
    values = await json_object(request)
    drop = values.get("from")
    if not isinstance(drop, int) or isinstance(drop, bool):
        raise ApiError(422, "bad_merge", f"from: expected the id of the {what} to merge")
    if not 1 <= drop <= MAX_ID:
        raise ApiError(422, "bad_merge", f"from: there is no {what} {drop}")
    return drop


async def merge_account(request: Request) -> Response:
    """POST /api/accounts/{id}/merge: account `from` is folded into this one and deleted."""
    drop = await _merge_from(request, "account")
    result = await merge(request, "account", object_id(request), drop)
    return JSONResponse({"account": await _account_json(request), "merge": result.as_json()})


async def merge_contact(request: Request) -> Response:
    """POST /api/contacts/{id}/merge: contact `from` is folded into this one and deleted."""
    drop = await _merge_from(request, "contact")
    result = await merge(request, "contact", object_id(request), drop)
    async with hub_of(request).sessions() as session:
        row = await session.get(ContactRow, object_id(request))
        if row is None:
            raise not_found(f"contact {object_id(request)}")
    return JSONResponse({"contact": contact_view(row).as_json(), "merge": result.as_json()})


def _merge(what: str, owns: str, handler: Any) -> Endpoint:
    return Endpoint(
        f"/api/{what}s/{{id:int}}/merge",
        handler,
        Permission.MERGE,
        ("POST",),
        f"merge the duplicate {what} `from` into this one: its {owns} and attributions move "
        "here (manual links stay manual, tombstones are kept), the stored items it touched are "
        f"attributed anew, `from` is deleted; recorded in the audit log",
        ID,
        body={
            "type": "object",
            "required": ["from"],
            "properties": {
                "from": {"type": "integer", "description": f"id of the {what} to merge and delete"}
            },
        },
        ok=Answer(200, f"the {what} after the merge, and what moved", f"{what.title()}Merge"),
        errors={
            400: "the body is not a JSON object",
            404: f"no such {what}",
            422: f"`from` is missing, names no {what}, or names this one",
        },
    )


ENDPOINTS = [
    Endpoint(
        "/api/accounts",
        accounts,
        Permission.READ,
        summary="accounts, by name; q searches names and domains",
        params=(Param("q"), *PAGING),
        ok=Answer(200, "a page of accounts", "AccountPage"),
    ),
    Endpoint(
        "/api/accounts/{id:int}",
        account,
        Permission.READ,
        summary="one account with its contacts",
        params=ID,
        ok=Answer(200, "the account", "AccountWithContacts"),
        errors={404: "no such account"},
    ),
    Endpoint(
        "/api/accounts/{id:int}/timeline",
        account_timeline,
        Permission.READ,
        summary="the account's combined timeline: the next upcoming items first (up to 5, "
        "soonest first), then the past newest first, as far as the caller may see",
        params=(*ID, *TIMELINE, *PAGING),
        ok=Answer(200, "a page of interactions", "InteractionPage"),
        errors={404: "no such account"},
    ),
    Endpoint(
        "/api/contacts/{id:int}",
        contact,
        Permission.READ,
        summary="one contact",
        params=ID,
        ok=Answer(200, "the contact", "Contact"),
        errors={404: "no such contact"},
    ),
    Endpoint(
        "/api/contacts/{id:int}/timeline",
        contact_timeline,
        Permission.READ,
        summary="the contact's timeline: the next upcoming items first, then the past newest "
        "first, as far as the caller may see",
        params=(*ID, *TIMELINE, *PAGING),
        ok=Answer(200, "a page of interactions", "InteractionPage"),
        errors={404: "no such contact"},
    ),
    Endpoint(
        "/api/lookup",
        lookup,
        Permission.READ,
        summary="who is this phone number or address (screen pop): contacts, accounts, the "
        "owner, the latest interactions as far as the caller may see them, and the open review "
        "questions about it (for roles that review)",
        params=(
            Param("phone", doc="any format: national, +E.164, 00-prefixed, spaces, dashes, (0)"),
            Param("email"),
        ),
        ok=Answer(200, "contacts, accounts, the latest items, open questions", "Lookup"),
        errors={400: "neither phone nor email, or neither can be read"},
    ),
    _merge("account", "domains, contacts", merge_account),
    _merge("contact", "emails, phones", merge_contact),
]
