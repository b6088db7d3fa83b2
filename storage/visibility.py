"""hub.policy's item rules as SQL conditions, so that listings and searches filter in the
database and page correctly. tests/integration/test_visibility.py holds them equal to
hub.policy.disclosure on every combination of owner, attribution and cap."""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, exists, false, func, or_
from sqlalchemy.sql.elements import ColumnElement

from hub.model import Channel, Disclosure, ReadScope
from storage.tables import AttributionRow, InteractionRow, SourceRow

_CAPS = {"full": Disclosure.FULL, "subject": Disclosure.SUBJECT, "metadata": Disclosure.METADATA}


def attributed() -> ColumnElement[bool]:
    return exists().where(
        AttributionRow.interaction_id == InteractionRow.id, AttributionRow.removed.is_(False)
    )


def owned_by(email: str) -> ColumnElement[bool]:
    return exists().where(SourceRow.interaction_id == InteractionRow.id, SourceRow.owner == email)


def _has_owner() -> ColumnElement[bool]:
    return exists().where(SourceRow.interaction_id == InteractionRow.id, SourceRow.owner != "")


def _cap_at_least(level: Disclosure) -> ColumnElement[bool]:
    caps = [name for name, cap in _CAPS.items() if cap >= level]
    return exists().where(
        SourceRow.interaction_id == InteractionRow.id, SourceRow.visibility.in_(caps)
    )


def discloses(scope: ReadScope, level: Disclosure = Disclosure.METADATA) -> ColumnElement[bool]:
    """Items of which the scope's user sees at least `level` (METADATA: that exist for them)."""
    terms: list[Any] = [owned_by(scope.email)] if scope.email else []
    if scope.attributed >= level:
        by_role = attributed()
        if level > Disclosure.METADATA:
            by_role = and_(by_role, _cap_at_least(level))
        terms.append(by_role)
    if scope.ownerless >= level:
        terms.append(and_(~attributed(), ~_has_owner()))
    return or_(*terms) if terms else false()


def text_matches(scope: ReadScope, words: str) -> ColumnElement[bool]:
    """`words` in a subject or body the user may read: a search must not reveal through its
    hits what the hits themselves would not show."""
    like = "%" + words.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    in_subject = func.lower(InteractionRow.subject).like(like, escape="\\")
    in_body = func.lower(InteractionRow.snippet).like(like, escape="\\")
    subject_ok = discloses(scope, Disclosure.SUBJECT)
    body_ok = or_(
        discloses(scope, Disclosure.FULL),
        and_(InteractionRow.channel == Channel.CALL.value, subject_ok),
    )
    return or_(and_(in_subject, subject_ok), and_(in_body, body_ok))
