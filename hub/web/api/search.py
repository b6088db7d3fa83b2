"""/api/search: the one search over the directory and the interactions (hub.search).

Who sees what: every role reads the directory, so every matching account and contact is
listed; an interaction is listed only where the caller may read the words it was found by, and
shown as far as `disclosure` allows, like in every other listing. Reads are audited.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from hub.policy import Permission
from hub.search import KINDS, MAX_PER_KIND, search
from hub.web.endpoints import Answer, Endpoint, Param
from hub.web.http import ApiError, JSONResponse, hub_of, search_words
from hub.web.reads import page_of_views, scope_of
from hub.web.views import account_view, contact_view
from storage import queries

DEFAULT_PER_KIND = 10


def _limit(request: Request) -> int:
    raw = request.query_params.get("limit", str(DEFAULT_PER_KIND))
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_PER_KIND:
        raise ApiError(400, "bad_limit", f"limit must be a number from 1 to {MAX_PER_KIND}")
    return int(raw)


def _kinds(request: Request) -> frozenset[str]:
    raw = request.query_params.get("kinds")
    if raw is None:
        return KINDS
    kinds = frozenset(k.strip() for k in raw.split(",") if k.strip())
    if not kinds or not kinds <= KINDS:
        raise ApiError(
            400, "bad_kinds", f"kinds: a comma-separated list of {', '.join(sorted(KINDS))}"
        )
    return kinds


async def find(request: Request) -> Response:
    q = (search_words(request) or "").strip()
    if not q:
        raise ApiError(400, "missing_query", "give q=... (a name, a word, an address or a number)")
    limit = _limit(request)
    kinds = _kinds(request)
    hub = hub_of(request)
    async with hub.reads() as session:
        found = await search(hub, session, scope_of(request), q, limit, kinds)
        views, _ = await page_of_views(
            request, session, queries.Page(found.interactions, None), "search"
        )
    return JSONResponse(
        {
            "accounts": [account_view(a).as_json() for a in found.accounts],
            "contacts": [contact_view(c).as_json() for c in found.contacts],
            "interactions": [v.as_json() for v in views],
        }
    )


ENDPOINTS = [
    Endpoint(
        "/api/search",
        find,
        Permission.READ,
        summary="accounts, contacts and interactions matching q, each group best first",
        params=(
            Param(
                "q",
                doc="a phone number in any format or an email address finds its contacts and "
                "their latest interactions; words find accounts and contacts with a word of "
                "name, domain or address beginning with each (umlauts folded, ü also as ue; "
                "whole-word matches first, then by name), and interactions holding all the "
                "words (German and English stems) where the caller may read them, newest first",
                required=True,
            ),
            Param(
                "limit",
                kind="integer",
                doc=f"per group, 1..{MAX_PER_KIND}, default {DEFAULT_PER_KIND}",
                minimum=1,
                maximum=MAX_PER_KIND,
            ),
            Param(
                "kinds",
                doc="which groups to search, comma-separated: account, contact, interaction "
                "(default all); the others come back empty",
            ),
        ),
        ok=Answer(200, "the matches, grouped", "SearchResults"),
        errors={400: "q is missing or too long, limit is out of range, or kinds is unknown"},
    ),
]
