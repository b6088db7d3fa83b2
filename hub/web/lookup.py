"""Who is calling: the one look-up behind `GET /api/lookup` and the screen pop page `/pop`.

Both answer from the same read model, so a softphone's JSON and the agent's page never
disagree. Who sees what: the directory (contacts, accounts, their owners) is readable by every
role; the latest items go through the policy like every listing (page_of_views: withheld
fields, reads audited); open review questions only reach roles that may review
(hub.policy, Permission.REVIEW: not callcenter), and only about items they may see.

Constant work per call: the identity indexes lead straight to the contacts and their accounts,
each contact's newest items are a timeline index range, and each of the caller's addresses
and numbers is one range of the open review questions (storage.lookup).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from hub.policy import Permission
from hub.web.http import ApiError, hub_of, search_words, viewer_of
from hub.web.reads import page_of_views, scope_of
from hub.web.views import AccountView, ContactView, InteractionView, account_view, contact_view
from matching.identities import normalize_email, normalize_phone, parent_domains
from storage import queries
from storage.lookup import CallerQuestion, open_questions

LATEST = 10  # items shown: what an agent reads before picking up


@dataclass(frozen=True)
class CallerLookup:
    """What crmhub knows about a phone number or address, as the viewer may see it."""

    phone: str | None  # E.164, as read from whatever format was given
    email: str | None
    contacts: list[ContactView]
    accounts: list[AccountView]
    owner: str | None  # whom the caller belongs to: the contact's owner, else its account's
    latest: list[InteractionView]
    questions: list[CallerQuestion]
    may_review: bool

    @property
    def known(self) -> bool:
        return bool(self.contacts or self.accounts)

    def account_name(self, account_id: int | None) -> str:
        return next((a.name for a in self.accounts if a.id == account_id), "")

    def as_json(self) -> dict[str, Any]:
        return {
            "query": {"phone": self.phone, "email": self.email},
            "contacts": [c.as_json() for c in self.contacts],
            "accounts": [a.as_json() for a in self.accounts],
            "owner": self.owner,
            "latest": [v.as_json() for v in self.latest],
            "questions": [
                {
                    "kind": q.kind,
                    "key": q.key,
                    "name": q.name,
                    "reason": q.reason,
                    "count": q.count,
                    "complete": q.complete,
                    "latest_at": q.latest_at.isoformat() if q.latest_at else None,
                    "interaction_ids": list(q.interaction_ids),
                }
                for q in self.questions
            ],
        }


def identity_of(request: Request) -> tuple[str | None, str | None]:
    """The query's phone (as E.164) and address (normalised); ApiError 400 when neither is
    given or neither can be read."""
    phone = (search_words(request, "phone") or "").strip()
    email = (search_words(request, "email") or "").strip()
    if not phone and not email:
        raise ApiError(400, "missing_query", "give phone=... or email=...")
    key_phone = normalize_phone(phone, hub_of(request).settings.default_region) if phone else None
    key_email = normalize_email(email) if email else None
    if not key_phone and not key_email:
        raise ApiError(
            400,
            "bad_identity",
            f"{(phone or email)[:80]!r} is not a phone number (with area code) or an email address",
        )
    return key_phone, key_email


def _owner(contacts: list[Any], accounts: dict[int, Any]) -> str | None:
    for c in contacts:
        if c.owner:
            return str(c.owner)
        account = accounts.get(c.account_id) if c.account_id else None
        if account is not None and account.owner:
            return str(account.owner)
    return next((str(a.owner) for a in accounts.values() if a.owner), None)


async def look_up(request: Request, phone: str | None, email: str | None) -> CallerLookup:
    """Contacts with this number or address, their accounts (for an address of nobody, the
    account owning its domain), the newest items and the open questions, in one read."""
    hub, viewer, scope = hub_of(request), viewer_of(request), scope_of(request)
    may_review = viewer.may(Permission.REVIEW)
    async with hub.reads() as session, session.begin():
        contacts, accounts = await queries.contacts_by_identity(session, email=email, phone=phone)
        if not contacts and email:
            domain = email.rpartition("@")[2]
            if domain not in hub.free_mail:
                for row in await queries.accounts_by_domains(session, parent_domains(domain)):
                    accounts[row.id] = row
        latest = await queries.latest_of(
            session, scope, [c.id for c in contacts], [] if contacts else list(accounts), LATEST
        )
        views, _ = await page_of_views(request, session, queries.Page(latest, None), "lookup")
        questions: list[CallerQuestion] = []
        if may_review:
            keys = [k for k in (phone, email) if k]
            keys += [k for c in contacts for k in (*c.phones, *c.emails)]
            questions = await open_questions(session, scope, keys)
    return CallerLookup(
        phone=phone,
        email=email,
        contacts=[contact_view(c) for c in contacts],
        accounts=[account_view(a) for a in accounts.values()],
        owner=_owner(contacts, accounts),
        latest=views,
        questions=questions,
        may_review=may_review,
    )
