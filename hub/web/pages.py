"""Server-rendered HTML pages: usable without JavaScript, readable on a phone."""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy import func, select
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from hub.bootstrap import Hub
from hub.display import mail_html
from hub.web.api import (
    ApiError,
    account_cursor,
    get_or_404,
    object_id,
    quarantine_cursor,
    send,
    timeline_cursor,
    timeline_filter,
)
from hub.web.auth import current_user
from storage import queries
from storage.blobs import read_blob
from storage.corrections import CorrectionError, correct
from storage.tables import AccountRow, ContactRow, InteractionRow, QuarantineRow
from storage.users import check_password, user_by_email

TEMPLATES = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(["html"]),
)
PAGE_SIZE = 25
Handler = Callable[[Request], Awaitable[Response]]


def csrf_token(request: Request) -> str:
    """Per-session token that every state-changing form carries back (a cookie alone does not)."""
    if "session" not in request.scope:
        return ""
    token = request.session.get("csrf")
    if not token:
        token = request.session["csrf"] = secrets.token_urlsafe(24)
    return str(token)


def csrf_ok(request: Request, form: Any) -> bool:
    expected = request.session.get("csrf", "")
    return bool(expected) and hmac.compare_digest(str(form.get("csrf", "")), str(expected))


def render(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
    user = getattr(request.state, "user", None)
    return HTMLResponse(
        TEMPLATES.get_template(name).render(
            request=request, user=user, csrf=csrf_token(request), **context
        ),
        status_code=status,
    )


def error_page(request: Request, status: int, message: str) -> Response:
    return render(request, "error.html", status=status, status_code=status, message=message)


def page(handler: Handler) -> Handler:
    """Pages need a login; API-style errors become an error page."""

    async def wrapped(request: Request) -> Response:
        user = await current_user(request)
        if user is None:
            return RedirectResponse("/login?" + urlencode({"next": request.url.path}), 303)
        request.state.user = user
        try:
            return await handler(request)
        except ApiError as e:
            return error_page(request, e.status, e.message)
        except queries.BadCursor as e:
            return error_page(request, 400, str(e))

    return wrapped


def _hub(request: Request) -> Hub:
    return request.app.state.hub


def _safe_next(value: str | None) -> str:
    safe = value and value.startswith("/") and not value.startswith(("//", "/\\"))
    return value if safe and value else "/"


async def login(request: Request) -> Response:
    if request.method == "GET":
        return render(request, "login.html", next=_safe_next(request.query_params.get("next")))
    form = await request.form()
    email, password = str(form.get("email", "")), str(form.get("password", ""))
    target = _safe_next(str(form.get("next", "/")))
    async with _hub(request).sessions() as session:
        user = await user_by_email(session, email)
    if user is None or not check_password(password, user.password_hash):
        return render(
            request,
            "login.html",
            status=401,
            next=target,
            email=email,
            error="Wrong email or password.",
        )
    request.session["user_id"] = user.id
    request.session["csrf"] = secrets.token_urlsafe(24)  # a new session gets a new token
    return RedirectResponse(target, 303)


async def logout(request: Request) -> Response:
    request.session.clear()
    return RedirectResponse("/login", 303)


@page
async def accounts(request: Request) -> Response:
    q = request.query_params.get("q", "")
    async with _hub(request).sessions() as session:
        result = await queries.list_accounts(session, q or None, account_cursor(request), PAGE_SIZE)
    return render(request, "accounts.html", q=q, page=result)


def _filters(request: Request) -> dict[str, str]:
    return {k: request.query_params.get(k, "") for k in ("channel", "since", "until")}


@page
async def account(request: Request) -> Response:
    account_id = object_id(request)
    async with _hub(request).sessions() as session:
        row = await get_or_404(session, AccountRow, request)
        contacts = await queries.contacts_of(session, account_id)
        result = await queries.account_timeline(
            session, account_id, timeline_filter(request), timeline_cursor(request), PAGE_SIZE
        )
    return render(
        request,
        "account.html",
        account=row,
        contacts=contacts,
        page=result,
        filters=_filters(request),
        known_addresses=[e.address for c in contacts for e in c.emails],
        compose_to="",
    )


@page
async def contact(request: Request) -> Response:
    contact_id = object_id(request)
    async with _hub(request).sessions() as session:
        row = await get_or_404(session, ContactRow, request)
        account_row = await session.get(AccountRow, row.account_id) if row.account_id else None
        result = await queries.contact_timeline(
            session, contact_id, timeline_filter(request), timeline_cursor(request), PAGE_SIZE
        )
    addresses = [e.address for e in row.emails]
    return render(
        request,
        "contact.html",
        contact=row,
        account=account_row,
        page=result,
        filters=_filters(request),
        known_addresses=addresses,
        compose_to=addresses[0] if addresses else "",
    )


@page
async def send_form(request: Request) -> Response:
    form = await request.form()
    if not csrf_ok(request, form):
        return error_page(request, 403, "This form has expired; reload the page and try again.")
    back = _safe_next(str(form.get("back", "/")))
    values = {k: str(form.get(k, "")) for k in ("to", "cc", "subject", "body", "in_reply_to")}
    outcome = await send(request, values)
    return render(request, "sent.html", outcome=outcome, back=back)


@page
async def interaction(request: Request) -> Response:
    async with _hub(request).sessions() as session:
        row = await get_or_404(session, InteractionRow, request)
        names = await queries.accounts_by_ids(session, {a.account_id for a in row.attributions})
    html = await mail_html(_hub(request), row)
    return render(request, "interaction.html", item=row, html=html, accounts=names)


@page
async def correct_form(request: Request) -> Response:
    """The buttons on an interaction: the same correction as the API, by account name."""
    interaction_id = object_id(request)
    form = await request.form()
    if not csrf_ok(request, form):
        return error_page(request, 403, "This form has expired; reload the page and try again.")
    async with _hub(request).sessions() as session, session.begin():
        row = await get_or_404(session, InteractionRow, request)
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
                return error_page(request, 422, f"There is no account named {name!r}.")
            account_id = found
        try:
            await correct(
                session,
                row,
                actor=request.state.user.email,
                action=str(form.get("action", "")),
                account_id=account_id,
                contact_id=None,
            )
        except CorrectionError as e:
            return error_page(request, 422, str(e))
    return RedirectResponse(f"/interactions/{interaction_id}", 303)


@page
async def unmatched(request: Request) -> Response:
    async with _hub(request).sessions() as session:
        result = await queries.list_interactions(
            session, unmatched=True, cursor=timeline_cursor(request), limit=PAGE_SIZE
        )
    return render(request, "unmatched.html", page=result)


@page
async def quarantined(request: Request) -> Response:
    async with _hub(request).sessions() as session:
        result = await queries.quarantine(session, quarantine_cursor(request), PAGE_SIZE)
    return render(request, "quarantine.html", page=result)


@page
async def quarantined_raw(request: Request) -> Response:
    """The raw bytes of a quarantined item, as text, so IT can see why it failed."""
    async with _hub(request).sessions() as session:
        row = await session.get(QuarantineRow, object_id(request))
        if row is None or row.raw_blob_id is None:
            raise ApiError(404, "not_found", "No such quarantined item.")
        data = await read_blob(session, row.raw_blob_id)
    return Response(data.decode("utf-8", "replace"), media_type="text/plain; charset=utf-8")


def attachment_link(attachment_id: int) -> str:
    return f"/api/attachments/{attachment_id}"


async def health(request: Request) -> Response:
    return Response("ok", media_type="text/plain")


TEMPLATES.globals.update(urlencode=urlencode, attachment_link=attachment_link)

ROUTES = [
    Route("/login", login, methods=["GET", "POST"]),
    Route("/logout", logout, methods=["POST", "GET"]),
    Route("/health", health),
    Route("/", accounts),
    Route("/accounts/{id:int}", account),
    Route("/contacts/{id:int}", contact),
    Route("/interactions/{id:int}", interaction),
    Route("/send", send_form, methods=["POST"]),
    Route("/interactions/{id:int}/attributions", correct_form, methods=["POST"]),
    Route("/unmatched", unmatched),
    Route("/quarantine", quarantined),
    Route("/quarantine/{id:int}/raw", quarantined_raw),
]
