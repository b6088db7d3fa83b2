"""Logging in and out.

Login is throttled per account and per client address in the database (storage.throttle), so
that several web processes share the count; an unknown address costs the same time as a known
one (storage.users.authenticate). The form carries a CSRF token of the anonymous session, so
another site cannot log a browser in under the attacker's account.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from hub.policy import Permission
from hub.web.auth import start_session
from hub.web.endpoints import Endpoint, form_csrf_ok
from hub.web.html import error_page, render, safe_next
from hub.web.http import hub_of
from storage import audit
from storage.throttle import account_key, client_key, note_failure, note_success, retry_after
from storage.users import authenticate

MAX_FIELD = 320


def _keys(request: Request, email: str) -> tuple[str, str]:
    return account_key(email), client_key(request.client.host if request.client else "unknown")


async def login(request: Request) -> Response:
    if request.method == "GET":
        return render(request, "login.html", next=safe_next(request.query_params.get("next")))
    form = await request.form()
    email = str(form.get("email", "")).strip().lower()[:MAX_FIELD]
    password = str(form.get("password", ""))[:1024]
    target = safe_next(str(form.get("next", "/")))
    if not await form_csrf_ok(request):
        return render(
            request,
            "login.html",
            status=403,
            next=target,
            email=email,
            error="The login form had expired; please try again.",
        )
    hub, now = hub_of(request), datetime.now(UTC)
    keys = _keys(request, email)
    async with hub.sessions() as session:
        wait = await retry_after(session, list(keys), now)
    if wait is not None:  # refused before the password is looked at; its failures are audited
        return error_page(
            request,
            429,
            f"Too many failed logins. Try again in {wait} seconds.",
            headers={"Retry-After": str(wait)},
        )
    async with hub.sessions() as session, session.begin():
        user = await authenticate(session, email, password, now)  # records the login time
    async with hub.sessions() as session, session.begin():
        if user is None:
            await note_failure(session, list(keys), now)
            audit.record(session, email, "login.failed", after={"client": keys[1]}, target=email)
        else:
            await note_success(session, keys[0])
            audit.record(session, user.email, "login", after={"client": keys[1]}, target=email)
    if user is None:
        return render(
            request,
            "login.html",
            status=401,
            next=target,
            email=email,
            error="Wrong email or password.",
        )
    start_session(request, user, secrets.token_urlsafe(24))
    return RedirectResponse(target, 303)


async def logout(request: Request) -> Response:
    """POST only (the guard checked the form's CSRF token): a link cannot log anybody out."""
    request.session.clear()
    return RedirectResponse("/login", 303)


async def health(request: Request) -> Response:
    return Response("ok", media_type="text/plain")


ENDPOINTS = [
    Endpoint("/login", login, Permission.PUBLIC, ("GET", "POST")),
    Endpoint("/logout", logout, Permission.SIGNED_IN, ("POST",)),
    Endpoint("/health", health, Permission.PUBLIC),
]
