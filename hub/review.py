"""The review queue as people use it: open cases with suggestions, and settling them.

Settling teaches the directory (an address joins a contact, a new contact is created, a
domain or address is kept on one record only) or ignores the key; the items concerned are then
re-attributed through the usual retroactive re-matching, so one click fixes every item of a
sender, past and future.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.bootstrap import Hub
from hub.model import ReviewKind, record
from hub.policy import Viewer, read_scope
from hub.rematch import rematch
from matching.identities import normalize_domain, normalize_email, normalize_phone, reversed_labels
from matching.suggest import Suggestion, suggest
from storage import audit, directory, review
from storage.items import bodies_of
from storage.queries import Page
from storage.rematch import RematchCounts, affected_by
from storage.tables import (
    AccountDomainRow,
    ContactEmailRow,
    ContactPhoneRow,
)

BODIES = 3  # signatures read per case
SUGGESTIONS_KEPT = 4096  # cases whose suggestions are kept (Hub.from_index)
_NUMBER = re.compile(r"[\d\s+()./-]+")


class Settlement(enum.StrEnum):
    ASSIGN = "assign"  # key belongs to contact_id alone, or the domain to account_id alone
    CREATE_CONTACT = "create-contact"  # a new contact `name` at account_id gets the key
    IGNORE = "ignore"  # stop asking about key


@record
class ItemSummary:
    id: int
    subject: str
    occurred_at: datetime


@record
class ReviewEntry:
    case: review.OpenCase
    suggestions: list[Suggestion]
    items: list[ItemSummary]


@dataclass
class SettleOutcome:
    settled: int = 0
    rematched: RematchCounts = field(default_factory=RematchCounts)


class NoOpenQuestion(LookupError):
    """Nothing about this key that the person may answer (or nothing at all: the same to them)."""


async def review_queue(
    hub: Hub, viewer: Viewer, kind: str | None, cursor: str | None, limit: int
) -> Page:
    """One page of open cases the viewer may see, each with ranked suggestions and its latest
    items. Suggestions read only signatures of bodies the viewer may read."""
    if kind is not None and kind not in {k.value for k in ReviewKind}:
        raise ValueError(f"kind: use one of {', '.join(k.value for k in ReviewKind)}")
    index = await hub.identity_index()
    memo = hub.from_index  # of this index: a rebuild meanwhile replaces it, never fills it
    async with hub.reads() as session:
        page = await review.list_open(session, read_scope(viewer), kind, cursor, limit)
        keys = {case: _suggestion_key(case) for case in page.items}
        known = {key: memo[key] for key in keys.values() if key in memo}
        missing = [key for key in keys.values() if key not in known]
        bodies = await bodies_of(session, [i for key in missing for i in key[4]])
    if len(memo) + len(missing) > SUGGESTIONS_KEPT:
        memo.clear()
    for key in missing:
        _, case_kind, case_key, name, readable, candidates, spellings = key
        known[key] = memo[key] = suggest(
            ReviewKind(case_kind),
            case_key,
            name,
            [bodies[i] for i in readable if i in bodies],
            candidates,
            index,
            spellings=spellings,
        )
    entries = []
    for case in page.items:
        summaries = [ItemSummary(i.id, i.subject, i.occurred_at) for i in case.items]
        entries.append(ReviewEntry(case, known[keys[case]], summaries))
    return Page(entries, page.next_cursor)


SuggestionKey = tuple[str, str, str, str, tuple[int, ...], tuple[int, ...], tuple[str, ...]]


def _suggestion_key(case: review.OpenCase) -> SuggestionKey:
    """All that a case's suggestions are worked out from, besides the index: the same key
    gives the same suggestions until the directory changes (Hub.from_index).

    Suggestions read only signatures of bodies the viewer may read, so the readable items are
    part of the key; a stored item's body does not change. Worked out anew, a page of
    suggestions cost a third of the queue's time (profiled: signatures, fuzzy names).
    """
    readable = [i.id for i in case.items if i.body_readable][:BODIES]
    spellings = {spelling for i in case.items for spelling in i.spellings}
    return (
        "suggest",
        case.kind,
        case.key,
        case.name,
        tuple(readable),
        case.candidates,
        tuple(sorted(spellings)),
    )


def review_key(key: str, region: str | None) -> str:
    """The key as matching writes it: a normalised address, an E.164 number or a domain.

    A script may send `Jana.Ohlsen@Gmail.com` or `0171 2233445`; stored as typed, the directory
    would hold a spelling matching never looks up, and the open questions would stay open.
    """
    text = key.strip()
    if "@" in text:
        found, what = normalize_email(text), "an email address"
    elif _NUMBER.fullmatch(text):
        found, what = normalize_phone(text, region), "a full phone number"
    else:
        found, what = normalize_domain(text), "a mail domain"
    if not found:
        raise ValueError(f"key: {text[:80]!r} is not {what}")
    return found


async def _holders(session: AsyncSession, key: str, is_domain: bool) -> list[int]:
    """Who has `key` now: the accounts listing a domain, or the contacts with an identity."""
    if is_domain:
        query = select(AccountDomainRow.account_id).where(AccountDomainRow.domain == key)
    elif key.startswith("+"):
        query = select(ContactPhoneRow.contact_id).where(ContactPhoneRow.e164 == key)
    else:
        query = select(ContactEmailRow.contact_id).where(ContactEmailRow.address == key)
    return sorted(set((await session.execute(query)).scalars()))


async def settle_case(
    hub: Hub,
    *,
    key: str,
    settlement: Settlement,
    actor: str,
    contact_id: int | None = None,
    account_id: int | None = None,
    name: str = "",
    viewer: Viewer | None = None,
) -> SettleOutcome:
    """Apply a person's answer about `key` and re-attribute the items it concerns.

    An address or number then belongs to the one contact named (or created) alone, a domain
    to the one account named alone. Raises directory.DirectoryError (or ValueError) with a
    message for the person when the answer does not fit the key.
    """
    key = review_key(key, hub.settings.default_region)
    is_domain = "@" not in key and not key.startswith("+")
    holders = "accounts" if is_domain else "contacts"
    outcome = SettleOutcome()
    async with hub.sessions() as session, session.begin():
        if viewer is not None and not await review.open_visible(session, read_scope(viewer), key):
            raise NoOpenQuestion(f"There is no open question about {key} for you to answer.")
        before = await _holders(session, key, is_domain)
        if settlement is Settlement.IGNORE:
            detail = "ignored"
            outcome.settled = await review.ignore(session, key, actor)
        elif settlement is Settlement.ASSIGN and is_domain:
            if account_id is None:
                raise ValueError("account_id: say which account the domain belongs to")
            dropped = await directory.keep_domain_only_on(session, account_id, key)
            detail = f"domain kept on account {account_id} only ({dropped} other listings dropped)"
        elif settlement is Settlement.ASSIGN:
            if contact_id is None:
                raise ValueError("contact_id: say which contact the address belongs to")
            dropped = await directory.keep_identity_only_on(session, contact_id, key)
            detail = f"belongs to contact {contact_id}" + (
                f" alone ({dropped} other contacts lost it)" if dropped else ""
            )
        else:
            if is_domain:
                raise ValueError("key: a new contact needs an address or number, not a domain")
            if account_id is None:
                raise ValueError("account_id: say at which account to create the contact")
            contact = await directory.create_contact(session, account_id, name, key)
            contact_id = contact.id
            await directory.keep_identity_only_on(session, contact.id, key)
            detail = f"new contact {contact.name} (id {contact.id}) at account {account_id}"
        if settlement is not Settlement.IGNORE:
            outcome.settled = await review.settle(session, key, actor, detail)
        audit.record(
            session,
            actor,
            f"review.{settlement.value}",
            {"key": key, holders: before},
            {
                "settlement": settlement.value,
                "contact_id": contact_id if settlement is not Settlement.IGNORE else None,
                "account_id": account_id if settlement is not Settlement.IGNORE else None,
                holders: await _holders(session, key, is_domain),
                "questions_settled": outcome.settled,
                "detail": detail,
            },
        )
        affected = await affected_by(
            session,
            [] if is_domain else [key],
            [reversed_labels(key)] if is_domain else [],
        )
    if affected:
        outcome.rematched = await rematch(hub, affected)
    return outcome
