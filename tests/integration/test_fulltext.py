"""The full-text index (storage.fulltext) on SQLite, or on PostgreSQL in CI: kept at ingest,
filled by migration 0008, emptied by deletion, rewritten by erasure; searches newest first,
page by page, within what each user may read, and through the index, as the plans show."""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from hub.bootstrap import Hub
from hub.model import Attribution, Channel, Interaction, RawItem, ReadScope
from hub.policy import Role, Viewer, read_scope
from hub.privacy import erase_subject
from storage import db
from storage.deletion import delete_items
from storage.fulltext import ItemText, index_items, search_ids
from storage.ingest import Provenance, StoredItem
from storage.packing import pack_text
from storage.tables import AccountRow, InteractionRow, SourceRow
from storage.visibility import discloses, text_matches
from tests.conftest import PG_URL, empty_pg_database
from tests.integration.person import ADDRESS, store_person

ANNA = "anna@ourco.example"
SALES = read_scope(Viewer(ANNA, Role.SALES))
CALLCENTER = read_scope(Viewer("cc@ourco.example", Role.CALLCENTER))
ADMIN = read_scope(Viewer("it@ourco.example", Role.ADMIN))
T0 = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)


def _item(
    n: int,
    subject: str,
    body: str,
    at: datetime,
    channel: Channel = Channel.EMAIL,
    attributions: list[Attribution] | None = None,
) -> StoredItem:
    interaction = Interaction(
        channel, at, f"k{n}", subject=subject, snippet=body[:20], body_text=body
    )
    return StoredItem(RawItem(f"e{n}", b"raw"), interaction, [], attributions or [], "inbound", "")


async def _search(hub: Hub, scope: ReadScope, words: str, **kw: Any) -> list[int]:
    async with hub.sessions() as session:
        return await search_ids(
            session, scope, words, [discloses(scope)], kw.get("before"), kw.get("limit", 50)
        )


async def _matching(hub: Hub, scope: ReadScope, words: str) -> set[int]:
    """The same question through text_matches, the filter of timelines."""
    async with hub.sessions() as session:
        found = await session.execute(
            select(InteractionRow.id).where(discloses(scope), text_matches(scope, words))
        )
        return set(found.scalars())


async def _ids(hub: Hub) -> dict[str, int]:
    async with hub.sessions() as session:
        rows = await session.execute(select(InteractionRow.dedupe_key, InteractionRow.id))
        return {key: id_ for key, id_ in rows}


async def test_ingest_indexes_subject_and_whole_body_in_its_transaction(hub: Hub) -> None:
    long_body = "Guten Tag,\n" + "Text ohne Belang. " * 400 + "Die Steuerungsmodule fehlen."
    items = [
        _item(1, "Rechnungen März", "Bitte prüfen.", T0),
        _item(2, "Angebot", long_body, T0 + timedelta(hours=1)),
        _item(3, "Straßenbau", "Herr Müller, two invoices", T0 + timedelta(hours=2)),
    ]
    counts = await hub.store.ingest("mail", items, [], {}, Provenance(owner=ANNA))
    assert counts.new == 3
    ids = await _ids(hub)
    assert await _search(hub, SALES, "rechnung marz") == [ids["k1"]]
    assert await _search(hub, SALES, "Steuerungsmodul") == [ids["k2"]], "past the snippet"
    assert await _search(hub, SALES, "strassenbau muller invoice") == [ids["k3"]]
    assert await _search(hub, SALES, "Text") == [ids["k2"]]
    assert await _search(hub, SALES, "Angebot Rechnung") == [], "every word must match"
    assert await _matching(hub, SALES, "invoice") == {ids["k3"]}
    # A re-delivery is a duplicate: indexed once, not twice.
    await hub.store.ingest("mail", [_item(1, "Rechnungen", "x", T0)], [], {}, Provenance(ANNA))
    assert await _search(hub, SALES, "rechnung") == [ids["k1"]]


async def test_each_user_finds_only_by_the_words_they_may_read(hub: Hub) -> None:
    async with hub.sessions() as session, session.begin():
        account = AccountRow(name="Elbe Logistik GmbH")
        session.add(account)
        await session.flush()
        link = [Attribution(account.id, "account-domain", 0.9)]
    items = [
        _item(1, "Zauberwort im Betreff", "nichts", T0, attributions=link),
        _item(2, "Betreff", "Geheimzahl im Text", T0, attributions=link),
        _item(3, "Rückruf", "Notiz: Geheimzahl", T0, attributions=link, channel=Channel.CALL),
        _item(4, "Zauberwort", "Geheimzahl", T0, attributions=[]),
    ]
    await hub.store.ingest("mail", items, [], {})
    ids = await _ids(hub)
    subject_hits, body_hits = {ids["k1"]}, {ids["k2"], ids["k3"]}
    for scope, by_subject, by_body in (
        (SALES, subject_hits, body_hits),
        (CALLCENTER, subject_hits, {ids["k3"]}),  # a mail's text no, a call's notes yes
        (ADMIN, set(), set()),  # attributed items and nobody's item: metadata only
    ):
        assert set(await _search(hub, scope, "zauberwort")) == by_subject, scope
        assert set(await _search(hub, scope, "geheimzahl")) == by_body, scope
        assert await _matching(hub, scope, "zauberwort") == by_subject, scope
        assert await _matching(hub, scope, "geheimzahl") == by_body, scope
    # All words within what the user may read: the subject alone for the call center's mail.
    assert await _search(hub, SALES, "Betreff Geheimzahl") == [ids["k2"]]
    assert await _search(hub, CALLCENTER, "Betreff Geheimzahl") == []


async def test_pages_are_newest_first_to_the_microsecond_and_continue_before_a_position(
    hub: Hub,
) -> None:
    at = [
        T0 + timedelta(microseconds=900_000),  # later within the same second than the next
        T0 + timedelta(microseconds=100_000),
        T0,
        T0,  # the same instant: the higher id first
        T0 - timedelta(days=400),
        T0 + timedelta(days=1),
        datetime(1965, 5, 1, tzinfo=UTC),  # before the key's range: still in order
        T0 + timedelta(microseconds=900_000),
    ]
    items = [_item(n, f"Lieferung {n}", "", when) for n, when in enumerate(at)]
    await hub.store.ingest("mail", items[::-1], [], {}, Provenance(owner=ANNA))
    async with hub.sessions() as session:
        rows = await session.execute(select(InteractionRow.id, InteractionRow.occurred_at))
        expected = [i for i, _ in sorted(rows.all(), key=lambda r: (r[1], r[0]), reverse=True)]
    assert await _search(hub, SALES, "lieferungen") == expected
    assert await _matching(hub, SALES, "lieferung") == set(expected), "SQL's key is Python's"
    paged: list[int] = []
    before = None
    while True:
        page = await _search(hub, SALES, "Lieferung", before=before, limit=3)
        paged.extend(page)
        if len(page) < 3:
            break
        async with hub.sessions() as session:
            last = await session.get(InteractionRow, page[-1])
            assert last is not None
            before = (last.occurred_at, last.id)
    assert paged == expected
    assert await _search(hub, SALES, "lieferung", limit=0) == []


async def test_deleted_items_leave_the_index(hub: Hub) -> None:
    items = [_item(1, "Wartung", "Pumpe", T0), _item(2, "Wartung", "Ventil", T0)]
    await hub.store.ingest("mail", items, [], {}, Provenance(owner=ANNA))
    ids = await _ids(hub)
    async with hub.sessions() as session, session.begin():
        await delete_items(session, [ids["k1"]])
    assert await _search(hub, SALES, "wartung") == [ids["k2"]]
    assert await _search(hub, SALES, "pumpe") == []
    assert await _index_rows(hub) == 1


async def test_an_erasure_leaves_no_erased_word_findable(hub: Hub, tmp_path: Path) -> None:
    await store_person(hub, tmp_path)
    referral = {"quokka", "marmalade", "referral", "roe", "68900756"}
    for word in referral:
        assert await _search(hub, SALES, word), f"{word} findable before"
    await erase_subject(hub, ADDRESS, "dpo@ourco.example")
    for word in referral:
        assert await _search(hub, SALES, word) == [], f"{word} still findable"
        assert await _matching(hub, SALES, word) == set()
    assert await _search(hub, SALES, "wombat"), "the others' items stay findable"
    assert len(await _search(hub, SALES, "erased")) == 1, "the redacted item, as it is now"
    async with hub.sessions() as session:
        items = (await session.execute(select(func.count(InteractionRow.id)))).scalar_one()
    assert await _index_rows(hub) == items


async def test_migration_0008_indexes_every_stored_item(tmp_path: Path) -> None:
    with _database_at("0007", tmp_path) as url:
        engine = create_engine(db.sync_url(url))
        with engine.begin() as connection:
            for n, (subject, body) in enumerate(
                [("Angebot Pumpen", "Die Steuerungsmodule"), ("Lieferschein", ""), ("", "")],
                start=1,
            ):
                connection.execute(
                    insert(InteractionRow.__table__).values(
                        id=n,
                        dedupe_key=f"k{n}",
                        channel="email",
                        direction="inbound",
                        occurred_at=T0 + timedelta(hours=n),
                        subject=subject,
                        snippet=body[:5],
                        body=pack_text(body),
                        in_reply_to=[],
                        references=[],
                        not_logged="",
                        extra={},
                    )
                )
                connection.execute(
                    insert(SourceRow.__table__).values(
                        interaction_id=n,
                        connector="mail",
                        external_id=f"e{n}",
                        content_sha256="",
                        owner=ANNA,
                        visibility="full",
                    )
                )
        engine.dispose()
        db.upgrade(url)
        migrated = db.create_engine_for(url)
        sessions = db.sessionmaker_for(migrated)
        async with sessions() as session:
            where = [discloses(SALES)]
            assert await search_ids(session, SALES, "steuerungsmodul", where, None, 9) == [1]
            assert await search_ids(session, SALES, "lieferscheine", where, None, 9) == [2]
            assert await search_ids(session, SALES, "pumpe", where, None, 9) == [1]
        await migrated.dispose()


async def test_a_rare_word_is_searched_through_the_index_and_a_common_one_by_time(
    hub: Hub,
) -> None:
    """Enough rows for the planner's statistics (a word in one item, a word in all); the
    statements search_ids runs are read back and explained with their own parameters."""
    async with hub.sessions() as session, session.begin():
        await _many_items(session, 3000)
    statements: list[tuple[str, Any]] = []

    def keep(_c: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        statements.append((statement, parameters))

    event.listen(hub.engine.sync_engine, "before_cursor_execute", keep)
    try:
        assert len(await _search(hub, SALES, "seltenwort")) == 1
        rare = list(statements)
        statements.clear()
        assert len(await _search(hub, SALES, "alltag")) == 50
        common = list(statements)
    finally:
        event.remove(hub.engine.sync_engine, "before_cursor_execute", keep)
    rare = [s for s in rare if "interaction_" in s[0]]
    common = [s for s in common if "interaction_" in s[0]]
    async with hub.sessions() as session:
        if hub.engine.dialect.name == "sqlite":
            for statement, parameters in rare + common:
                plan = await _sqlite_plan(session, statement, parameters)
                assert "SCAN interaction_fts VIRTUAL TABLE INDEX" in plan, plan
                assert "SCAN interactions" not in plan, plan
                assert "TEMP B-TREE" not in plan, f"the walk must be in the index's order\n{plan}"
        else:
            (statement, parameters), *_ = rare
            plan = await _postgresql_plan(session, statement, parameters)
            assert "ix_interaction_terms_terms" in plan and "Seq Scan" not in plan, plan
            # psycopg prepares a statement after five runs, and PostgreSQL's generic plan of
            # it must not guess the words or the window: both are in the text, not bound.
            window = re.search(r"LIMIT ([^\s)]+)", statement)
            assert window and window.group(1).isdigit(), statement
            assert "seltenwort" in statement, statement
            (statement, parameters), *_ = common
            plan = await _postgresql_plan(session, statement, parameters)
            assert "ix_interaction_terms_occurred_at" in plan and "Seq Scan" not in plan, plan


async def _many_items(session: AsyncSession, count: int) -> None:
    rows = [
        {
            "id": n, "dedupe_key": f"k{n}", "channel": "email", "direction": "inbound",
            "occurred_at": T0 + timedelta(minutes=n), "subject": f"Alltag {n}", "snippet": "",
            "in_reply_to": [], "references": [], "not_logged": "", "extra": {},
        }
        for n in range(1, count + 1)
    ]  # fmt: skip
    await session.execute(insert(InteractionRow.__table__), rows)
    await session.execute(
        insert(SourceRow.__table__),
        [
            {"interaction_id": n, "connector": "c", "external_id": f"e{n}",
             "content_sha256": "", "owner": ANNA, "visibility": "full"}
            for n in range(1, count + 1)
        ],
    )  # fmt: skip
    await index_items(
        session,
        [
            ItemText(n, T0 + timedelta(minutes=n), f"Alltag {n}", "", "Seltenwort" * (n == 7))
            for n in range(1, count + 1)
        ],
    )
    if (await session.connection()).dialect.name == "postgresql":
        # The index's table alone: statistics of the shared tables outlive this test's rows
        # (fixtures empty the tables, not pg_statistic) and would steer later tests' plans.
        await session.execute(text("ANALYZE interaction_terms"))


async def _sqlite_plan(session: AsyncSession, statement: str, parameters: Any) -> str:
    connection = await session.connection()
    rows = await connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
    return "\n".join(str(row[-1]) for row in rows)


async def _postgresql_plan(session: AsyncSession, statement: str, parameters: Any) -> str:
    """With sequential scans priced out, as a table of a few thousand rows would be read
    whole: what is left is the choice between the GIN index and the walk by time."""
    connection = await session.connection()
    await connection.exec_driver_sql("SET LOCAL enable_seqscan = off")
    rows = await connection.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {statement}", parameters)
    return json.dumps(rows.scalar_one())


async def _index_rows(hub: Hub) -> int:
    table = "interaction_fts" if hub.engine.dialect.name == "sqlite" else "interaction_terms"
    async with hub.sessions() as session:
        return int((await session.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one())


@contextlib.contextmanager
def _database_at(revision: str, tmp_path: Path) -> Iterator[str]:
    """A new database migrated up to `revision`: a file, or one of its own on PostgreSQL."""
    if not PG_URL:
        url = f"sqlite:///{tmp_path / 'old.db'}"
        db.upgrade(url, revision)
        yield url
        return
    with empty_pg_database("crmhub_ft") as url:
        db.upgrade(url, revision)
        yield url
