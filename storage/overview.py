"""The start page's reads: a user's own accounts at a glance and what happened on them lately.

Attributed items exist for every role (hub.policy: attributed items are visible by role, at
least their metadata), so counting an account's attributions counts what its owner may see of
it; what each item shows is still the policy's, where the items are rendered. Each read is a
range of an index per account, bounded by the owner's accounts and the last 30 days: the
start page does not grow with the tables.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.tables import AccountRow, AttributionRow

MAX_OWNED = 200  # accounts listed on one start page


@dataclass(frozen=True, slots=True)
class OwnedAccount:
    id: int
    name: str
    last_contact: datetime | None  # the newest item attributed to it
    recent: int  # items attributed to it since the page's `since`


def _live(account: Any) -> list[Any]:
    return [AttributionRow.account_id == account, AttributionRow.removed.is_(False)]


async def owned_accounts(
    session: AsyncSession, owner: str, since: datetime, limit: int = MAX_OWNED
) -> tuple[list[OwnedAccount], bool]:
    """The accounts `owner` owns, most recently in touch first, and whether there are more.

    Last contact is the first entry of the account's range of ix_attributions_account_timeline
    read backwards; the recent count that range from `since` on.
    """
    last = (
        select(AttributionRow.occurred_at)
        .where(*_live(AccountRow.id))
        .order_by(AttributionRow.occurred_at.desc())
        .limit(1)
        .scalar_subquery()
    )
    recent = (
        select(func.count(func.distinct(AttributionRow.interaction_id)))
        .where(*_live(AccountRow.id), AttributionRow.occurred_at >= since)
        .scalar_subquery()
    )
    newest = last.label("last")
    rows = await session.execute(
        select(AccountRow.id, AccountRow.name, newest, recent.label("recent"))
        .where(AccountRow.owner == owner)
        .order_by(newest.desc().nulls_last(), AccountRow.name, AccountRow.id)
        .limit(limit + 1)
    )
    found = [OwnedAccount(*row) for row in rows]
    return found[:limit], len(found) > limit


async def recent_on(
    session: AsyncSession, account_ids: list[int], since: datetime, limit: int
) -> list[int]:
    """Ids of the newest items attributed to any of these accounts since `since`, newest first."""
    if not account_ids:
        return []
    newest = func.max(AttributionRow.occurred_at)
    rows = await session.execute(
        select(AttributionRow.interaction_id)
        .where(
            AttributionRow.account_id.in_(account_ids),
            AttributionRow.removed.is_(False),
            AttributionRow.occurred_at >= since,
        )
        .group_by(AttributionRow.interaction_id)
        .order_by(newest.desc(), AttributionRow.interaction_id.desc())
        .limit(limit)
    )
    return list(rows.scalars())
