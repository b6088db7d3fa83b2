"""The audit trail: who did what and when (DESIGN.md "Who sees what"): logins, user, token,
connector and policy changes, manual links, merges and review answers with the state before
and after, exports, erasures and audited reads."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from storage.tables import AuditRow


def record(
    session: AsyncSession,
    actor: str,
    action: str,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    interaction_id: int | None = None,
    target: str = "",
) -> None:
    """Add one entry to the caller's transaction, so it commits with the change it describes."""
    session.add(
        AuditRow(
            at=datetime.now(UTC),
            actor=actor,
            action=action,
            interaction_id=interaction_id,
            target=target[:320],
            before=before or {},
            after=after or {},
        )
    )
