"""Stored items for listings, read with SQLAlchemy Core: the columns a listing shows, no more.

Measured at a million items, a 17 ms timeline request spent 15-19 ms of CPU in ORM loading (an
identity map, four selectin loads and a lazy body per row). A page here is one select by item
ids, each item's participants, attributions, sources and attachments aggregated into JSON by
the database, read into slotted records that carry the attribute names of the ORM rows, so
the policy (hub.policy.item_disclosure) and the read models (hub.web.views) take either.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import BigInteger, bindparam, func, literal_column, select
from sqlalchemy.dialects.postgresql import ARRAY, aggregate_order_by
from sqlalchemy.ext.asyncio import AsyncSession

from hub.model import record
from storage.packing import unpack_text
from storage.tables import (
    AttachmentRow,
    AttributionRow,
    ConnectorRow,
    ContactRow,
    InteractionRow,
    ParticipantRow,
    SourceRow,
)


@record
class StoredParticipant:
    role: str
    kind: str
    address: str
    name: str
    contact_id: int | None
    normalized: str | None
    contact_name: str | None  # the directory's name of the contact, read with the item


@record
class StoredAttribution:
    account_id: int
    contact_id: int | None
    rule: str
    confidence: float
    manual: bool
    explanation: str
    removed: bool


@record
class StoredSource:
    connector: str
    external_id: str
    owner: str
    visibility: str
    # The connector's `audit_reads` setting as stored (None: not set, or the connector is
    # gone): read with the page, so that auditing a listing asks nothing more.
    audit_reads: str | None = None


@record
class StoredAttachment:
    id: int
    filename: str
    content_type: str
    size: int
    blob_id: int | None


@record
class StoredInteraction:
    """An interaction as a listing reads it: everything but the body and the raw message."""

    id: int
    channel: str
    direction: str
    occurred_at: datetime
    ends_at: datetime | None
    duration_seconds: int | None
    subject: str
    snippet: str
    message_id: str | None
    thread_id: str | None
    not_logged: str
    extra: dict[str, Any]  # what a source adds: a call's disposition, a meeting's location
    participants: tuple[StoredParticipant, ...]
    attributions: tuple[StoredAttribution, ...]
    sources: tuple[StoredSource, ...]
    attachments: tuple[StoredAttachment, ...]


_ITEM = (
    InteractionRow.id,
    InteractionRow.channel,
    InteractionRow.direction,
    InteractionRow.occurred_at,
    InteractionRow.ends_at,
    InteractionRow.duration_seconds,
    InteractionRow.subject,
    InteractionRow.snippet,
    InteractionRow.message_id,
    InteractionRow.thread_id,
    InteractionRow.not_logged,
    InteractionRow.extra,
)
_PARTICIPANT = (
    ParticipantRow.role,
    ParticipantRow.kind,
    ParticipantRow.address,
    ParticipantRow.name,
    ParticipantRow.contact_id,
    ParticipantRow.normalized,
    # A call lists the contact's name, not the number: one primary-key probe per party.
    select(ContactRow.name).where(ContactRow.id == ParticipantRow.contact_id).scalar_subquery(),
)
_ATTRIBUTION = (
    AttributionRow.account_id,
    AttributionRow.contact_id,
    AttributionRow.rule,
    AttributionRow.confidence,
    AttributionRow.manual,
    AttributionRow.explanation,
    AttributionRow.removed,
)
_SOURCE = (
    SourceRow.connector,
    SourceRow.external_id,
    SourceRow.owner,
    SourceRow.visibility,
    # One probe of the connectors' unique name per source.
    select(ConnectorRow.settings["audit_reads"].as_string())
    .where(ConnectorRow.name == SourceRow.connector)
    .scalar_subquery(),
)
_ATTACHMENT = (
    AttachmentRow.id,
    AttachmentRow.filename,
    AttachmentRow.content_type,
    AttachmentRow.size,
    AttachmentRow.blob_id,
)


def _children(dialect: str, table: Any, columns: tuple[Any, ...]) -> Any:
    """An item's rows of `table` as one JSON array of arrays, in id order, computed by the
    database: one statement reads a whole page. Measured on 100,000 items (SQLite), five
    selects per page cost 8-17 ms of round trips through aiosqlite's thread; one costs ~2 ms."""
    rows: Any
    if dialect == "postgresql":
        rows = func.coalesce(
            func.json_agg(aggregate_order_by(func.json_build_array(*columns), table.id)),
            literal_column("'[]'::json"),
        )
    else:
        # SQLite (3.40 has no ORDER BY in aggregates) reads them through the interaction_id
        # index, whose entries are in (interaction_id, id) order: the order of ids.
        rows = func.json_group_array(func.json_array(*columns))
    return select(rows).where(table.interaction_id == InteractionRow.id).scalar_subquery()


def json_value(value: Any) -> list[Any]:
    """PostgreSQL's driver decodes json itself; SQLite answers text."""
    return orjson.loads(value) if isinstance(value, str | bytes) else value


def json_object(value: Any) -> dict[str, Any]:
    """A JSON column read through Core: decoded by the dialect, or text (SQLite), or NULL."""
    decoded = orjson.loads(value) if isinstance(value, str | bytes) else value
    return decoded if isinstance(decoded, dict) else {}


def bound_in(dialect: str, column: Any, name: str, element: Any = BigInteger) -> Any:
    """`column IN` the values bound as `name` (bound_list), written so that the statement's
    text is the same for any number of values: SQLite reuses its prepared statement and
    psycopg prepares it on the server after five uses. With one placeholder per id,
    PostgreSQL planned every page of items anew (1.5 ms, more than running it took)."""
    if dialect == "postgresql":
        return column == func.any(bindparam(name, type_=ARRAY(element)))
    return column.in_(select(literal_column("value")).select_from(func.json_each(bindparam(name))))


def bound_values(dialect: str, name: str, element: Any = BigInteger) -> Any:
    """The values bound as `name` (bound_list) as a table with one column, "value": to join
    from, where the planner should look each value up in an index rather than weigh the
    list against the table (SQLite scanned a small table for `IN (json_each)`)."""
    if dialect == "postgresql":  # unnest(...) AS name(value)
        unnest = func.unnest(bindparam(name, type_=ARRAY(element)))
        return unnest.table_valued("value").render_derived(name=name)
    return func.json_each(bindparam(name)).table_valued("value").alias(name)


@functools.cache
def _items_statement(dialect: str) -> Any:
    """Built once: building it per page cost more than SQLite took to run it (profiled)."""
    return select(
        *_ITEM,
        _children(dialect, ParticipantRow, _PARTICIPANT),
        _children(dialect, AttributionRow, _ATTRIBUTION),
        _children(dialect, SourceRow, _SOURCE),
        _children(dialect, AttachmentRow, _ATTACHMENT),
    ).where(bound_in(dialect, InteractionRow.id, "ids"))


def bound_list(dialect: str, values: Sequence[Any]) -> Any:
    """The value of a parameter of bound_in: a list, or JSON text for SQLite."""
    return list(values) if dialect == "postgresql" else orjson.dumps(list(values)).decode()


async def stored_interactions(session: AsyncSession, ids: Sequence[int]) -> list[StoredInteraction]:
    """The items `ids` names, in that order; an id no longer stored is left out."""
    if not ids:
        return []
    connection = await session.connection()  # Core: no ORM context for plain rows
    dialect = connection.dialect.name
    rows = await connection.execute(_items_statement(dialect), {"ids": bound_list(dialect, ids)})
    found: dict[int, StoredInteraction] = {}
    for row in rows:
        (
            id_, channel, direction, occurred_at, ends_at, duration_seconds, subject, snippet,
            message_id, thread_id, not_logged, extra, people, links, sources, attachments,
        ) = row  # fmt: skip
        found[id_] = StoredInteraction(
            id_, channel, direction, occurred_at, ends_at, duration_seconds, subject, snippet,
            message_id, thread_id, not_logged, json_object(extra),
            participants=tuple(StoredParticipant(*p) for p in json_value(people)),
            attributions=tuple(
                StoredAttribution(a, c, r, conf, bool(m), e, bool(rm))
                for a, c, r, conf, m, e, rm in json_value(links)
            ),
            sources=tuple(StoredSource(*s) for s in json_value(sources)),
            attachments=tuple(StoredAttachment(*a) for a in json_value(attachments)),
        )  # fmt: skip
    return [found[i] for i in ids if i in found]


async def bodies_of(session: AsyncSession, ids: Sequence[int]) -> dict[int, str]:
    """The body texts of these items (a listing reads none; the review queue reads a few)."""
    if not ids:
        return {}
    rows = await session.execute(
        select(InteractionRow.id, InteractionRow.body).where(InteractionRow.id.in_(list(ids)))
    )
    return {id_: unpack_text(body) for id_, body in rows}
