"""Rendering pages: the Jinja2 templates, the per-session CSRF token, styled error pages."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, pass_context, select_autoescape
from jinja2.runtime import Context
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from hub.policy import Permission, Viewer

TEMPLATES = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(["html"]),
)
TEMPLATES.globals.update(urlencode=urlencode, Permission=Permission)


@pass_context
def _local(context: Context, at: datetime | None, form: str = "%Y-%m-%d %H:%M") -> str:
    """A stored (UTC) time in the zone the page is shown in (`zone`), which base.html names."""
    if at is None:
        return ""
    zone: tzinfo = context.get("zone") or UTC
    return at.astimezone(zone).strftime(form)


def _duration(seconds: int | None) -> str:
    """A call's length as people say it: "2:05", "1:02:05"."""
    if seconds is None:
        return ""
    hours, rest = divmod(max(seconds, 0), 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


TEMPLATES.filters["local"] = _local
TEMPLATES.filters["duration"] = _duration
PAGE_SIZE = 25
TITLES = {400: "Bad request", 403: "Not allowed", 404: "Not found", 405: "Not allowed here",
          413: "Too large", 422: "Cannot do that", 429: "Too many attempts",
          500: "Something went wrong", 502: "A server refused", 503: "Not set up"}  # fmt: skip


def csrf_token(request: Request) -> str:
    """Per-session token that every state-changing form carries back (a cookie alone does not)."""
    if "session" not in request.scope:
        return ""
    token = request.session.get("csrf")
    if not token:
        token = request.session["csrf"] = secrets.token_urlsafe(24)
    return str(token)


def page_zone(request: Request) -> ZoneInfo:
    """The zone pages show times in: the user's own (Settings), else the configured one. A
    zone the zone database no longer knows falls back to the configured one."""
    caller = getattr(request.state, "caller", None)
    own = getattr(caller, "timezone", "") if caller is not None else ""
    configured = request.app.state.hub.settings.timezone
    try:
        return ZoneInfo(own or configured)
    except (ValueError, KeyError):  # ZoneInfoNotFoundError is a KeyError
        return ZoneInfo(configured)


def render(
    request: Request,
    name: str,
    status: int = 200,
    headers: dict[str, str] | None = None,
    **context: Any,
) -> HTMLResponse:
    viewer: Viewer | None = getattr(request.state, "viewer", None)
    zone = page_zone(request)
    return HTMLResponse(
        TEMPLATES.get_template(name).render(
            request=request, viewer=viewer, csrf=csrf_token(request), zone=zone, **context
        ),
        status_code=status,
        headers=headers,
    )


def error_page(
    request: Request, status: int, message: str, headers: dict[str, str] | None = None
) -> Response:
    """The styled page for an error; `message` is for the user, never a server internal."""
    title = TITLES.get(status, "Error")
    return render(
        request,
        "error.html",
        status=status,
        headers=headers,
        status_code=status,
        title=title,
        message=message,
    )


def safe_next(value: str | None) -> str:
    """Only a path on this site: never an open redirect to another one."""
    safe = value and value.startswith("/") and not value.startswith(("//", "/\\"))
    return value if safe and value else "/"
