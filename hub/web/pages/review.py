"""/review: the review queue page with its answer buttons (sales and managers)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from hub.policy import Permission
from hub.review import ItemSummary, ReviewEntry, review_queue
from hub.search import NotOneRecord, one_record
from hub.web.commands import settle
from hub.web.endpoints import Endpoint
from hub.web.html import PAGE_SIZE, error_page, render
from hub.web.http import ApiError, hub_of, viewer_of
from matching.suggest import Suggestion
from storage import directory_search
from storage.review import OpenCase


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


@dataclass(frozen=True, slots=True)
class SenderCase:
    """What the page shows of one sender (or domain): every question the queue holds about
    it, with all their reasons, answered at once (storage.review.settle closes them all)."""

    case: OpenCase  # the most recent of its questions
    kinds: tuple[str, ...]
    reasons: tuple[str, ...]
    count: int  # items in question: the most of any one kind (their items overlap)
    suggestions: tuple[Suggestion, ...]
    items: tuple[ItemSummary, ...]

    @property
    def best_account(self) -> str:
        """The account to offer for a new contact: the strongest account the evidence names
        (the signature's company, the sender's domain). Not the account of a contact with the
        same name: a stranger's address wearing a customer's name (a lookalike) must not be
        one click away from joining that customer."""
        for s in sorted(self.suggestions, key=lambda s: -s.score):
            if s.account_id and s.contact_id is None:
                return s.label  # an account's suggestion is labelled with its name
        return ""


def per_sender(entries: list[ReviewEntry]) -> list[SenderCase]:
    """The page's cases one per key, in the queue's order (the first, most recent, leads)."""
    grouped: dict[str, list[ReviewEntry]] = {}
    for entry in entries:
        grouped.setdefault(entry.case.key, []).append(entry)
    cases = []
    for same in grouped.values():
        suggestions = {(s.account_id, s.contact_id): s for e in same for s in e.suggestions}
        items = {i.id: i for e in same for i in e.items}
        cases.append(
            SenderCase(
                case=same[0].case,
                kinds=tuple(dict.fromkeys(e.case.kind for e in same)),
                reasons=tuple(dict.fromkeys(e.case.reason for e in same)),
                count=max(e.case.count for e in same),
                suggestions=tuple(sorted(suggestions.values(), key=lambda s: -s.score)),
                items=tuple(sorted(items.values(), key=lambda i: i.occurred_at, reverse=True)),
            )
        )
    return cases


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
    return render(
        request,
        "review.html",
        page=result,
        cases=per_sender(result.items),
        kind=kind or "",
        done=done,
    )


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
