"""/pop?phone=: the screen pop a softphone or PBX opens in the agent's logged-in browser when
the phone rings (login required: without a session it goes through the login and back).

A known number shows who is calling, their account and owner, the latest interactions and
the open review questions, with links to the timelines; an unknown one offers "create contact
at account ..." and the search. Who sees what: as /api/lookup (hub.web.lookup, the same read
model): items as the policy allows, questions and creating a contact for roles that review.
Creating the contact settles the number's open question exactly as the review queue's
"create contact" does (hub.web.commands.settle), so the audit and the re-attribution of the
caller's stored calls are the same.
"""

from __future__ import annotations

from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from hub.model import ReviewKind
from hub.policy import Permission
from hub.search import NotOneRecord, one_record
from hub.web.commands import settle
from hub.web.endpoints import Endpoint
from hub.web.html import render
from hub.web.http import ApiError, hub_of
from hub.web.lookup import identity_of, look_up
from matching.identities import normalize_phone
from storage import directory_search


async def pop_page(request: Request) -> Response:
    if not (request.query_params.get("phone") or request.query_params.get("email")):
        return render(request, "pop.html", found=None, asked="")
    phone, email = identity_of(request)
    found = await look_up(request, phone, email)
    # A new contact settles an open question about the number: without one the review
    # command has nothing to settle (and the number may be a stranger's the viewer cannot see).
    open_keys = {q.key for q in found.questions if q.kind != ReviewKind.SHARED_DOMAIN}
    return render(
        request,
        "pop.html",
        found=found,
        asked=request.query_params.get("phone") or request.query_params.get("email") or "",
        creatable=found.may_review and phone in open_keys,
        done=request.query_params.get("created") == "1",
    )


async def create_contact(request: Request) -> Response:
    """POST /pop: a contact for the unknown number, at the account typed or picked."""
    form = await request.form()
    hub = hub_of(request)
    number = normalize_phone(str(form.get("phone") or ""), hub.settings.default_region)
    if number is None:
        raise ApiError(422, "bad_settlement", "phone: give the caller's number with area code")
    typed = str(form.get("account") or "").strip()
    if not typed:
        raise ApiError(422, "bad_settlement", "account: say at which account to add the contact")
    async with hub.reads() as session:
        try:
            account_id = await one_record(hub, session, directory_search.ACCOUNT, typed)
        except NotOneRecord as e:
            raise ApiError(422, "bad_settlement", str(e)) from e
    await settle(
        request,
        {
            "key": number,
            "settlement": "create-contact",
            "account_id": account_id,
            "name": str(form.get("name") or ""),
        },
    )
    return RedirectResponse("/pop?" + urlencode({"phone": number, "created": "1"}), 303)


ENDPOINTS = [
    Endpoint("/pop", pop_page, Permission.READ),
    Endpoint("/pop", create_contact, Permission.REVIEW, ("POST",)),
]
