"""The forms that change something: sending a mail and correcting an item's attribution.

The guard (hub.web.endpoints) has checked the role and the form's CSRF token before these run;
they act exactly as the API does, through the same hub functions.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from hub.policy import Permission
from hub.search import NotOneRecord, one_record
from hub.web.commands import correct_link, merge, send
from hub.web.endpoints import Endpoint
from hub.web.html import render, safe_next
from hub.web.http import ApiError, hub_of, object_id, required_id
from storage import directory_search


async def send_form(request: Request) -> Response:
    """Send; when it fails, the draft comes back in the form with what went wrong, so that
    nothing typed is lost (the message says what IT must do where IT must act)."""
    form = await request.form()
    back = safe_next(str(form.get("back", "/")))
    values = {k: str(form.get(k, "")) for k in ("to", "cc", "subject", "body", "in_reply_to")}
    try:
        outcome = await send(request, values)
    except ApiError as e:
        return render(
            request, "unsent.html", status=e.status, problem=e.message, draft=values, back=back
        )
    return render(request, "sent.html", outcome=outcome, back=back)


async def correct_form(request: Request) -> Response:
    """The buttons on an interaction: the same correction as the API, by account name."""
    form = await request.form()

    async def account(session: AsyncSession) -> tuple[int, int | None]:
        """By id (the buttons) or as a person names it: a name or a word of it, a domain."""
        raw_id, name = str(form.get("account_id", "")), str(form.get("account", "")).strip()
        if raw_id.isdigit():
            return required_id({"account_id": raw_id}, "account_id", code="bad_correction"), None
        if not name:
            raise ApiError(422, "bad_correction", "Name the account: its name or a domain.")
        try:
            return await one_record(hub_of(request), session, directory_search.ACCOUNT, name), None
        except NotOneRecord as e:
            raise ApiError(422, "bad_correction", str(e)) from e

    still = await correct_link(request, str(form.get("action", "")), account)
    if form.get("back"):  # assigned from a list (Unmatched): back to the list's next items
        return RedirectResponse(safe_next(str(form.get("back"))), 303)
    # Unlinked from its last customer, a mail of somebody else's mailbox is theirs alone again.
    return RedirectResponse(f"/interactions/{object_id(request)}" if still else "/", 303)


async def _merge_form(request: Request, what: str) -> Response:
    """ "Merge a duplicate into this one" on an account's or a contact's page: the duplicate
    named as people know it (typeahead), folded in as the API does (hub.web.commands.merge)."""
    form = await request.form()
    keep, typed = object_id(request), str(form.get("duplicate", "")).strip()
    if not typed:
        raise ApiError(422, "bad_merge", f"Name the duplicate {what}: its name, address or number.")
    kind = directory_search.ACCOUNT if what == "account" else directory_search.CONTACT
    async with hub_of(request).reads() as session:
        try:
            drop = await one_record(hub_of(request), session, kind, typed)
        except NotOneRecord as e:
            raise ApiError(422, "bad_merge", str(e)) from e
    result = await merge(request, what, keep, drop)
    request.session["merged"] = " ".join(result.summary())[:600]
    return RedirectResponse(f"/{what}s/{keep}", 303)


async def merge_account_form(request: Request) -> Response:
    return await _merge_form(request, "account")


async def merge_contact_form(request: Request) -> Response:
    return await _merge_form(request, "contact")


ENDPOINTS = [
    Endpoint("/send", send_form, Permission.SEND, ("POST",)),
    Endpoint("/interactions/{id:int}/attributions", correct_form, Permission.CORRECT, ("POST",)),
    Endpoint("/accounts/{id:int}/merge", merge_account_form, Permission.MERGE, ("POST",)),
    Endpoint("/contacts/{id:int}/merge", merge_contact_form, Permission.MERGE, ("POST",)),
]
