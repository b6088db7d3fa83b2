"""hub.policy's item rules as SQL conditions, so that listings and searches filter in the
database and page correctly. tests/integration/test_visibility.py holds them equal to
hub.policy.disclosure on every combination of owner, attribution and cap."""

from __future__ import annotations

import functools
from typing import Any

from sqlalchemy import Select, and_, exists, false, literal_column, or_, select
from sqlalchemy.sql.elements import ColumnElement

from hub.model import Channel, Disclosure, ReadScope
from storage.tables import AttributionRow, InteractionRow, SourceRow

_CAPS = {"full": Disclosure.FULL, "subject": Disclosure.SUBJECT, "metadata": Disclosure.METADATA}


def _exists(probed: bool, *conditions: Any) -> ColumnElement[bool]:
    """EXISTS; `probed`, it is kept per row (through the covering indexes of migration 0011).

    For a walk that tests many rows to keep a few (the review queue: 2,900 rows for a page of
    200), PostgreSQL may turn a plain EXISTS into a hash of every row it could match, built
    before the first row is read: of the 70,000 items a salesperson's mailbox owns (6 ms), or
    of every attribution (114,000 at 100,000 items, 14 ms). The review queue's walk took 21 ms
    instead of 7.5 at 1,000,000 items, 39 instead of 8 at 100,000 (EXPLAIN ANALYZE). An
    OFFSET keeps the subquery as written. Timelines test only the rows of their page, and
    there the OFFSET cost them 1-2 ms a page (bench/reads.py): they keep the plain form.
    The review queue now filters most rows by the access they keep (discloses_kept); it
    probes the items of several owners and its sampled rows' subjects and bodies.
    """
    if not probed:
        return exists().where(*conditions)
    probe: Select[Any] = select(literal_column("1")).where(*conditions)
    return exists(probe.offset(0))


def attributed(item: Any = InteractionRow.id, probed: bool = False) -> ColumnElement[bool]:
    return _exists(probed, AttributionRow.interaction_id == item, AttributionRow.removed.is_(False))


def owned_by(
    email: str, item: Any = InteractionRow.id, probed: bool = False
) -> ColumnElement[bool]:
    return _exists(probed, SourceRow.interaction_id == item, SourceRow.owner == email)


def _has_owner(item: Any, probed: bool) -> ColumnElement[bool]:
    return _exists(probed, SourceRow.interaction_id == item, SourceRow.owner != "")


def _cap_at_least(level: Disclosure, item: Any, probed: bool) -> ColumnElement[bool]:
    caps = [name for name, cap in _CAPS.items() if cap >= level]
    return _exists(probed, SourceRow.interaction_id == item, SourceRow.visibility.in_(caps))


def discloses(
    scope: ReadScope,
    level: Disclosure = Disclosure.METADATA,
    item: Any = InteractionRow.id,
    probed: bool = False,
) -> ColumnElement[bool]:
    """Items of which the scope's user sees at least `level` (METADATA: that exist for them).

    `item` is the column holding the item's id: a table that refers to items (the review
    queue's rows) is filtered without joining `interactions` just to name the id, which was
    half the time of the queue's walk (measured).
    """
    terms: list[Any] = [owned_by(scope.email, item, probed)] if scope.email else []
    if scope.attributed >= level:
        by_role = attributed(item, probed)
        if level > Disclosure.METADATA:
            by_role = and_(by_role, _cap_at_least(level, item, probed))
        terms.append(by_role)
    if scope.ownerless >= level:
        terms.append(and_(~attributed(item, probed), ~_has_owner(item, probed)))
    return or_(*terms) if terms else false()


def discloses_kept(scope: ReadScope, row: Any) -> ColumnElement[bool]:
    """discloses(scope) at METADATA, for the rows of `row`'s table, which keep their item's
    access in columns of their own (`item_owner`, `item_attributed`, by the triggers of
    migration 0021): a filter on the row, not two probes of other tables per row. The review
    queue walks and counts thousands of rows to show a few, and the probes were two thirds of
    its time at 1,000,000 items (EXPLAIN ANALYZE).

    An item of several owners (item_owner NULL) is probed as before. A row not yet filled by
    the migration (item_attributed NULL) fails closed: neither attributed nor ownerless.
    """
    owner, kept_attributed = row.item_owner, row.item_attributed
    terms: list[Any] = []
    if scope.email:
        several = and_(owner.is_(None), owned_by(scope.email, row.interaction_id, probed=True))
        terms.append(or_(owner == scope.email, several))
    if scope.attributed >= Disclosure.METADATA:
        terms.append(kept_attributed.is_(True))
    if scope.ownerless >= Disclosure.METADATA:
        terms.append(and_(kept_attributed.is_(False), owner == ""))
    return or_(*terms) if terms else false()


# Built once per scope (SQL conditions are immutable and shared between statements): building
# them anew was a third of the Python time of a rare-word search (profiled).
@functools.lru_cache(maxsize=256)
def subject_readable(scope: ReadScope) -> ColumnElement[bool]:
    """Items whose subject the scope's user may read."""
    return discloses(scope, Disclosure.SUBJECT)


@functools.lru_cache(maxsize=256)
def body_readable(scope: ReadScope) -> ColumnElement[bool]:
    """Items whose body (and snippet) the user may read: FULL, or a call's notes from SUBJECT
    on (hub.policy.shows_body). Implies subject_readable."""
    return or_(
        discloses(scope, Disclosure.FULL),
        and_(InteractionRow.channel == Channel.CALL.value, subject_readable(scope)),
    )


def text_matches(scope: ReadScope, words: str) -> ColumnElement[bool]:
    """All of `words` in a subject or body the user may read, by the full-text index: a
    search must not reveal through its hits what the hits themselves would not show."""
    from storage import fulltext  # here, not above: storage.fulltext builds on this module

    return fulltext.matches(words, subject_readable(scope), body_readable(scope))
