"""The review queue over HTTP: `/api/review` (JSON) and `/review` (the page with its buttons).

Both settle through hub.review.settle_case, so a click and an API call teach the directory the
same way and leave the same audit entry.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from hub.review import ReviewEntry, Settlement, review_queue, settle_case
from hub.web.api import ApiError, endpoint, json_object, page_limit
from hub.web.pages import PAGE_SIZE, csrf_ok, error_page, page, render
from storage.directory import DirectoryError
from storage.queries import BadCursor
from storage.tables import MAX_ID

SETTLEMENTS = ", ".join(s.value for s in Settlement)


def entry_json(entry: ReviewEntry) -> dict[str, Any]:
    case = entry.case
    return {
        "kind": case.kind,
        "key": case.key,
        "name": case.name,
        "reason": case.reason,
        "count": case.count,
        "latest_at": case.latest_at.isoformat(),
        "interactions": [
            {"id": i.id, "subject": i.subject, "occurred_at": i.occurred_at.isoformat()}
            for i in entry.items
        ],
        "suggestions": [
            {
                "account_id": s.account_id,
                "contact_id": s.contact_id,
                "label": s.label,
                "score": s.score,
                "reason": s.reason,
            }
            for s in entry.suggestions
        ],
    }


def _optional_id(values: dict[str, Any], name: str) -> int | None:
    """An id from JSON (a number) or a form (digits); one beyond 64 bits names nothing."""
    value = values.get(name)
    if value in (None, ""):
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_ID:
        raise ValueError(f"{name}: expected an id")
    return value


def _text(values: dict[str, Any], name: str) -> str:
    value = values.get(name, "")
    if not isinstance(value, str):
        raise ValueError(f"{name}: expected a string")
    return value.strip()


async def _settle(request: Request, values: dict[str, Any]) -> dict[str, int]:
    """Shared by the API and the form; ValueError carries a message for the person."""
    key = _text(values, "key")
    if not key:
        raise ValueError("key: say which address, number or domain the answer is about")
    try:
        settlement = Settlement(_text(values, "settlement"))
    except ValueError as e:
        raise ValueError(f"settlement: use one of {SETTLEMENTS}") from e
    outcome = await settle_case(
        request.app.state.hub,
        key=key,
        settlement=settlement,
        actor=request.state.user.email,
        contact_id=_optional_id(values, "contact_id"),
        account_id=_optional_id(values, "account_id"),
        name=_text(values, "name"),
    )
    return {"settled": outcome.settled, "rematched": outcome.rematched.changed}


@endpoint
async def api_queue(request: Request) -> Response:
    """GET /api/review?kind=&cursor=&limit=: open cases, most recently active first.

    Paged like every other listing (limit 1..200, default 50; a bad cursor is `bad_cursor`).
    """
    try:
        result = await review_queue(
            request.app.state.hub,
            request.query_params.get("kind") or None,
            request.query_params.get("cursor") or None,
            page_limit(request),
        )
    except BadCursor:
        raise
    except ValueError as e:
        raise ApiError(400, "bad_kind", str(e)) from e
    return JSONResponse(
        {"items": [entry_json(e) for e in result.items], "next_cursor": result.next_cursor}
    )


@endpoint
async def api_settle(request: Request) -> Response:
    """POST /api/review/settlements: {key, settlement, contact_id | account_id [, name]}."""
    values = await json_object(request)
    try:
        return JSONResponse(await _settle(request, values))
    except (DirectoryError, ValueError) as e:
        raise ApiError(422, "bad_settlement", str(e)) from e


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


@page
async def queue_page(request: Request) -> Response:
    kind = request.query_params.get("kind") or None
    try:
        result = await review_queue(
            request.app.state.hub, kind, request.query_params.get("cursor") or None, PAGE_SIZE
        )
    except ValueError as e:
        return error_page(request, 400, str(e))
    done = request.session.pop("review_done", "")
    return render(request, "review.html", page=result, kind=kind or "", done=done)


@page
async def settle_form(request: Request) -> Response:
    form = await request.form()
    if not csrf_ok(request, form):
        return error_page(request, 403, "This form has expired; reload the page and try again.")
    try:
        counts = await _settle(request, dict(form))
    except (DirectoryError, ValueError) as e:
        return error_page(request, 422, str(e))
    request.session["review_done"] = (
        f"{form.get('key')}: {_count(counts['settled'], 'question')} settled, "
        f"{_count(counts['rematched'], 'item')} attributed anew."
    )
    return RedirectResponse("/review", 303)


ROUTES = [
    Route("/api/review", api_queue),
    Route("/api/review/settlements", api_settle, methods=["POST"]),
    Route("/review", queue_page),
    Route("/review", settle_form, methods=["POST"]),
]
