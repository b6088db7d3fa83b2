"""/review: the review queue page with its answer buttons (sales and managers)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from hub.policy import Permission
from hub.review import review_queue
from hub.search import NotOneRecord, one_record
from hub.web.commands import settle
from hub.web.endpoints import Endpoint
from hub.web.html import PAGE_SIZE, error_page, render
from hub.web.http import ApiError, hub_of, viewer_of
from storage import directory_search


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


async def queue_page(request: Request) -> Response:
    kind = request.query_params.get("kind") or None
    try:
        result = await review_queue(
            hub_of(request),
            viewer_of(request),
            kind,
            request.query_params.get("cursor") or None,
            PAGE_SIZE,
        )
    except ValueError as e:
        return error_page(request, 400, str(e))
    done = request.session.pop("review_done", "")
    return render(request, "review.html", page=result, kind=kind or "", done=done)


async def _picked(request: Request, values: dict[str, Any]) -> dict[str, Any]:
    """The form names records as people know them ("contact", "account": a name, address,
    number or domain); the settlement takes their ids."""
    hub = hub_of(request)
    async with hub.reads() as session:
        for field, kind in (
            ("contact", directory_search.CONTACT),
            ("account", directory_search.ACCOUNT),
        ):
            typed = str(values.get(field) or "").strip()
            if typed and not values.get(f"{field}_id"):
                try:
                    values[f"{field}_id"] = str(await one_record(hub, session, kind, typed))
                except NotOneRecord as e:
                    raise ApiError(422, "bad_settlement", str(e)) from e
    return values


async def settle_form(request: Request) -> Response:
    form = await request.form()
    counts = await settle(request, await _picked(request, dict(form)))
    request.session["review_done"] = (
        f"{str(form.get('key'))[:320]}: {_count(counts['settled'], 'question')} settled, "
        f"{_count(counts['rematched'], 'item')} attributed anew."
    )
    return RedirectResponse("/review", 303)


ENDPOINTS = [
    Endpoint("/review", queue_page, Permission.REVIEW),
    Endpoint("/review", settle_form, Permission.REVIEW, ("POST",)),
]
