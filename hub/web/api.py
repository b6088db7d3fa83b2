"""The JSON API under /api (DESIGN.md "Public contract")."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from connectors.base import ConfigurationError, ConnectorError
from hub.admin import DirectoryMerge, merge_accounts, merge_contacts
from hub.bootstrap import Hub
from hub.sending import Outgoing, SendError, SendOutcome, send_mail, smtp_connector_for
from hub.web.auth import current_user
from hub.web.openapi import OPENAPI
from hub.web.serialize import account_json, contact_json, interaction_json, quarantine_json
from matching.identities import normalize_email, normalize_phone, parent_domains
from storage import queries
from storage.blobs import read_blob
from storage.corrections import CorrectionError, correct
from storage.merge import MergeError, UnknownRecord
from storage.tables import MAX_ID, AccountRow, AttachmentRow, Base, ContactRow, InteractionRow

Handler = Callable[[Request], Awaitable[Response]]
T = TypeVar("T", bound=Base)


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def endpoint(handler: Handler) -> Handler:
    """Authenticate, then turn ApiError and bad cursors into the documented error shape."""

    async def wrapped(request: Request) -> Response:
        user = await current_user(request)
        if user is None:
            return error(401, "unauthenticated", "a bearer token or a login session is required")
        request.state.user = user
        try:
            return await handler(request)
        except ApiError as e:
            return error(e.status, e.code, e.message)
        except queries.BadCursor as e:
            return error(400, "bad_cursor", str(e))

    return wrapped


def _hub(request: Request) -> Hub:
    return request.app.state.hub


def page_limit(request: Request) -> int:
    raw = request.query_params.get("limit", "50")
    if not raw.isdigit() or not 1 <= int(raw) <= queries.MAX_LIMIT:
        raise ApiError(400, "bad_limit", f"limit must be a number from 1 to {queries.MAX_LIMIT}")
    return int(raw)


def _date(request: Request, name: str) -> datetime | None:
    raw = request.query_params.get(name)
    if not raw:
        return None
    try:
        value = datetime.fromisoformat(raw)
    except ValueError as e:
        raise ApiError(400, "bad_date", f"{name}={raw!r} is not an ISO date or date-time") from e
    return value if value.tzinfo else value.astimezone()


def timeline_filter(request: Request) -> queries.TimelineFilter:
    channel = request.query_params.get("channel") or None
    if channel and channel not in ("email", "call", "sms", "meeting", "fax", "note"):
        raise ApiError(400, "bad_channel", f"channel={channel!r} is not a channel")
    return queries.TimelineFilter(
        channel,
        _date(request, "since"),
        _date(request, "until"),
        request.query_params.get("q") or None,
    )


def object_id(request: Request) -> int:
    value = int(request.path_params["id"])
    if value > MAX_ID:
        raise ApiError(404, "not_found", f"no object {value}")
    return value


_WHAT = {AccountRow: "account", ContactRow: "contact", InteractionRow: "interaction"}


async def get_or_404(session: AsyncSession, model: type[T], request: Request) -> T:
    """The row the path's `{id}` names, or the documented 404."""
    id_ = object_id(request)
    row = await session.get(model, id_)
    if row is None:
        raise ApiError(404, "not_found", f"There is no {_WHAT[model]} {id_}.")
    return row


def _cursor(request: Request, *shape: type) -> str | None:
    """The `cursor` parameter, checked against the shape this listing hands out.

    Storage decodes a cursor but trusts what is inside; a hand-made or truncated one must be
    answered with 400, not fail in the database.
    """
    raw = request.query_params.get("cursor") or None
    if raw is None:
        return None
    values = queries.decode_cursor(raw)
    fits = len(values) == len(shape) and all(
        isinstance(v, kind)
        and not isinstance(v, bool)
        and (not isinstance(v, int) or 0 <= v <= MAX_ID)
        for v, kind in zip(values, shape, strict=True)
    )
    if not fits:
        raise queries.BadCursor(f"cursor {raw[:40]!r} is not valid")
    return raw


def account_cursor(request: Request) -> str | None:
    return _cursor(request, str, int)


def timeline_cursor(request: Request) -> str | None:
    return _cursor(request, str, int)


def quarantine_cursor(request: Request) -> str | None:
    return _cursor(request, int)


def page_json(page: queries.Page, render: Callable[[Any], dict[str, Any]]) -> JSONResponse:
    return JSONResponse({"items": [render(x) for x in page.items], "next_cursor": page.next_cursor})


@endpoint
async def accounts(request: Request) -> Response:
    async with _hub(request).sessions() as session:
        page = await queries.list_accounts(
            session, request.query_params.get("q"), account_cursor(request), page_limit(request)
        )
    return page_json(page, account_json)


@endpoint
async def account(request: Request) -> Response:
    async with _hub(request).sessions() as session:
        row = await get_or_404(session, AccountRow, request)
        contacts = await queries.contacts_of(session, row.id)
    return JSONResponse({**account_json(row), "contacts": [contact_json(c) for c in contacts]})


@endpoint
async def account_timeline(request: Request) -> Response:
    async with _hub(request).sessions() as session:
        await get_or_404(session, AccountRow, request)
        page = await queries.account_timeline(
            session,
            object_id(request),
            timeline_filter(request),
            timeline_cursor(request),
            page_limit(request),
        )
    return page_json(page, interaction_json)


@endpoint
async def contact(request: Request) -> Response:
    async with _hub(request).sessions() as session:
        row = await get_or_404(session, ContactRow, request)
    return JSONResponse(contact_json(row))


@endpoint
async def contact_timeline(request: Request) -> Response:
    async with _hub(request).sessions() as session:
        await get_or_404(session, ContactRow, request)
        page = await queries.contact_timeline(
            session,
            object_id(request),
            timeline_filter(request),
            timeline_cursor(request),
            page_limit(request),
        )
    return page_json(page, interaction_json)


@endpoint
async def interaction(request: Request) -> Response:
    async with _hub(request).sessions() as session:
        row = await get_or_404(session, InteractionRow, request)
    return JSONResponse(interaction_json(row, full=True))


@endpoint
async def interactions(request: Request) -> Response:
    params = request.query_params
    unmatched = params.get("unmatched")
    if unmatched not in (None, "", "true", "false", "1", "0"):
        raise ApiError(400, "bad_unmatched", "unmatched must be true or false")
    async with _hub(request).sessions() as session:
        page = await queries.list_interactions(
            session,
            message_id=params.get("message_id") or None,
            connector=params.get("connector") or None,
            external_id=params.get("external_id") or None,
            unmatched=None if not unmatched else unmatched in ("true", "1"),
            f=timeline_filter(request),
            cursor=timeline_cursor(request),
            limit=page_limit(request),
        )
    return page_json(page, interaction_json)


@endpoint
async def lookup(request: Request) -> Response:
    """Call-center screen pop: who is this number or address, and what happened lately."""
    hub = _hub(request)
    phone, email = request.query_params.get("phone"), request.query_params.get("email")
    if not phone and not email:
        raise ApiError(400, "missing_query", "give phone=... or email=...")
    key_phone = normalize_phone(phone, hub.settings.default_region) if phone else None
    key_email = normalize_email(email) if email else None
    if not key_phone and not key_email:
        raise ApiError(400, "bad_identity", "that is not a phone number or an email address")
    async with hub.sessions() as session:
        contacts = await queries.contacts_by_identity(session, email=key_email, phone=key_phone)
        account_rows = await queries.accounts_by_ids(
            session, {c.account_id for c in contacts if c.account_id}
        )
        if not contacts and key_email:
            domain = key_email.rpartition("@")[2]
            if domain not in hub.free_mail:
                for row in await queries.accounts_by_domains(session, parent_domains(domain)):
                    account_rows[row.id] = row
        latest: list[dict[str, Any]] = []
        for c in contacts:
            page = await queries.contact_timeline(session, c.id, queries.TimelineFilter(), None, 10)
            latest += [interaction_json(i) for i in page.items]
        if not contacts:
            for a in account_rows.values():
                page = await queries.account_timeline(
                    session, a.id, queries.TimelineFilter(), None, 10
                )
                latest += [interaction_json(i) for i in page.items]
    latest.sort(key=lambda x: x["occurred_at"], reverse=True)
    return JSONResponse(
        {
            "query": {"phone": key_phone, "email": key_email},
            "contacts": [contact_json(c) for c in contacts],
            "accounts": [account_json(a) for a in account_rows.values()],
            "latest": latest[:10],
        }
    )


@endpoint
async def quarantine(request: Request) -> Response:
    async with _hub(request).sessions() as session:
        page = await queries.quarantine(session, quarantine_cursor(request), page_limit(request))
    return page_json(page, quarantine_json)


@endpoint
async def attachment(request: Request) -> Response:
    async with _hub(request).sessions() as session:
        row = await session.get(AttachmentRow, object_id(request))
        if row is None or row.blob_id is None:
            raise ApiError(404, "not_found", f"no stored attachment {object_id(request)}")
        data = await read_blob(session, row.blob_id)
    safe = row.filename.replace('"', "").encode("ascii", "replace").decode()
    return Response(
        data,
        media_type=row.content_type,
        headers={"Content-Disposition": f'attachment; filename="{safe}"'},
    )


async def outgoing_from(request: Request, values: dict[str, Any]) -> tuple[str, Outgoing]:
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
    outgoing = Outgoing(
        sender=request.state.user.email,
        to=addresses("to"),
        cc=addresses("cc"),
        subject=values.get("subject", ""),
        body=values.get("body", ""),
        in_reply_to=values.get("in_reply_to", "").strip(),
    )
    connector = await smtp_connector_for(_hub(request), values.get("connector") or None)
    return connector, outgoing


async def send(request: Request, values: dict[str, Any]) -> SendOutcome:
    """Send for the logged-in user; errors become ApiError with a status that says whose fault."""
    try:
        connector, outgoing = await outgoing_from(request, values)
        return await send_mail(_hub(request), connector, outgoing)
    except SendError as e:
        raise ApiError(422, "bad_message", str(e)) from e
    except ConfigurationError as e:
        raise ApiError(503, "sending_not_configured", str(e)) from e
    except ConnectorError as e:
        raise ApiError(502, "send_failed", str(e)) from e


async def json_object(request: Request) -> dict[str, Any]:
    """The request body as a JSON object, or a 400 that says what is wrong with it."""
    try:
        values = await request.json()
    except ValueError as e:
        raise ApiError(400, "bad_json", "the body is not valid JSON") from e
    if not isinstance(values, dict):
        raise ApiError(400, "bad_json", "expected a JSON object")
    return values


@endpoint
async def correct_attribution(request: Request) -> Response:
    """POST /api/interactions/{id}/attributions: a person adds or removes a customer link."""
    interaction_id = object_id(request)
    values = await json_object(request)
    account_id, contact_id = values.get("account_id"), values.get("contact_id")
    if not isinstance(account_id, int) or isinstance(account_id, bool):
        raise ApiError(422, "bad_correction", "account_id: expected an account id")
    if contact_id is not None and (not isinstance(contact_id, int) or isinstance(contact_id, bool)):
        raise ApiError(422, "bad_correction", "contact_id: expected a contact id or null")
    async with _hub(request).sessions() as session, session.begin():
        row = await get_or_404(session, InteractionRow, request)
        try:
            await correct(
                session,
                row,
                actor=request.state.user.email,
                action=str(values.get("action", "")),
                account_id=account_id,
                contact_id=contact_id,
            )
        except CorrectionError as e:
            raise ApiError(422, "bad_correction", str(e)) from e
    async with _hub(request).sessions() as session:
        corrected = await session.get(InteractionRow, interaction_id)
        if corrected is None:  # interactions are never deleted
            raise ApiError(404, "not_found", f"There is no interaction {interaction_id}.")
        return JSONResponse(interaction_json(corrected, full=True))


@endpoint
async def messages(request: Request) -> Response:
    """POST /api/messages: JSON only, which also keeps other sites from posting with a cookie."""
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        raise ApiError(415, "unsupported_media_type", "send the message as application/json")
    values = await json_object(request)
    outcome = await send(request, values)
    return JSONResponse(outcome.as_json(), status_code=201)


async def _merge_from(request: Request, what: str) -> int:
    """The body's `from`: the id of the duplicate to fold into the record the path names."""
    values = await json_object(request)
    drop = values.get("from")
    if not isinstance(drop, int) or isinstance(drop, bool):
        raise ApiError(422, "bad_merge", f"from: expected the id of the {what} to merge")
    if not 1 <= drop <= MAX_ID:
        raise ApiError(422, "bad_merge", f"from: there is no {what} {drop}")
    return drop


async def _merging(work: Awaitable[DirectoryMerge]) -> DirectoryMerge:
    """An unknown path id is a 404; an unknown or same `from` is the body's fault (422)."""
    try:
        return await work
    except UnknownRecord as e:
        if e.which == "keep":
            raise ApiError(404, "not_found", str(e)) from e
        raise ApiError(422, "bad_merge", f"from: {e}") from e
    except MergeError as e:
        raise ApiError(422, "bad_merge", str(e)) from e


@endpoint
async def merge_account(request: Request) -> Response:
    """POST /api/accounts/{id}/merge: account `from` is folded into this one and deleted."""
    drop = await _merge_from(request, "account")
    result = await _merging(
        merge_accounts(_hub(request), object_id(request), drop, actor=request.state.user.email)
    )
    async with _hub(request).sessions() as session:
        row = await get_or_404(session, AccountRow, request)
        contacts = await queries.contacts_of(session, row.id)
    merged = {**account_json(row), "contacts": [contact_json(c) for c in contacts]}
    return JSONResponse({"account": merged, "merge": result.as_json()})


@endpoint
async def merge_contact(request: Request) -> Response:
    """POST /api/contacts/{id}/merge: contact `from` is folded into this one and deleted."""
    drop = await _merge_from(request, "contact")
    result = await _merging(
        merge_contacts(_hub(request), object_id(request), drop, actor=request.state.user.email)
    )
    async with _hub(request).sessions() as session:
        row = await get_or_404(session, ContactRow, request)
    return JSONResponse({"contact": contact_json(row), "merge": result.as_json()})


@endpoint
async def openapi(request: Request) -> Response:
    return JSONResponse(OPENAPI)


async def health(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def not_found(request: Request) -> Response:
    return error(404, "not_found", f"no route {request.url.path}")


ROUTES = [
    Route("/api/health", health),
    Route("/api/openapi.json", openapi),
    Route("/api/accounts", accounts),
    Route("/api/accounts/{id:int}", account),
    Route("/api/accounts/{id:int}/timeline", account_timeline),
    Route("/api/contacts/{id:int}", contact),
    Route("/api/contacts/{id:int}/timeline", contact_timeline),
    Route("/api/interactions", interactions),
    Route("/api/interactions/{id:int}", interaction),
    Route("/api/interactions/{id:int}/attributions", correct_attribution, methods=["POST"]),
    Route("/api/attachments/{id:int}", attachment),
    Route("/api/lookup", lookup),
    Route("/api/quarantine", quarantine),
    Route("/api/messages", messages, methods=["POST"]),
    Route("/api/accounts/{id:int}/merge", merge_account, methods=["POST"]),
    Route("/api/contacts/{id:int}/merge", merge_contact, methods=["POST"]),
    Route("/api/{rest:path}", not_found),
]
