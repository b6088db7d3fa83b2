"""The review queue as people use it: open cases with suggestions, and settling them.

Settling teaches the directory (an address joins a contact, a new contact is created, a
domain or address is kept on one record only) or ignores the key; the items concerned are then
re-attributed through the usual retroactive re-matching, so one click fixes every item of a
sender, past and future.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import select

from hub.bootstrap import Hub
from hub.model import ReviewKind
from hub.rematch import rematch
from matching.identities import reversed_labels
from matching.suggest import Suggestion, suggest
from storage import directory, review
from storage.queries import Page
from storage.rematch import RematchCounts, affected_by
from storage.tables import AuditRow, InteractionRow

BODIES = 3  # signatures read per case


class Settlement(enum.StrEnum):
    ASSIGN = "assign"  # key belongs to contact_id alone, or the domain to account_id alone
    CREATE_CONTACT = "create-contact"  # a new contact `name` at account_id gets the key
    IGNORE = "ignore"  # stop asking about key


@dataclass(frozen=True, slots=True)
class ItemSummary:
    id: int
    subject: str
    occurred_at: datetime


@dataclass(frozen=True, slots=True)
class ReviewEntry:
    case: review.OpenCase
    suggestions: list[Suggestion]
    items: list[ItemSummary]


@dataclass
class SettleOutcome:
    settled: int = 0
    rematched: RematchCounts = field(default_factory=RematchCounts)


async def review_queue(hub: Hub, kind: str | None, cursor: str | None, limit: int) -> Page:
    """One page of open cases, each with ranked suggestions and its latest items."""
    if kind is not None and kind not in {k.value for k in ReviewKind}:
        raise ValueError(f"kind: use one of {', '.join(k.value for k in ReviewKind)}")
    index = await hub.identity_index()
    async with hub.sessions() as session:
        page = await review.list_open(session, kind, cursor, limit)
        ids = {i for case in page.items for i in case.interaction_ids}
        rows = {
            row.id: row
            for row in (
                await session.execute(select(InteractionRow).where(InteractionRow.id.in_(ids)))
            ).scalars()
        }
    entries = []
    for case in page.items:
        items = [rows[i] for i in case.interaction_ids if i in rows]
        suggestions = suggest(
            ReviewKind(case.kind),
            case.key,
            case.name,
            [row.body_text for row in items[:BODIES]],
            case.candidates,
            index,
        )
        summaries = [ItemSummary(r.id, r.subject, r.occurred_at) for r in items]
        entries.append(ReviewEntry(case, suggestions, summaries))
    return Page(entries, page.next_cursor)


async def settle_case(
    hub: Hub,
    *,
    key: str,
    settlement: Settlement,
    actor: str,
    contact_id: int | None = None,
    account_id: int | None = None,
    name: str = "",
) -> SettleOutcome:
    """Apply a person's answer about `key` and re-attribute the items it concerns.

    Raises directory.DirectoryError (or ValueError) with a message for the person when the
    answer does not fit the key.
    """
    key = key.strip()
    is_domain = "@" not in key and not key.startswith("+")
    outcome = SettleOutcome()
    async with hub.sessions() as session, session.begin():
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
            if account_id is None or is_domain:
                raise ValueError("account_id: a new contact needs an account and an address")
            contact = await directory.create_contact(session, account_id, name, key)
            detail = f"new contact {contact.name} (id {contact.id}) at account {account_id}"
        if settlement is not Settlement.IGNORE:
            outcome.settled = await review.settle(session, key, actor, detail)
        session.add(
            AuditRow(
                at=datetime.now(UTC),
                actor=actor,
                action=f"review.{settlement.value}",
                interaction_id=None,
                before={"key": key},
                after={"settlement": detail},
            )
        )
        affected = await affected_by(
            session,
            [] if is_domain else [key],
            [reversed_labels(key)] if is_domain else [],
        )
    if affected:
        outcome.rematched = await rematch(hub, affected)
    return outcome
