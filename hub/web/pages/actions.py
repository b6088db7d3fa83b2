"""The forms that change something: sending a mail and correcting an item's attribution.

The guard (hub.web.endpoints) has checked the role and the form's CSRF token before these run;
they act exactly as the API does, through the same hub functions.
"""

from __future__ import annotations

from sqlalchemy import func, select
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from hub.policy import Permission
from hub.web.commands import send
from hub.web.endpoints import Endpoint
from hub.web.html import render, safe_next
from hub.web.http import ApiError, hub_of, object_id, viewer_of
from hub.web.reads import visible_interaction
from hub.web.views import interaction_view
from storage.corrections import CorrectionError, correct
from storage.tables import AccountRow, InteractionRow


async def send_form(request: Request) -> Response:
    form = await request.form()
    back = safe_next(str(form.get("back", "/")))
    values = {k: str(form.get(k, "")) for k in ("to", "cc", "subject", "body", "in_reply_to")}
    outcome = await send(request, values)
    return render(request, "sent.html", outcome=outcome, back=back)


async def correct_form(request: Request) -> Response:
    """The buttons on an interaction: the same correction as the API, by account name."""
    interaction_id = object_id(request)
    form = await request.form()
    viewer = viewer_of(request)
    async with hub_of(request).sessions() as session, session.begin():
        row, _ = await visible_interaction(request, session)
        raw_id, name = str(form.get("account_id", "")), str(form.get("account", "")).strip()
        if raw_id.isdigit():
            account_id = int(raw_id)
        else:
            found = (
                await session.execute(
                    select(AccountRow.id).where(func.lower(AccountRow.name) == name.lower())
                )
            ).scalar_one_or_none()
            if found is None:
                raise ApiError(422, "bad_correction", f"There is no account named {name[:100]!r}.")
            account_id = found
        try:
            await correct(
                session,
                row,
                actor=viewer.email,
                action=str(form.get("action", "")),
                account_id=account_id,
                contact_id=None,
            )
        except CorrectionError as e:
            raise ApiError(422, "bad_correction", str(e)) from e
    async with hub_of(request).sessions() as session:
        corrected = await session.get(InteractionRow, interaction_id)
        still = corrected is not None and interaction_view(viewer, corrected) is not None
    # Unlinked from its last customer, a mail of somebody else's mailbox is theirs alone again.
    return RedirectResponse(f"/interactions/{interaction_id}" if still else "/", 303)


ENDPOINTS = [
    Endpoint("/send", send_form, Permission.SEND, ("POST",)),
    Endpoint("/interactions/{id:int}/attributions", correct_form, Permission.CORRECT, ("POST",)),
]
