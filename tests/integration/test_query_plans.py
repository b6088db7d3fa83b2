"""The main read queries use the indexes they were written for, on both databases.

Each test runs the real query function against a table of some thousands of items with fresh
statistics, records every statement it sent, and asks the database for the plan of each:
EXPLAIN QUERY PLAN on SQLite, EXPLAIN (FORMAT JSON) on PostgreSQL with whole-table reads and
sorts priced out (at this size they are cheaper; the plan then shows what the indexes allow).
A later change that makes a timeline page fall back to a scan of `interactions`, or sort a
whole account, fails here rather than in a customer's call center (issue 18).
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, insert, update

from hub.bootstrap import Hub
from hub.model import Channel, Disclosure, Interaction, RawItem, ReadScope
from storage import directory_search, lookup, maintenance, missed_calls, overview, queries, review
from storage.call_merge import same_calls
from storage.ingest import MatchedParticipant, StoredItem
from storage.maintenance import optimize
from storage.tables import (
    AccountRow,
    AttributionRow,
    CallPartiesRow,
    ContactPhoneRow,
    ContactRow,
    InteractionRow,
    MissedCallRow,
    NativeIdRow,
    ParticipantRow,
    ReviewItemRow,
    SourceRow,
)
from tests.rows import item_row, link_row, review_row

ACCOUNTS, PER_ACCOUNT, CONTACTS_PER_ACCOUNT = 60, 100, 5
DIRECTORY = 5_000  # contacts without items: a directory of a size no planner reads whole
BIG_ACCOUNT = 1  # also holds 1,500 items more: deep pages must stay index ranges
SALES = ReadScope("sales@ourco.example", Disclosure.FULL, Disclosure.NONE)
T0 = datetime(2025, 1, 1, tzinfo=UTC)


@dataclass
class Plans:
    """Statements a query function sent, with the plan the database gave each."""

    plans: list[tuple[str, str]] = field(default_factory=list)

    def of(self, table: str) -> list[str]:
        found = [plan for sql, plan in self.plans if f"FROM {table}" in sql.split("WHERE")[0]]
        assert found, f"no statement read {table}: {[sql for sql, _ in self.plans]}"
        return found

    def timeline(self, table: str) -> list[str]:
        """The plans of statements that page through `table` newest first; a UNION ALL of
        several ranges (storage.queries._first_batches) counts for each table it pages."""
        found = [
            plan
            for sql, plan in self.plans
            if any(f"FROM {table}" in part.split("WHERE")[0] for part in sql.split("UNION ALL"))
            and "occurred_at DESC" in sql
        ]
        assert found, f"no statement paged through {table}: {[sql for sql, _ in self.plans]}"
        return found


async def _fill(hub: Hub) -> None:
    """Accounts with contacts and phones, items attributed to them, each with a participant
    and a source of the sales user's mailbox; inserted directly, then statistics taken."""
    accounts, contacts, phones, items, links, people, sources = [], [], [], [], [], [], []
    reviews: list[dict[str, Any]] = []
    n = 0
    for a in range(1, ACCOUNTS + 1):
        accounts.append({"id": a, "name": f"Account {a}", "owner": ""})
        for c in range(CONTACTS_PER_ACCOUNT):
            cid = (a - 1) * CONTACTS_PER_ACCOUNT + c + 1
            contacts.append({"id": cid, "account_id": a, "name": f"Person {cid}", "owner": ""})
            phones.append({"contact_id": cid, "e164": f"+4922100{cid:05d}"})
        for _ in range(PER_ACCOUNT + (3000 if a == BIG_ACCOUNT else 0)):
            n += 1
            at = T0 + timedelta(minutes=7 * n)
            cid = (a - 1) * CONTACTS_PER_ACCOUNT + n % CONTACTS_PER_ACCOUNT + 1
            items.append(item_row(n, at, "call" if n % 3 == 0 else "email", f"item {n}"))
            if n % 10 == 0:  # unmatched, in the sales user's mailbox
                reviews.append(review_row(n, at, f"sender{n % 300}", T0))
            else:
                links.append(link_row(n, at, a, cid))
            people.append(
                {
                    "interaction_id": n,
                    "role": "from",
                    "kind": "phone",
                    "address": f"+4922100{cid:05d}",
                    "normalized": f"+4922100{cid:05d}",
                    "name": "",
                    "contact_id": cid,
                    "occurred_at": at,
                }
            )
            sources.append(
                {
                    "interaction_id": n,
                    "connector": "mail",
                    "external_id": f"e{n}",
                    "owner": SALES.email if n % 2 or n % 10 == 0 else "",
                    "occurred_at": at,
                    "visibility": "full",
                }
            )
    for cid in range(len(contacts) + 1, len(contacts) + DIRECTORY + 1):
        contacts.append(
            {"id": cid, "account_id": cid % ACCOUNTS + 1, "name": f"P{cid}", "owner": ""}
        )
        phones.append({"contact_id": cid, "e164": f"+4930{cid:08d}"})
    async with hub.sessions() as session, session.begin():
        for table, rows in (
            (AccountRow, accounts),
            (ContactRow, contacts),
            (ContactPhoneRow, phones),
            (InteractionRow, items),
            (AttributionRow, links),
            (ParticipantRow, people),
            (SourceRow, sources),
            (ReviewItemRow, reviews),
        ):
            await session.execute(insert(table), rows)
        # Inserted past the ORM: the directory's search terms as its writes would keep them.
        await directory_search.refresh(
            session, [a["id"] for a in accounts], [c["id"] for c in contacts]
        )
    await optimize(hub.engine)  # SQLite's statistics, as `crmhub serve` takes them at start
    if hub.engine.dialect.name == "postgresql":  # what autovacuum would have done by now
        async with hub.engine.connect() as connection:
            await connection.exec_driver_sql("ANALYZE")
            await connection.commit()


@pytest.fixture
async def filled(hub: Hub) -> AsyncIterator[Hub]:
    await _fill(hub)
    yield hub


async def _plans(hub: Hub, run: Callable[[Any], Awaitable[Any]]) -> Plans:
    """Runs `run(session)`, then explains every SELECT it sent, with its own parameters."""
    sent: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, params: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            sent.append((statement, params))

    event.listen(hub.engine.sync_engine, "before_cursor_execute", record)
    try:
        async with hub.sessions() as session:
            await run(session)
    finally:
        event.remove(hub.engine.sync_engine, "before_cursor_execute", record)
    found = Plans()
    async with hub.engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if not sqlite:
            # Tables of this size are cheaper to read whole and sort: priced out, a plan shows
            # whether the index can give the rows in order (bench/reads.py shows that the
            # planner takes it at a million items).
            await connection.exec_driver_sql("SET enable_seqscan = off")
            await connection.exec_driver_sql("SET enable_sort = off")
        for statement, params in sent:
            explain = "EXPLAIN QUERY PLAN " if sqlite else "EXPLAIN (FORMAT JSON) "
            rows = (await connection.exec_driver_sql(explain + statement, params)).all()
            if sqlite:
                plan = "\n".join(str(row[-1]) for row in rows)
            else:
                plan = json.dumps(
                    rows[0][0] if isinstance(rows[0][0], list) else json.loads(rows[0][0])
                )
            found.plans.append((statement, plan))
    return found


def _ordered_range(plan: str, index: str) -> None:
    """`plan` reads `index` as a range in the order it returns rows: no scan, no sort."""
    assert index in plan, plan
    assert not _scanned(plan) and "Seq Scan" not in plan, plan
    assert "TEMP B-TREE" not in plan and '"Sort"' not in plan, plan


def _row_bound(plan: str) -> None:
    """The cursor `(time, id) < (t, n)` bounds the index range instead of filtering rows."""
    assert "(occurred_at,interaction_id)<(?,?)" in plan or "ROW(" in plan, plan


async def test_an_account_timeline_page_is_one_index_range(filled: Hub) -> None:
    async def first(session: Any) -> Any:
        return await queries.account_timeline(
            session, SALES, BIG_ACCOUNT, queries.TimelineFilter(), None, 25
        )

    plans = await _plans(filled, first)
    (plan,) = plans.timeline("attributions")
    _ordered_range(plan, "ix_attributions_account_timeline")
    async with filled.sessions() as session:
        cursor = (await first(session)).next_cursor
        for _ in range(19):
            page = await queries.account_timeline(
                session, SALES, BIG_ACCOUNT, queries.TimelineFilter(), cursor, 25
            )
            cursor = page.next_cursor
    assert cursor is not None

    async def page_21(session: Any) -> Any:
        return await queries.account_timeline(
            session, SALES, BIG_ACCOUNT, queries.TimelineFilter(), cursor, 25
        )

    deep = await _plans(filled, page_21)
    (plan,) = deep.timeline("attributions")
    _ordered_range(plan, "ix_attributions_account_timeline")
    _row_bound(plan)


async def test_a_contact_timeline_reads_the_contacts_two_index_ranges(filled: Hub) -> None:
    async def page(session: Any) -> Any:
        first = await queries.contact_timeline(
            session, SALES, 2, queries.TimelineFilter(), None, 25
        )
        return await queries.contact_timeline(
            session, SALES, 2, queries.TimelineFilter(), first.next_cursor, 25
        )

    plans = await _plans(filled, page)
    through_links, through_people = plans.timeline("attributions"), plans.timeline("participants")
    assert len(through_links) == 2 and len(through_people) == 2, plans.plans
    for plan in through_links:
        _ordered_range(plan, "ix_attributions_contact_timeline")
    for plan in through_people:
        _ordered_range(plan, "ix_participants_contact_timeline")
    _row_bound(through_links[1])
    _row_bound(through_people[1])


async def test_the_lookup_goes_from_the_number_to_the_contacts_latest_items(filled: Hub) -> None:
    async def lookup(session: Any) -> Any:
        contacts, accounts = await queries.contacts_by_identity(session, phone="+492210000007")
        assert [c.id for c in contacts] == [7] and list(accounts) == [contacts[0].account_id]
        return await queries.latest_of(session, SALES, [7], [], 10)

    plans = await _plans(filled, lookup)
    directory = [plan for sql, plan in plans.plans if sql.startswith("SELECT contacts.id")]
    assert directory and any("ix_contact_phones_e164" in p for p in directory), plans.plans
    for plan in directory:  # the contact's addresses and numbers: by its key, not a scan
        assert not _scanned(plan), plan
    for plan in plans.timeline("participants"):
        _ordered_range(plan, "ix_participants_contact_timeline")


def _scanned(plan: str) -> set[str]:
    """Tables the plan reads whole (SQLite's SCAN, PostgreSQL's Seq Scan)."""
    if plan.startswith("["):
        found: set[str] = set()

        def walk(node: dict[str, Any]) -> None:
            if node.get("Node Type") == "Seq Scan":
                found.add(node["Relation Name"])
            for child in node.get("Plans", []):
                walk(child)

        walk(json.loads(plan)[0]["Plan"])
        return found
    scans = [line.strip("|-` ").split() for line in plan.splitlines()]
    return {
        words[1]
        for words in scans
        if words[0] == "SCAN"
        and words[1].isidentifier()
        and not words[1].startswith("anon_")
        # the rows of a UNION ALL's own parts (storage.queries._first_batches,
        # storage.lookup._open_rows), not a table
        and not re.fullmatch(r"(walk|key)\d+", words[1])
        # values bound as one JSON parameter (storage.items.bound_in, bound_values)
        and words[1:3] != ["json_each", "VIRTUAL"]
        and words[2:4] != ["VIRTUAL", "TABLE"]
    }


async def test_a_page_reads_its_items_by_key(filled: Hub) -> None:
    async def page(session: Any) -> Any:
        return await queries.account_timeline(session, SALES, 3, queries.TimelineFilter(), None, 25)

    plans = await _plans(filled, page)
    (items,) = [plan for sql, plan in plans.plans if "json_" in sql]
    # attachments has no rows here: PostgreSQL rightly reads an empty table whole
    assert _scanned(items) <= {"attachments"}, items
    assert "interactions" in items and "ix_participants_interaction_id" in items, items


async def test_unmatched_items_are_read_from_the_owners_range(filled: Hub) -> None:
    async def page(session: Any) -> Any:
        first = await queries.list_interactions(session, SALES, unmatched=True, limit=10)
        assert len(first.items) == 10 and first.next_cursor
        return await queries.list_interactions(
            session, SALES, unmatched=True, cursor=first.next_cursor, limit=10
        )

    plans = await _plans(filled, page)
    for plan in plans.timeline("sources"):
        _ordered_range(plan, "ix_sources_owner_timeline")
    _row_bound(plans.timeline("sources")[-1])


async def test_the_review_queue_walks_open_rows_from_the_newest(filled: Hub) -> None:
    # As served: with the planner's statistics (storage.maintenance). At 1,000,000 items they
    # once made SQLite read every open row through an index of (settled_at, ...) and sort them.
    await maintenance.optimize(filled.engine)

    async def queue(session: Any) -> Any:
        page = await review.list_open(session, SALES, None, None, 10)
        assert len(page.items) == 10
        return page

    plans = await _plans(filled, queue)
    walks = [p for sql, p in plans.plans if "row_number" not in sql.lower()]
    assert walks and all("ix_review_items_queue" in p for p in walks), walks
    for plan in walks:  # the partial index of open rows, read in time order
        assert "TEMP B-TREE" not in plan and '"Sort"' not in plan, plan
        assert not _scanned(plan) - {"review_items"}, plan
    (cases,) = [plan for sql, plan in plans.plans if "row_number" in sql.lower()]
    assert not _scanned(cases), cases
    if not cases.startswith("["):  # SQLite: each case's rows, from its (key, kind) range
        assert "ix_review_items_open (key=? AND kind=?)" in cases, cases


async def test_a_directory_search_reads_only_the_terms_it_names(filled: Hub) -> None:
    """A name, a number or an address: a range of the terms' primary key, and the named
    records by id, whatever the size of the directory (5,300 contacts here)."""

    async def find(session: Any) -> None:
        for typed in ("Person 12", "pers", "+49 221 0000012", "p12@x.example", "acc"):
            query = directory_search.parse(typed, "DE")
            for kind in (directory_search.ACCOUNT, directory_search.CONTACT):
                await directory_search.search(session, kind, query, 10)

    plans = await _plans(filled, find)
    searches = plans.of("directory_terms")
    assert len(searches) == 10
    for plan in searches:
        assert not _scanned(plan), plan
        if plan.startswith("["):
            assert "directory_terms_pkey" in plan, plan
        else:
            assert "directory_terms USING COVERING INDEX" in plan, plan
            assert "(kind=? AND term>? AND term<?)" in plan or "(kind=? AND term=?)" in plan, plan


async def test_the_start_page_reads_the_owners_accounts_by_index(filled: Hub) -> None:
    """The accounts of one owner from ix_accounts_owner; each one's last contact and recent
    items, and the recent activity, as ranges of ix_attributions_account_timeline."""
    async with filled.sessions() as session, session.begin():
        await session.execute(
            update(AccountRow).where(AccountRow.id > ACCOUNTS - 5).values(owner=SALES.email)
        )
    await optimize(filled.engine)

    async def start(session: Any) -> None:
        since = T0 + timedelta(days=43)  # the last of the ~44 days the items span
        owned, _ = await overview.owned_accounts(session, SALES.email, since)
        assert [a.id for a in owned][:1] == [ACCOUNTS] and len(owned) == 5
        assert await overview.recent_on(session, [a.id for a in owned], since, 10)

    plans = await _plans(filled, start)
    (accounts,) = [plan for sql, plan in plans.plans if "FROM accounts" in sql]
    assert "ix_accounts_owner" in accounts, accounts
    assert "ix_attributions_account_timeline" in accounts, accounts
    (recent,) = [plan for sql, plan in plans.plans if sql.startswith("SELECT attributions")]
    assert "ix_attributions_account_timeline" in recent, recent
    for plan in (accounts, recent):
        assert not _scanned(plan), plan


async def test_a_timelines_header_reads_the_accounts_range_only(filled: Hub) -> None:
    """The counts per channel read the account's attributions by index and each item by its
    key (their cost is the account's size, not the table's); last and next contact are the two
    ends of ix_attributions_account_timeline; paging back reads the range backwards."""

    async def header(session: Any) -> None:
        counted = await queries.channel_counts(session, SALES, "account", BIG_ACCOUNT)
        assert sum(counted.counts.values()) > 25
        head = await queries.timeline_head(
            session, SALES, "account", BIG_ACCOUNT, T0 + timedelta(days=20)
        )
        assert head.counts == counted and head.last_at is not None
        first = await queries.account_timeline(
            session, SALES, BIG_ACCOUNT, queries.TimelineFilter(), None, 25
        )
        second = await queries.account_timeline(
            session, SALES, BIG_ACCOUNT, queries.TimelineFilter(), first.next_cursor, 25
        )
        assert second.has_newer
        await queries.thread_sizes(session, SALES, {"<t1@x>", "<t2@x>"})

    plans = await _plans(filled, header)
    (threads,) = [plan for sql, plan in plans.plans if "thread_id IN" in sql]
    assert "ix_interactions_thread_id" in threads and not _scanned(threads), threads
    # The head: counts over the range's newest rows, its size, and (timeline_head) the two
    # ends of the range, one statement each for channel_counts and timeline_head.
    heads = [
        plan
        for sql, plan in plans.plans
        if "ORDER BY link.occurred_at DESC LIMIT" in " ".join(sql.split())
    ]
    assert len(heads) == 2, [sql for sql, _ in plans.plans]
    for plan in heads:
        assert "ix_attributions_account_timeline" in plan, plan
        assert not {t for t in _scanned(plan) if not t.startswith("anon_")} - {"CONSTANT"}, plan
        assert "Seq Scan" not in plan, plan
        assert "interactions" in plan or "INTEGER PRIMARY KEY" in plan, plan
    backwards = [plan for sql, plan in plans.plans if "ORDER BY link.occurred_at ASC" in sql]
    assert backwards, [sql for sql, _ in plans.plans]
    for plan in backwards:
        _ordered_range(plan, "ix_attributions_account_timeline")
        assert "(occurred_at,interaction_id)>(?,?)" in plan or "ROW(" in plan, plan


async def test_a_call_from_another_system_is_found_by_its_pair_and_time(filled: Hub) -> None:
    """storage.call_merge: a range of ix_call_parties_pair_time per pair, and missed calls
    read from the partial indexes of open rows: the start page by owner, closing by contact."""
    calls = list(range(3, 3000, 3))
    async with filled.sessions() as session, session.begin():
        await session.execute(
            insert(CallPartiesRow),
            [
                {
                    "interaction_id": n,
                    "pair": f"+4922100{n % 300:05d}|+49511000",
                    "occurred_at": T0 + timedelta(minutes=7 * n),
                }
                for n in calls
            ],
        )
        await session.execute(
            insert(MissedCallRow),
            [
                {
                    "interaction_id": n,
                    "contact_id": n % 300 + 1,
                    "owner": SALES.email if n % 2 else "tom@ourco.example",
                    "occurred_at": T0 + timedelta(minutes=7 * n),
                    "closed_at": None if n % 5 else T0,
                    "closed_by": "",
                }
                for n in calls
            ],
        )
    await optimize(filled.engine)
    if filled.engine.dialect.name == "postgresql":
        async with filled.engine.connect() as connection:
            await connection.exec_driver_sql("ANALYZE")
            await connection.commit()
    n = calls[100]
    at = T0 + timedelta(minutes=7 * n, seconds=20)
    parties = [
        MatchedParticipant("caller", "phone", "x", "", f"+4922100{n % 300:05d}", None),
        MatchedParticipant("callee", "phone", "y", "", "+49511000", None),
    ]
    call = Interaction(Channel.CALL, at, "other:new")
    item = StoredItem(RawItem("new", b"{}"), call, parties, [], "inbound", "")

    async def find(session: Any) -> None:
        found = await same_calls(session, "pbx", [item])
        assert [s.interaction_id for s in found.values()] == [n]
        assert await missed_calls.open_for(session, SALES.email, 10)
        closing = missed_calls._Item(n, "email", "inbound", at, "")
        await missed_calls._close(session, [(n % 300 + 1, closing)])
        await missed_calls._later_closers(session, [(n % 300 + 1, closing)])

    plans = await _plans(filled, find)
    (pair,) = plans.of("call_parties")
    assert "ix_call_parties_pair_time" in pair and not _scanned(pair), pair
    (closers,) = [plan for sql, plan in plans.plans if "FROM interactions JOIN attributions" in sql]
    assert "ix_attributions_contact_timeline" in closers, closers
    assert not _scanned(closers) - {"CONSTANT"}, closers
    for plan in plans.of("missed_calls"):
        assert not _scanned(plan), plan
        assert "ix_missed_calls_owner_open" in plan or "ix_missed_calls_contact_open" in plan, plan


async def test_the_lookups_open_questions_are_a_range_of_the_open_index(filled: Hub) -> None:
    async def questions(session: Any) -> Any:
        found = await lookup.open_questions(session, SALES, ["sender10", "+492210000007"])
        assert [q.key for q in found] == ["sender10"] and found[0].count > 0
        return found

    plans = await _plans(filled, questions)
    (plan,) = [p for sql, p in plans.plans if "review_items" in sql]  # both keys at once
    # each key's open rows, newest first: a range of the open index, no scan, no sort
    assert plan.count("ix_review_items_open") == 2, plan
    assert not _scanned(plan), plan
    assert "TEMP B-TREE" not in plan and '"Sort"' not in plan, plan


async def test_an_external_id_is_looked_up_not_walked_for(filled: Hub) -> None:
    async with filled.sessions() as session, session.begin():
        await session.execute(insert(NativeIdRow), [{"interaction_id": 42, "native_id": "CA42"}])

    async def by_ids(session: Any) -> Any:
        for external_id, expected in (("CA42", [42]), ("e43", [43])):
            page = await queries.list_interactions(session, SALES, external_id=external_id)
            assert [i.id for i in page.items] == expected
        page = await queries.list_interactions(session, SALES, connector="mail", external_id="e43")
        assert [i.id for i in page.items] == [43]

    plans = await _plans(filled, by_ids)
    for sql, plan in plans.plans:
        assert not _scanned(plan) - {"native_ids", "named_connectors"}, (sql, plan)
    native = [p for sql, p in plans.plans if "FROM native_ids" in sql]
    assert native and all("native_id" in p for p in native), native
    named = [p for sql, p in plans.plans if sql.startswith("SELECT interactions.occurred_at")]
    assert len(named) == 3, plans.plans
    for plan in named:  # the named items by key, never the time index of every item
        assert "ix_interactions_occurred" not in plan, plan


async def test_a_timelines_upcoming_block_reads_its_ranges_ahead_from_now(filled: Hub) -> None:
    """The first page reads what is ahead (next first) as the timeline's own index ranges read
    backwards from now, and the past as the range before now: no scan, no sort, whatever the
    size of the account (issue 16)."""
    ahead = datetime.now(UTC) + timedelta(days=3)
    first_id = 900_000
    async with filled.sessions() as session, session.begin():
        for n in range(8):
            at = ahead + timedelta(hours=n)
            await session.execute(insert(InteractionRow), [item_row(first_id + n, at, "meeting")])
            await session.execute(insert(AttributionRow), [link_row(first_id + n, at, 1, 2)])
            await session.execute(
                insert(ParticipantRow),
                [
                    {
                        "interaction_id": first_id + n,
                        "role": "attendee",
                        "kind": "email",
                        "address": "p2@x.example",
                        "normalized": "p2@x.example",
                        "name": "",
                        "contact_id": 2,
                        "occurred_at": at,
                    }
                ],
            )

    async def first_pages(session: Any) -> None:
        page = await queries.account_timeline(
            session, SALES, BIG_ACCOUNT, queries.TimelineFilter(), None, 25
        )
        assert [i.id for i in page.items[:5]] == list(range(first_id, first_id + 5))
        assert page.more_upcoming and page.items[5].id < first_id
        person = await queries.contact_timeline(
            session, SALES, 2, queries.TimelineFilter(), None, 25
        )
        assert person.items[0].id == first_id

    plans = await _plans(filled, first_pages)
    ahead_plans = [plan for sql, plan in plans.plans if "occurred_at ASC" in sql]
    assert len(ahead_plans) == 3, [sql for sql, _ in plans.plans]  # account; contact: two
    indexes = ("ix_attributions_account_timeline", "ix_attributions_contact_timeline")
    for plan in ahead_plans:
        index = next((i for i in indexes if i in plan), "ix_participants_contact_timeline")
        _ordered_range(plan, index)
        assert "(occurred_at,interaction_id)>(?,?)" in plan or "ROW(" in plan, plan
    for plan in plans.timeline("attributions"):
        _ordered_range(plan, "ix_attributions_")
        _row_bound(plan)
