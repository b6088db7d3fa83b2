"""Calendar feeds: one read-only subscription link per account, so that a manager can follow a
key account's meetings in any calendar client.

The token is random (256 bits), shown once when the link is made and stored as SHA-256 only,
as API tokens are (storage.tokens): the database never holds a usable link. Making a new link
revokes the account's previous one; a revoked link finds nothing. Every change is audited.
The caller's transaction commits.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage import audit
from storage.tables import CalendarFeedRow, UserRow


@dataclass(frozen=True)
class CalendarFeed:
    """What may be shown of a live feed: never its token or the token's hash."""

    id: int
    account_id: int
    created_by: str
    created_at: datetime


@dataclass(frozen=True)
class FeedReader:
    """Whom a feed reads as: its creator, with their role as it is now."""

    feed: CalendarFeed
    email: str
    role: str


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _feed(row: CalendarFeedRow) -> CalendarFeed:
    return CalendarFeed(row.id, row.account_id, row.created_by, row.created_at)


async def create_feed(
    session: AsyncSession, account_id: int, creator: str
) -> tuple[CalendarFeed, str]:
    """A new link for the account (the previous one revoked); returns it with its token."""
    await revoke_feeds(session, account_id, creator)
    token = secrets.token_urlsafe(32)
    row = CalendarFeedRow(
        account_id=account_id,
        token_sha256=_digest(token),
        created_by=creator,
        created_at=datetime.now(UTC),
    )
    session.add(row)
    await session.flush()
    audit.record(
        session, creator, "calendar_feed.create", after={"account_id": account_id, "id": row.id}
    )
    return _feed(row), token


async def revoke_feeds(session: AsyncSession, account_id: int, actor: str) -> int:
    """Revoke the account's live link(s); returns how many were live."""
    now = datetime.now(UTC)
    revoked = await session.execute(
        update(CalendarFeedRow)
        .where(CalendarFeedRow.account_id == account_id, CalendarFeedRow.revoked_at.is_(None))
        .values(revoked_at=now)
        .returning(CalendarFeedRow.id)
    )
    ids = list(revoked.scalars())
    if ids:
        audit.record(
            session, actor, "calendar_feed.revoke", before={"account_id": account_id, "ids": ids}
        )
    return len(ids)


async def live_feed(session: AsyncSession, account_id: int) -> CalendarFeed | None:
    """The account's live link, if it has one (for the account's page)."""
    row = (
        await session.execute(
            select(CalendarFeedRow).where(
                CalendarFeedRow.account_id == account_id, CalendarFeedRow.revoked_at.is_(None)
            )
        )
    ).scalar_one_or_none()
    return _feed(row) if row is not None else None


async def feed_reader(session: AsyncSession, token: str) -> FeedReader | None:
    """The live feed a token opens, read as its creator; None for an unknown or revoked
    token, and for one whose creator is disabled or gone (their reading right ended)."""
    found = (
        await session.execute(
            select(CalendarFeedRow, UserRow.role)
            .join(UserRow, UserRow.email == CalendarFeedRow.created_by)
            .where(
                CalendarFeedRow.token_sha256 == _digest(token),
                CalendarFeedRow.revoked_at.is_(None),
                UserRow.disabled.is_(False),
            )
        )
    ).one_or_none()
    if found is None:
        return None
    row, role = found
    return FeedReader(_feed(row), row.created_by, role)
