"""/api/review: the review queue (sales and managers), made of the items the caller may see.

The page (hub.web.pages.review) settles through the same `settle`, so a click and an API call
teach the directory the same way and leave the same audit entry.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from hub.policy import Permission
from hub.review import ReviewEntry, review_queue
from hub.web.commands import settle
from hub.web.endpoints import PAGING, Answer, Endpoint, Param
from hub.web.http import (
    ApiError,
    JSONResponse,
    hub_of,
    json_object,
    page_limit,
    viewer_of,
)
from storage.queries import BadCursor


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


async def queue(request: Request) -> Response:
    """GET /api/review?kind=&cursor=&limit=: open cases, most recently active first."""
    try:
        result = await review_queue(
            hub_of(request),
            viewer_of(request),
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


async def settlements(request: Request) -> Response:
    """POST /api/review/settlements: {key, settlement, contact_id | account_id [, name]}."""
    return JSONResponse(await settle(request, await json_object(request)))


ENDPOINTS = [
    Endpoint(
        "/api/review",
        queue,
        Permission.REVIEW,
        summary="open review cases (what matching could not decide alone) about items the "
        "caller may see, the most recently active first; one case per (kind, key) with its "
        "latest items and ranked suggestions",
        params=(
            Param(
                "kind",
                doc="unknown-sender, name-lookalike, shared-domain or shared-address",
                enum=("unknown-sender", "name-lookalike", "shared-domain", "shared-address"),
            ),
            *PAGING,
        ),
        ok=Answer(200, "a page of review cases", "ReviewCasePage"),
        errors={400: "bad kind, limit or cursor"},
    ),
    Endpoint(
        "/api/review/settlements",
        settlements,
        Permission.REVIEW,
        ("POST",),
        "answer a review case for every item of its key, past and future: assign the "
        "address or number to one contact (or the domain to one account) alone, create a "
        "contact with it, or ignore the key from now on; the items are attributed anew and "
        "the answer is recorded in the audit log",
        body="Settlement",
        ok=Answer(200, "questions closed and items attributed anew", "SettleOutcome"),
        errors={
            400: "the body is not a JSON object",
            404: "no open question about the key that the caller may answer",
            415: "not application/json",
            422: "the answer does not fit the key; the message names the field",
        },
    ),
]
