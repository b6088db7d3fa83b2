"""A review row's copy of its item's access (item_owner, item_attributed: migration 0021) is
kept by the database's triggers, whatever writes the sources and attributions: here random
inserts, deletes, owner changes, tombstones and moves between items, of sources, attributions
and review rows, straight in SQL as any code path would send them, on both databases. After
every write each row must hold what storage.visibility would probe. A stale copy shows a
salesperson a colleague's private mail, or hides a case from the person who must answer it."""

from __future__ import annotations

import importlib
import random
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from hub.bootstrap import Hub
from hub.policy import Viewer, read_scope
from storage import corrections, db, review
from storage.tables import (
    AccountRow,
    AttributionRow,
    InteractionRow,
    ReviewItemRow,
    SourceRow,
)
from tests.conftest import PG_URL, empty_pg_database
from tests.rows import item_row, link_row, review_row

migration = importlib.import_module("storage.migrations.versions.0021_review_item_access")

ANNA, BEN = "anna@ourco.example", "ben@ourco.example"
T0 = datetime(2025, 3, 1, tzinfo=UTC)
ITEMS = 12


def _review_row(item: int, key: str) -> dict[str, Any]:
    return review_row(item, T0 + timedelta(minutes=item), key, T0)


def _source_row(item: int, owner: str, n: int) -> dict[str, Any]:
    return {
        "interaction_id": item,
        "connector": "imap",
        "external_id": f"e{n}",
        "owner": owner,
        "visibility": "full",
        "occurred_at": T0 + timedelta(minutes=item),
    }


async def _expected(session: AsyncSession) -> dict[int, tuple[str | None, bool]]:
    """Per item: its one owner ("" for none, None for several) and whether it is attributed."""
    owners: dict[int, set[str]] = {}
    for item, owner in await session.execute(select(SourceRow.interaction_id, SourceRow.owner)):
        if owner:
            owners.setdefault(item, set()).add(owner)
    attributed = set(
        (
            await session.execute(
                select(AttributionRow.interaction_id).where(AttributionRow.removed.is_(False))
            )
        ).scalars()
    )
    items = (await session.execute(select(InteractionRow.id))).scalars()
    found = {}
    for item in items:
        mine = owners.get(item, set())
        found[item] = (
            next(iter(mine)) if len(mine) == 1 else None if mine else "",
            item in attributed,
        )
    return found


async def _assert_kept(session: AsyncSession, after: str) -> int:
    expected = await _expected(session)
    rows = await session.execute(
        select(
            ReviewItemRow.id,
            ReviewItemRow.interaction_id,
            ReviewItemRow.item_owner,
            ReviewItemRow.item_attributed,
        )
    )
    checked = 0
    for row_id, item, owner, attributed in rows:
        assert (owner, bool(attributed)) == expected[item], f"row {row_id} after {after}"
        assert attributed is not None, f"row {row_id} after {after}: not filled"
        checked += 1
    return checked


async def _one_write(session: AsyncSession, rng: random.Random, n: int) -> str:
    """One random write of the kinds the code sends; returns what it did, for the message."""
    items = list((await session.execute(select(InteractionRow.id))).scalars())
    sources = list((await session.execute(select(SourceRow.id))).scalars())
    links = list((await session.execute(select(AttributionRow.id))).scalars())
    rows = list((await session.execute(select(ReviewItemRow.id))).scalars())
    item, other = rng.choice(items), rng.choice(items)
    owner = rng.choice([ANNA, BEN, ""])
    writes = "source+ source+ source- owner source> link+ link+ link- tombstone link> row+ row+"
    what = rng.choice([*writes.split(), "row>", "item-"])
    if what == "source+" or (what in ("source-", "owner", "source>") and not sources):
        await session.execute(insert(SourceRow), [_source_row(item, owner, n)])
        return f"a source of {item} owned by {owner!r}"
    if what == "source-":
        await session.execute(delete(SourceRow).where(SourceRow.id == rng.choice(sources)))
    elif what == "owner":
        chosen = rng.choice(sources)
        await session.execute(update(SourceRow).where(SourceRow.id == chosen).values(owner=owner))
    elif what == "source>":
        chosen = rng.choice(sources)
        await session.execute(
            update(SourceRow).where(SourceRow.id == chosen).values(interaction_id=other)
        )
    elif what == "link+" or (what in ("link-", "tombstone", "link>") and not links):
        removed = rng.random() < 0.3
        await session.execute(insert(AttributionRow), [link_row(item, T0, 1, None, removed)])
        return f"an attribution of {item} (tombstone: {removed})"
    elif what == "link-":
        await session.execute(delete(AttributionRow).where(AttributionRow.id == rng.choice(links)))
    elif what == "tombstone":
        chosen, removed = rng.choice(links), rng.random() < 0.5
        await session.execute(
            update(AttributionRow).where(AttributionRow.id == chosen).values(removed=removed)
        )
    elif what == "link>":
        chosen = rng.choice(links)
        await session.execute(
            update(AttributionRow).where(AttributionRow.id == chosen).values(interaction_id=other)
        )
    elif what == "row+" or (what == "row>" and not rows):
        await session.execute(insert(ReviewItemRow), [_review_row(item, f"k{n}@x.example")])
        return f"a review row of {item}"
    elif what == "row>":
        chosen = rng.choice(rows)
        await session.execute(
            update(ReviewItemRow).where(ReviewItemRow.id == chosen).values(interaction_id=other)
        )
    elif len(items) > ITEMS // 2:  # item-: deleted with its rows (ON DELETE CASCADE)
        await session.execute(delete(InteractionRow).where(InteractionRow.id == item))
    return f"{what} ({item}, {other}, {owner!r})"


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_every_write_of_sources_attributions_and_rows_keeps_the_copy(
    hub: Hub, seed: int
) -> None:
    rng = random.Random(seed)
    async with hub.sessions() as session, session.begin():
        await session.execute(insert(AccountRow), [{"id": 1, "name": "A", "owner": ""}])
        await session.execute(
            insert(InteractionRow), [item_row(n, T0 + timedelta(minutes=n)) for n in range(1, 13)]
        )
        await session.execute(
            insert(ReviewItemRow), [_review_row(n, f"first{n}@x.example") for n in range(1, 13)]
        )
    checked = 0
    for n in range(120):
        async with hub.sessions() as session, session.begin():
            done = await _one_write(session, rng, n)
        async with hub.sessions() as session:
            checked += await _assert_kept(session, f"write {n}: {done}")
    assert checked > 500, "the writes must leave rows to check"


async def _queue_keys(hub: Hub, email: str) -> set[str]:
    async with hub.sessions() as session:
        page = await review.list_open(
            session, read_scope(Viewer.of(email, "sales")), None, None, 50
        )
    return {case.key for case in page.items}


async def test_a_removed_attribution_takes_a_private_mails_case_from_a_colleague(hub: Hub) -> None:
    """Ben sees the question about a mail of Anna's mailbox while it is attributed to a
    customer; once a person removes the attribution, the mail is Anna's private mail again,
    and so is its question. Another owner's source on it then shows it to Ben again."""
    async with hub.sessions() as session, session.begin():
        await session.execute(insert(AccountRow), [{"id": 1, "name": "A", "owner": ""}])
        await session.execute(insert(InteractionRow), [item_row(1, T0)])
        await session.execute(insert(SourceRow), [_source_row(1, ANNA, 1)])
        await session.execute(insert(AttributionRow), [link_row(1, T0, 1, None)])
        await session.execute(insert(ReviewItemRow), [_review_row(1, "jana@gmail.example")])
    assert await _queue_keys(hub, BEN) == {"jana@gmail.example"}
    async with hub.sessions() as session, session.begin():
        item = await session.get(InteractionRow, 1)
        assert item is not None
        await session.refresh(item, ["attributions"])
        await corrections.correct(
            session, item, actor=ANNA, action="remove", account_id=1, contact_id=None
        )
    assert await _queue_keys(hub, BEN) == set(), "a private mail's question is its owner's"
    assert await _queue_keys(hub, ANNA) == {"jana@gmail.example"}
    async with hub.sessions() as session, session.begin():
        await session.execute(insert(SourceRow), [_source_row(1, BEN, 2)])
    assert await _queue_keys(hub, BEN) == {"jana@gmail.example"}, "now in Ben's mailbox too"


@pytest.fixture
def old_database(tmp_path: Path) -> Iterator[str]:
    """A database of its own at migration 0020, the one before the copy."""
    if not PG_URL:
        url = f"sqlite:///{tmp_path / 'old.db'}"
        db.upgrade(url, "0020")
        yield url
        return
    with empty_pg_database("crmhub_access") as url:
        db.upgrade(url, "0020")
        yield url


def test_the_upgrade_fills_the_copy_of_every_stored_row_across_batches(old_database: str) -> None:
    """Rows stored before 0021 get their item's access; on PostgreSQL in batches of ids, so
    rows far apart in id land in different batches."""
    engine = create_engine(db.sync_url(old_database))
    # The models' tables: an insert names only the columns given and those with defaults,
    # which 0020 has (the copy has no default).
    items, sources = InteractionRow.__table__, SourceRow.__table__
    links, rows = AttributionRow.__table__, ReviewItemRow.__table__
    owners = {1: [ANNA], 2: [ANNA, BEN], 3: [""], 4: [BEN, BEN]}
    with engine.begin() as connection:
        connection.execute(insert(AccountRow.__table__), [{"id": 1, "name": "A", "owner": ""}])
        connection.execute(insert(items), [item_row(n, T0) for n in owners])
        connection.execute(
            insert(sources),
            [
                _source_row(item, owner, 10 * item + m)
                for item, named in owners.items()
                for m, owner in enumerate(named)
            ],
        )
        connection.execute(
            insert(links), [link_row(1, T0, 1, None), link_row(3, T0, 1, None, removed=True)]
        )
        stored = [(1, 1), (2, 2), (migration.BATCH, 3), (migration.BATCH + 1, 4), (12_001, 1)]
        connection.execute(
            insert(rows),
            [{**_review_row(item, f"k{id_}@x.example"), "id": id_} for id_, item in stored],
        )
    db.upgrade(old_database)
    with engine.connect() as connection:
        copied = connection.execute(
            select(rows.c.id, rows.c.item_owner, rows.c.item_attributed).order_by(rows.c.id)
        ).all()
    engine.dispose()
    assert [(id_, owner, bool(attributed)) for id_, owner, attributed in copied] == [
        (1, ANNA, True),
        (2, None, False),  # two owners: probed by the queue
        (migration.BATCH, "", False),  # a tombstone attributes nothing
        (migration.BATCH + 1, BEN, False),  # two sources of one owner
        (12_001, ANNA, True),
    ]


@pytest.mark.skipif(
    not PG_URL,
    reason="PostgreSQL only (set CRMHUB_TEST_DATABASE_URL): SQLite runs one writer at a time",
)
def test_two_writers_of_one_item_at_once_leave_the_copy_of_the_later(database_url: str) -> None:
    """A question opened about an attributed mail while a person removes the attribution in
    another transaction: without a lock each computes the copy from what it sees, and the row
    would stay "attributed", visible to every salesperson. The second writer must wait for the
    first to commit and then compute from both changes."""
    db.upgrade(database_url)
    engine = create_engine(db.sync_url(database_url))
    try:
        with engine.begin() as connection:
            connection.execute(insert(AccountRow.__table__), [{"id": 1, "name": "A", "owner": ""}])
            connection.execute(insert(InteractionRow.__table__), [item_row(1, T0)])
            connection.execute(insert(SourceRow.__table__), [_source_row(1, ANNA, 1)])
            connection.execute(insert(AttributionRow.__table__), [link_row(1, T0, 1, None)])
        opening = engine.connect()
        opening.begin()
        opening.execute(insert(ReviewItemRow.__table__), [_review_row(1, "jana@gmail.example")])
        removed = threading.Event()

        def remove() -> None:
            with engine.begin() as connection:
                connection.execute(update(AttributionRow.__table__).values(removed=True))
            removed.set()

        remover = threading.Thread(target=remove, daemon=True)
        remover.start()
        assert not removed.wait(0.5), "the second writer waits for the first to commit"
        opening.commit()
        opening.close()
        remover.join(10)
        assert removed.is_set()
        with engine.connect() as connection:
            copy = connection.execute(
                select(ReviewItemRow.item_owner, ReviewItemRow.item_attributed)
            ).one()
    finally:
        engine.dispose()
    assert tuple(copy) == (ANNA, False), "the tombstone counts: Anna's private mail again"
