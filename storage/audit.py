"""The audit trail: who changed what a person decided (links, merges, review answers), when,
with the state before and after."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from storage.tables import AuditRow


def record(
    session: AsyncSession,
    actor: str,
    action: str,
    before: dict[str, Any],
    after: dict[str, Any],
    interaction_id: int | None = None,
) -> None:
    """Add one entry to the caller's transaction, so it commits with the change it describes."""
    session.add(
        AuditRow(
            at=datetime.now(UTC),
            actor=actor,
            action=action,
            interaction_id=interaction_id,
            before=before,
            after=after,
        )
    )
