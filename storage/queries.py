"""Read side: accounts, contacts, timelines and interactions, paged by keyset cursors."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.tables import (
    AccountDomainRow,
    AccountRow,
    AttributionRow,
    ContactEmailRow,
    ContactPhoneRow,
    ContactRow,
    InteractionRow,
    ParticipantRow,
    QuarantineRow,
    SourceRow,
)

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
    rows = list((await session.execute(query.limit(limit + 1))).scalars())
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(rows, encode_cursor([rows[-1].name, rows[-1].id]) if more and rows else None)


async def contacts_of(session: AsyncSession, account_id: int) -> list[ContactRow]:
    query = select(ContactRow).where(ContactRow.account_id == account_id).order_by(ContactRow.name)
    return list((await session.execute(query)).scalars())


def _live(attribution: Any) -> Any:
    return and_(attribution, AttributionRow.removed.is_(False))


def _paged(query: Select[Any], f: TimelineFilter, cursor: str | None) -> Select[Any]:
    if f.channel:
        query = query.where(InteractionRow.channel == f.channel)
    if f.since:
        query = query.where(InteractionRow.occurred_at >= f.since)
    if f.until:
        query = query.where(InteractionRow.occurred_at < f.until)
    if f.q:
        like = f"%{f.q.lower()}%"
        query = query.where(
            or_(
                func.lower(InteractionRow.subject).like(like),
                func.lower(InteractionRow.snippet).like(like),
            )
        )
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


async def _page(session: AsyncSession, query: Select[Any], limit: int) -> Page:
    rows = list((await session.execute(query.limit(limit + 1))).scalars().unique())
    more = len(rows) > limit
    rows = rows[:limit]
    cursor = None
    if more and rows:
        cursor = encode_cursor([rows[-1].occurred_at.isoformat(), rows[-1].id])
    return Page(rows, cursor)


async def account_timeline(
    session: AsyncSession, account_id: int, f: TimelineFilter, cursor: str | None, limit: int
) -> Page:
    query = select(InteractionRow).where(
        exists().where(
            _live(AttributionRow.interaction_id == InteractionRow.id),
            AttributionRow.account_id == account_id,
        )
    )
    return await _page(session, _paged(query, f, cursor), limit)


async def contact_timeline(
    session: AsyncSession, contact_id: int, f: TimelineFilter, cursor: str | None, limit: int
) -> Page:
    query = select(InteractionRow).where(
        or_(
            exists().where(
                _live(AttributionRow.interaction_id == InteractionRow.id),
                AttributionRow.contact_id == contact_id,
            ),
            exists().where(
                ParticipantRow.interaction_id == InteractionRow.id,
                ParticipantRow.contact_id == contact_id,
            ),
        )
    )
    return await _page(session, _paged(query, f, cursor), limit)


async def list_interactions(
    session: AsyncSession,
    *,
    message_id: str | None = None,
    connector: str | None = None,
    external_id: str | None = None,
    unmatched: bool | None = None,
    f: TimelineFilter = TimelineFilter(),
    cursor: str | None = None,
    limit: int = 50,
) -> Page:
    query = select(InteractionRow)
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
    return await _page(session, _paged(query, f, cursor), limit)


async def quarantine(session: AsyncSession, cursor: str | None, limit: int) -> Page:
    query = select(QuarantineRow).order_by(QuarantineRow.id.desc())
    if cursor:
        query = query.where(QuarantineRow.id < decode_cursor(cursor)[0])
    rows = list((await session.execute(query.limit(limit + 1))).scalars())
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(rows, encode_cursor([rows[-1].id]) if more and rows else None)


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
