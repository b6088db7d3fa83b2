"""What the API and the pages' forms both do: send a mail, settle a review case, correct an
item's customer links.

One implementation each, so a click and an API call act alike, fail with the same message and
leave the same audit entry; each caller only turns an ApiError into its own kind of answer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request

from connectors.base import ConfigurationError, ConnectorError
from hub.admin import DirectoryMerge, merge_accounts, merge_contacts
from hub.review import NoOpenQuestion, Settlement, settle_case
from hub.sending import (
    NoOwnMailConnector,
    Outgoing,
    SendError,
    SendOutcome,
    send_mail,
    sending_connector_for,
)
from hub.web.http import ApiError, hub_of, optional_id, text_field, viewer_of
from hub.web.reads import scope_of, visible_interaction
from hub.web.views import InteractionView, interaction_view
from storage import queries
from storage.corrections import CorrectionError, correct
from storage.directory import DirectoryError
from storage.merge import MergeError, UnknownRecord
from storage.tables import InteractionRow

SETTLEMENTS = ", ".join(s.value for s in Settlement)


def outgoing_from(request: Request, values: dict[str, Any]) -> Outgoing:
    """The send request as the API and the web form both give it; SendError names a field."""

    def addresses(name: str) -> list[str]:
        value = values.get(name) or []
        if isinstance(value, str):
            value = [part for part in value.replace(";", ",").split(",") if part.strip()]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise SendError(f"{name}: expected a list of email addresses")
        return [v.strip() for v in value]

    for name in ("subject", "body", "in_reply_to", "connector"):
        if not isinstance(values.get(name, ""), str):
            raise SendError(f"{name}: expected a string")
    return Outgoing(
        sender=viewer_of(request).email,
        to=addresses("to"),
        cc=addresses("cc"),
        subject=values.get("subject", ""),
        body=values.get("body", ""),
        in_reply_to=values.get("in_reply_to", "").strip(),
    )


async def merge(request: Request, what: str, keep: int, drop: int) -> DirectoryMerge:
    """Fold record `drop` into `keep` ("account" or "contact"), for the API and the pages'
    forms alike. An unknown `keep` is a 404; an unknown or same `drop` is the request's fault."""
    fold = merge_accounts if what == "account" else merge_contacts
    try:
        return await fold(hub_of(request), keep, drop, actor=viewer_of(request).email)
    except UnknownRecord as e:
        if e.which == "keep":
            raise ApiError(404, "not_found", str(e)) from e
        raise ApiError(422, "bad_merge", f"from: {e}") from e
    except MergeError as e:
        raise ApiError(422, "bad_merge", str(e)) from e


async def _threaded(request: Request, outgoing: Outgoing) -> Outgoing:
    """A reply carries the thread's References: those of the mail replied to, read from
    storage when the sender may see that mail (otherwise only its Message-ID, as given)."""
    async with hub_of(request).reads() as session:
        references = await queries.references_of(session, scope_of(request), outgoing.in_reply_to)
    return replace(outgoing, references=references)


async def send(request: Request, values: dict[str, Any]) -> SendOutcome:
    """Send for the signed-in user; errors become ApiError with a status that says whose fault.

    Only through a connector the user owns (hub.policy.may_send_through); connector errors
    reach only that owner, so they may name the owner's own server.
    """
    hub = hub_of(request)
    try:
        outgoing = outgoing_from(request, values)
        if outgoing.in_reply_to:
            outgoing = await _threaded(request, outgoing)
        connector = await sending_connector_for(hub, viewer_of(request), values.get("connector"))
        return await send_mail(hub, connector, outgoing)
    except SendError as e:
        raise ApiError(422, "bad_message", str(e)) from e
    except NoOwnMailConnector as e:
        raise ApiError(403, "no_mail_connector", str(e)) from e
    except ConfigurationError as e:
        raise ApiError(503, "sending_not_configured", str(e)) from e
    except ConnectorError as e:
        raise ApiError(502, "send_failed", str(e)) from e


async def settle(request: Request, values: dict[str, Any]) -> dict[str, int]:
    """Shared by the API and the form; ApiError carries a message for the person."""
    code = "bad_settlement"
    key = text_field(values, "key", limit=320, code=code)
    if not key:
        raise ApiError(422, "bad_settlement", "key: say which address, number or domain")
    try:
        settlement = Settlement(text_field(values, "settlement", limit=40, code=code))
    except ValueError as e:
        raise ApiError(422, "bad_settlement", f"settlement: use one of {SETTLEMENTS}") from e
    try:
        outcome = await settle_case(
            hub_of(request),
            key=key,
            settlement=settlement,
            actor=viewer_of(request).email,
            contact_id=optional_id(values, "contact_id", code=code),
            account_id=optional_id(values, "account_id", code=code),
            name=text_field(values, "name", limit=300, code=code),
            viewer=viewer_of(request),
        )
    except NoOpenQuestion as e:
        raise ApiError(404, "not_found", str(e)) from e
    except (DirectoryError, ValueError) as e:
        raise ApiError(422, "bad_settlement", str(e)) from e
    return {"settled": outcome.settled, "rematched": outcome.rematched.changed}


Resolve = Callable[[AsyncSession], Awaitable[tuple[int, int | None]]]


async def correct_link(request: Request, action: str, resolve: Resolve) -> InteractionView | None:
    """Add or remove a customer link on the item the path names.

    Whether the item exists for the caller is settled first, so that an error in the request
    cannot tell; `resolve` then reads (account_id, contact_id) from the request. Returns the
    item as the caller sees it now: None once its last link is gone and it is private to its
    owners again.
    """
    viewer = viewer_of(request)
    async with hub_of(request).sessions() as session, session.begin():
        row, _ = await visible_interaction(request, session)
        account_id, contact_id = await resolve(session)
        try:
            await correct(
                session,
                row,
                actor=viewer.email,
                action=action,
                account_id=account_id,
                contact_id=contact_id,
            )
        except CorrectionError as e:
            raise ApiError(422, "bad_correction", str(e)) from e
        interaction_id = row.id
    async with hub_of(request).sessions() as session:
        corrected = await session.get(InteractionRow, interaction_id)
        return interaction_view(viewer, corrected) if corrected else None
