"""The route table: every route of the web view and the API is an Endpoint that declares the
permission it needs (hub.policy), and is enforced here, in one place, before its handler runs.

The API's OpenAPI document (hub.web.openapi) is built from the same table, and
tests/e2e/test_authorization.py drives every entry with every role.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from hub.model import Channel
from hub.policy import Permission, Viewer
from hub.web.auth import signed_in
from hub.web.http import ApiError, error_json
from storage.queries import MAX_LIMIT, BadCursor
from storage.tables import MAX_ID

log = logging.getLogger(__name__)
Handler = Callable[[Request], Awaitable[Response]]
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_HEADER = "x-csrf-token"

# What a refused role is told, by the permission it lacks.
NEEDS = {
    Permission.CORRECT: "correcting attributions needs the sales, manager or callcenter role",
    Permission.REVIEW: "the review queue needs the sales or manager role",
    Permission.MERGE: "merging records needs the manager role",
    Permission.ADMINISTER: "this needs the admin role",
}


@dataclass(frozen=True)
class Param:
    """A path or query parameter as the OpenAPI document describes it: with the bounds and
    formats the handlers enforce, so that a client (and schemathesis) knows them."""

    name: str
    where: str = "query"
    kind: str = "string"
    doc: str = ""
    enum: tuple[str, ...] = ()
    minimum: int | None = None
    maximum: int | None = None
    format: str = ""
    required: bool = False


PAGING = (
    Param("cursor", doc="next_cursor of the previous page"),
    Param("limit", kind="integer", doc="1..200, default 50", minimum=1, maximum=MAX_LIMIT),
)
WHEN = ("since", "until")
TIMELINE = (
    Param("channel", enum=tuple(c.value for c in Channel)),
    Param("since", doc="ISO date-time, inclusive", format="date-time"),
    Param("until", doc="ISO date-time, exclusive", format="date-time"),
    Param(
        "q",
        doc="words that must all be in the subject or text, within what the caller may read; "
        "matched by German and English word stem, umlauts and accents folded, ß as ss; "
        "whole words, no substrings",
    ),
)
ID = (Param("id", "path", "integer", minimum=1, maximum=MAX_ID),)


@dataclass(frozen=True)
class Answer:
    """A documented response: status, what it means, and the JSON schema (a component name
    or an inline schema; None for a body that is not JSON)."""

    status: int
    description: str
    schema: str | dict[str, Any] | None = None
    media: str = "application/json"


@dataclass(frozen=True)
class Endpoint:
    path: str
    handler: Handler
    permission: Permission
    methods: tuple[str, ...] = ("GET",)
    summary: str = ""
    params: tuple[Param, ...] = ()
    body: str | dict[str, Any] | None = None  # the JSON request body's schema
    ok: Answer | None = None
    errors: dict[int, str] = field(default_factory=dict)

    @property
    def api(self) -> bool:
        return self.path.startswith("/api/")


def route(endpoint: Endpoint) -> Route:
    return Route(endpoint.path, guarded(endpoint), methods=list(endpoint.methods))


def routes(endpoints: list[Endpoint]) -> list[Route]:
    for e in endpoints:
        if not isinstance(e.permission, Permission):  # a route without a declared policy
            raise TypeError(f"{e.path}: declare the permission it needs (hub.policy)")
    return [route(e) for e in endpoints]


def guarded(endpoint: Endpoint) -> Handler:
    async def run(request: Request) -> Response:
        from hub.web.html import error_page  # pages render errors; html imports nothing here

        try:
            if endpoint.permission is not Permission.PUBLIC:
                refused = await _admit(request, endpoint)
                if refused is not None:
                    return refused
            return await endpoint.handler(request)
        except ApiError as e:
            if endpoint.api:
                return error_json(e.status, e.code, e.message)
            return error_page(request, e.status, e.message)
        except BadCursor as e:
            if endpoint.api:
                return error_json(400, "bad_cursor", str(e))
            return error_page(request, 400, str(e))

    run.__name__ = endpoint.handler.__name__
    run.__doc__ = endpoint.handler.__doc__
    return run


async def _admit(request: Request, endpoint: Endpoint) -> Response | None:
    """Who is asking, may their role use this route, and did a cookie-carried request come
    from our own pages? Returns the refusal, or None to go on."""
    user, by_cookie = await signed_in(request)
    if user is None:
        if endpoint.api:
            return error_json(
                401, "unauthenticated", "a bearer token or a login session is required"
            )
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse("/login?" + urlencode({"next": target}), 303)
    viewer = Viewer.of(user.email, user.role)
    request.state.viewer = viewer
    request.state.caller = user  # its own time zone, for pages (hub.web.html.render)
    if not viewer.may(endpoint.permission):
        raise ApiError(
            403, "forbidden", f"Your role may not do this: {NEEDS[endpoint.permission]}."
        )
    if request.method in SAFE_METHODS or not by_cookie:
        return None
    if endpoint.api:
        if not (_same_origin(request) or await _csrf_header_ok(request)):
            raise ApiError(
                403,
                "cross_site",
                "a request with the login cookie must come from crmhub's own pages "
                "(Origin) or carry the X-CSRF-Token header",
            )
    elif not await form_csrf_ok(request):
        raise ApiError(403, "form_expired", "This form has expired; reload the page and try again.")
    return None


def _same_origin(request: Request) -> bool:
    origin = request.headers.get("origin")
    if not origin:
        return False
    parts = urlsplit(origin)
    return (parts.scheme, parts.netloc) == (request.url.scheme, request.url.netloc)


async def _csrf_header_ok(request: Request) -> bool:
    expected = str(request.session.get("csrf", ""))
    given = request.headers.get(CSRF_HEADER, "")
    return bool(expected) and hmac.compare_digest(given, expected)


async def form_csrf_ok(request: Request) -> bool:
    """A state-changing form carries the session's token back; a cookie alone does not."""
    expected = str(request.session.get("csrf", "")) if "session" in request.scope else ""
    form = await request.form()
    return bool(expected) and hmac.compare_digest(str(form.get("csrf", "")), expected)
