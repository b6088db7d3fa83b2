"""/review: the review queue page with its answer buttons (sales and managers)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from hub.policy import Permission
from hub.review import review_queue
from hub.web.commands import settle
from hub.web.endpoints import Endpoint
from hub.web.html import PAGE_SIZE, error_page, render
from hub.web.http import hub_of, viewer_of


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


async def settle_form(request: Request) -> Response:
    form = await request.form()
    counts = await settle(request, dict(form))
    request.session["review_done"] = (
        f"{str(form.get('key'))[:320]}: {_count(counts['settled'], 'question')} settled, "
        f"{_count(counts['rematched'], 'item')} attributed anew."
    )
    return RedirectResponse("/review", 303)


ENDPOINTS = [
    Endpoint("/review", queue_page, Permission.REVIEW),
    Endpoint("/review", settle_form, Permission.REVIEW, ("POST",)),
]
