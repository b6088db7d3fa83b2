"""Read side: accounts, contacts, timelines and interactions, paged by keyset cursors."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, exists, func, or_, select, union
from sqlalchemy.ext.asyncio import AsyncSession

from hub.model import Disclosure, ReadScope
from storage.tables import (
    AccountDomainRow,
    AccountRow,
    AttributionRow,
    AuditRow,
    ContactEmailRow,
    ContactPhoneRow,
    ContactRow,
    InteractionRow,
    ParticipantRow,
    QuarantineRow,
    SourceRow,
)
from storage.visibility import discloses, text_matches

MAX_LIMIT = 200


class BadCursor(ValueError):
    """A pagination cursor that this server did not hand out."""


def encode_cursor(values: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> list[Any]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, UnicodeDecodeError) as e:
        raise BadCursor(f"cursor {cursor[:40]!r} is not valid") from e
    if not isinstance(values, list):
        raise BadCursor(f"cursor {cursor[:40]!r} is not valid")
    return values


@dataclass
class Page:
    items: list[Any]
    next_cursor: str | None


@dataclass(frozen=True)
class TimelineFilter:
    channel: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    q: str | None = None


async def list_accounts(
    session: AsyncSession, q: str | None, cursor: str | None, limit: int
) -> Page:
    query = select(AccountRow).order_by(AccountRow.name, AccountRow.id)
    if q:
        like = f"%{q.lower()}%"
        query = query.where(
            or_(
                func.lower(AccountRow.name).like(like),
                exists().where(
                    AccountDomainRow.account_id == AccountRow.id, AccountDomainRow.domain.like(like)
                ),
            )
        )
    if cursor:
        name, id_ = decode_cursor(cursor)
        query = query.where(
            or_(AccountRow.name > name, and_(AccountRow.name == name, AccountRow.id > id_))
        )
    return await _keyset(session, query, limit, lambda row: [row.name, row.id])


async def contacts_of(session: AsyncSession, account_id: int) -> list[ContactRow]:
    query = select(ContactRow).where(ContactRow.account_id == account_id).order_by(ContactRow.name)
    return list((await session.execute(query)).scalars())


def _live(attribution: Any) -> Any:
    return and_(attribution, AttributionRow.removed.is_(False))


def _paged(
    query: Select[Any], scope: ReadScope, f: TimelineFilter, cursor: str | None
) -> Select[Any]:
    if f.channel:
        query = query.where(InteractionRow.channel == f.channel)
    if f.since:
        query = query.where(InteractionRow.occurred_at >= f.since)
    if f.until:
        query = query.where(InteractionRow.occurred_at < f.until)
    if f.q:
        query = query.where(text_matches(scope, f.q))
    if cursor:
        stamp, id_ = decode_cursor(cursor)
        try:
            at = datetime.fromisoformat(stamp)
        except (TypeError, ValueError) as e:
            raise BadCursor("cursor is not valid") from e
        query = query.where(
            or_(
                InteractionRow.occurred_at < at,
                and_(InteractionRow.occurred_at == at, InteractionRow.id < id_),
            )
        )
    return query.order_by(InteractionRow.occurred_at.desc(), InteractionRow.id.desc())


async def _keyset(
    session: AsyncSession, query: Select[Any], limit: int, position: Callable[[Any], list[Any]]
) -> Page:
    """One page of `query` (already ordered and started after the cursor); the next cursor is
    the `position` of its last row, handed out only when one more row exists."""
    rows = list((await session.execute(query.limit(limit + 1))).scalars().unique())
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(rows, encode_cursor(position(rows[-1])) if more and rows else None)


async def _page(session: AsyncSession, query: Select[Any], limit: int) -> Page:
    return await _keyset(session, query, limit, lambda row: [row.occurred_at.isoformat(), row.id])


async def account_timeline(
    session: AsyncSession,
    scope: ReadScope,
    account_id: int,
    f: TimelineFilter,
    cursor: str | None,
    limit: int,
) -> Page:
    """Every item here is attributed, so it exists for every user (DESIGN.md "Who sees what");
    only a text search must stay within what the user may read."""
    query = select(InteractionRow).where(
        exists().where(
            _live(AttributionRow.interaction_id == InteractionRow.id),
            AttributionRow.account_id == account_id,
        )
    )
    return await _page(session, _paged(query, scope, f, cursor), limit)


async def contact_timeline(
    session: AsyncSession,
    scope: ReadScope,
    contact_id: int,
    f: TimelineFilter,
    cursor: str | None,
    limit: int,
) -> Page:
    # Driven by the contact's own rows (attributions and participants by contact_id), so the
    # cost follows the contact's items, never the size of the table.
    linked = union(
        select(AttributionRow.interaction_id).where(
            AttributionRow.contact_id == contact_id, AttributionRow.removed.is_(False)
        ),
        select(ParticipantRow.interaction_id).where(ParticipantRow.contact_id == contact_id),
    )
    query = select(InteractionRow).where(InteractionRow.id.in_(linked), discloses(scope))
    return await _page(session, _paged(query, scope, f, cursor), limit)


async def list_interactions(
    session: AsyncSession,
    scope: ReadScope,
    *,
    message_id: str | None = None,
    connector: str | None = None,
    external_id: str | None = None,
    unmatched: bool | None = None,
    f: TimelineFilter = TimelineFilter(),
    cursor: str | None = None,
    limit: int = 50,
) -> Page:
    query = select(InteractionRow).where(discloses(scope))
    if message_id:
        query = query.where(InteractionRow.message_id == message_id)
    if connector or external_id:
        conditions = [SourceRow.interaction_id == InteractionRow.id]
        if connector:
            conditions.append(SourceRow.connector == connector)
        if external_id:
            conditions.append(SourceRow.external_id == external_id)
        query = query.where(exists().where(*conditions))
    if unmatched is not None:
        has = exists().where(_live(AttributionRow.interaction_id == InteractionRow.id))
        query = query.where(~has if unmatched else has)
        if unmatched and scope.ownerless is Disclosure.NONE:
            # Only the user's own can be unmatched and visible: start from their sources.
            own = select(SourceRow.interaction_id).where(SourceRow.owner == scope.email)
            query = query.where(InteractionRow.id.in_(own))
    return await _page(session, _paged(query, scope, f, cursor), limit)


async def quarantine(
    session: AsyncSession, owner: str | None, cursor: str | None, limit: int
) -> Page:
    """Quarantined items, newest first: all of them, or with `owner` those of that owner."""
    query = select(QuarantineRow).order_by(QuarantineRow.id.desc())
    if owner is not None:
        query = query.where(QuarantineRow.owner == owner)
    if cursor:
        query = query.where(QuarantineRow.id < decode_cursor(cursor)[0])
    return await _keyset(session, query, limit, lambda row: [row.id])


async def contacts_by_identity(
    session: AsyncSession, *, email: str | None = None, phone: str | None = None
) -> list[ContactRow]:
    if email:
        query = select(ContactRow).join(ContactEmailRow).where(ContactEmailRow.address == email)
    elif phone:
        query = select(ContactRow).join(ContactPhoneRow).where(ContactPhoneRow.e164 == phone)
    else:
        return []
    return list((await session.execute(query)).scalars().unique())


async def accounts_by_ids(session: AsyncSession, ids: set[int]) -> dict[int, AccountRow]:
    if not ids:
        return {}
    rows = await session.execute(select(AccountRow).where(AccountRow.id.in_(ids)))
    return {r.id: r for r in rows.scalars()}


async def accounts_by_domains(session: AsyncSession, domains: list[str]) -> list[AccountRow]:
    if not domains:
        return []
    query = select(AccountRow).join(AccountDomainRow).where(AccountDomainRow.domain.in_(domains))
    return list((await session.execute(query)).scalars().unique())


@dataclass(frozen=True)
class AuditFilter:
    actor: str | None = None
    action: str | None = None  # an action, or a prefix ending in "." ("user.")
    target: str | None = None
    since: datetime | None = None
    until: datetime | None = None


async def audit_log(session: AsyncSession, f: AuditFilter, cursor: str | None, limit: int) -> Page:
    """The audit log, newest first, filtered; paged by id (entries are only ever appended)."""
    query = select(AuditRow).order_by(AuditRow.id.desc())
    if f.actor:
        query = query.where(AuditRow.actor == f.actor)
    if f.action:
        if f.action.endswith("."):
            query = query.where(AuditRow.action.startswith(f.action, autoescape=True))
        else:
            query = query.where(AuditRow.action == f.action)
    if f.target:
        query = query.where(AuditRow.target == f.target)
    if f.since:
        query = query.where(AuditRow.at >= f.since)
    if f.until:
        query = query.where(AuditRow.at < f.until)
    if cursor:
        query = query.where(AuditRow.id < decode_cursor(cursor)[0])
    return await _keyset(session, query, limit, lambda row: [row.id])
