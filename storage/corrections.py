"""Manual corrections of attributions, each recorded in the audit log.

A person's decision outranks every rule: an added link is marked manual (re-matching never
removes it) and a removed one stays as a tombstone (re-matching never adds it back).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from storage import audit
from storage.tables import AccountRow, AttributionRow, ContactRow, InteractionRow


class CorrectionError(ValueError):
    """The correction cannot be applied as asked; the message says why."""


def _live(row: InteractionRow) -> list[dict[str, Any]]:
    return [
        {"account_id": a.account_id, "contact_id": a.contact_id, "rule": a.rule, "manual": a.manual}
        for a in row.attributions
        if not a.removed
    ]


async def correct(
    session: AsyncSession,
    row: InteractionRow,
    *,
    actor: str,
    action: str,
    account_id: int,
    contact_id: int | None,
) -> None:
    if action not in ("add", "remove"):
        raise CorrectionError("action: use add or remove")
    if await session.get(AccountRow, account_id) is None:
        raise CorrectionError(f"account_id: there is no account {account_id}")
    if contact_id is not None:
        contact = await session.get(ContactRow, contact_id)
        if contact is None or contact.account_id != account_id:
            raise CorrectionError(f"contact_id: {contact_id} is not a contact of {account_id}")
    before = _live(row)
    same_account = [a for a in row.attributions if a.account_id == account_id]
    if action == "add":
        wanted = [a for a in same_account if a.contact_id == contact_id]
        for tombstone in (a for a in same_account if a.removed):
            tombstone.removed = False  # the person takes back an earlier removal
            tombstone.manual = True
        if wanted:
            for attribution in wanted:
                attribution.manual, attribution.removed = True, False
        else:
            row.attributions.append(
                AttributionRow(
                    account_id=account_id,
                    contact_id=contact_id,
                    rule="manual",
                    confidence=1.0,
                    explanation=f"assigned by {actor}",
                    manual=True,
                    removed=False,
                    occurred_at=row.occurred_at,
                )
            )
    else:
        # A removal says "this item is not about this account": the whole account goes, so that
        # no other rule brings it back through another of its contacts.
        targets = same_account
        for attribution in targets:
            attribution.removed = attribution.manual = True
        if not targets:  # nothing to remove yet, but the rules must not add it later either
            row.attributions.append(
                AttributionRow(
                    account_id=account_id,
                    contact_id=None,
                    rule="manual",
                    confidence=1.0,
                    explanation=f"removed by {actor}",
                    manual=True,
                    removed=True,
                    occurred_at=row.occurred_at,
                )
            )
    await session.flush()
    audit.record(
        session,
        actor,
        f"attribution.{action}",
        {"attributions": before},
        {"attributions": _live(row)},
        interaction_id=row.id,
    )
