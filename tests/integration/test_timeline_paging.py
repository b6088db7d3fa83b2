"""Timelines read from (account or contact, time, item) ranges page exactly like the definition:
every linked item once, newest first, ties in time broken by id, whatever the page size, though
an item may be linked several times (two contacts of one account, attribution and participant)
and some links are tombstones."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert

from hub.bootstrap import Hub
from hub.model import Disclosure, ReadScope
from storage import queries
from storage.tables import AccountRow, AttributionRow, ContactRow, InteractionRow, ParticipantRow
from tests.rows import item_row, link_row

MANAGER = ReadScope("manager@ourco.example", Disclosure.FULL, Disclosure.NONE)
T0 = datetime(2025, 5, 1, tzinfo=UTC)


async def _fill(hub: Hub, seed: int) -> tuple[list[int], list[int]]:
    """Items of account 1 (contacts 1 and 2), returned as the expected account and contact 1
    timelines, newest first."""
    rng = random.Random(seed)
    items, links, people = [], [], []
    account: list[tuple[datetime, int]] = []
    contact: list[tuple[datetime, int]] = []
    for n in range(1, 161):
        at = T0 + timedelta(minutes=rng.randrange(40))  # many share a time
        items.append(item_row(n, at, "email" if n % 2 else "call", f"item {n}"))
        shape = rng.randrange(5)
        if shape == 0:  # both contacts: two rows of one item in the account's range
            links += [link_row(n, at, 1, 1), link_row(n, at, 1, 2)]
        elif shape == 1:  # a removed link only: not on the account's timeline
            links.append(link_row(n, at, 1, 1, removed=True))
        elif shape == 2:
            links.append(link_row(n, at, 1, 2))
        else:
            links.append(link_row(n, at, 1, 1))
        if shape != 1:
            account.append((at, n))
        if shape in (0, 3, 4):
            contact.append((at, n))
        if shape in (0, 3) and rng.random() < 0.7:  # also a participant: one item, two links
            people.append(
                {
                    "interaction_id": n,
                    "role": "from",
                    "kind": "email",
                    "address": "a@kunde.example",
                    "normalized": "a@kunde.example",
                    "name": "",
                    "contact_id": 1,
                    "occurred_at": at,
                }
            )
    async with hub.sessions() as session, session.begin():
        await session.execute(insert(AccountRow), [{"id": 1, "name": "A", "owner": ""}])
        await session.execute(
            insert(ContactRow),
            [{"id": c, "account_id": 1, "name": f"Person {c}", "owner": ""} for c in (1, 2)],
        )
        for table, values in ((InteractionRow, items), (AttributionRow, links)):
            await session.execute(insert(table), values)
        if people:
            await session.execute(insert(ParticipantRow), people)
    newest = lambda found: [n for _, n in sorted(found, reverse=True)]  # noqa: E731
    return newest(account), newest(contact)


@pytest.mark.parametrize("seed", [3, 4])
async def test_timelines_page_every_item_once_in_order(hub: Hub, seed: int) -> None:
    account, contact = await _fill(hub, seed)
    for read, expected in (
        (queries.account_timeline, account),
        (queries.contact_timeline, contact),
    ):
        for limit in (1, 4, 25, 200):
            seen: list[int] = []
            cursor = None
            async with hub.sessions() as session:
                for _ in range(200):
                    page = await read(session, MANAGER, 1, queries.TimelineFilter(), cursor, limit)
                    assert len(page.items) <= limit
                    seen += [item.id for item in page.items]
                    cursor = page.next_cursor
                    if cursor is None:
                        break
            assert seen == expected, f"{read.__name__}, page size {limit}"


async def test_a_cursor_not_handed_out_is_refused(hub: Hub) -> None:
    await _fill(hub, 5)
    async with hub.sessions() as session:
        for bad in (queries.encode_cursor(["2025-05-01T00:00:00", 3]), "bm90IGpzb24", "W10"):
            with pytest.raises(queries.BadCursor):
                await queries.account_timeline(
                    session, MANAGER, 1, queries.TimelineFilter(), bad, 10
                )


@pytest.mark.parametrize("seed", [6, 7])
async def test_paging_back_towards_newer_items_shows_the_same_pages(hub: Hub, seed: int) -> None:
    """Forward to the last page, then back by each page's "newer" cursor: the very pages seen
    on the way out, in reverse, ending on the first page (no cursor), and nothing newer then."""
    await _fill(hub, seed)
    for read in (queries.account_timeline, queries.contact_timeline):
        for limit in (1, 7, 25):
            forward: list[list[int]] = []
            cursor = None
            async with hub.sessions() as session:
                first = await read(session, MANAGER, 1, queries.TimelineFilter(), None, limit)
                assert not first.has_newer, "the first page has nothing newer"
                pages = [first]
                while pages[-1].next_cursor:
                    cursor = pages[-1].next_cursor
                    pages.append(
                        await read(session, MANAGER, 1, queries.TimelineFilter(), cursor, limit)
                    )
                forward = [[item.id for item in page.items] for page in pages]
                back = [forward[-1]]
                page = pages[-1]
                while page.has_newer:
                    page = await read(
                        session, MANAGER, 1, queries.TimelineFilter(), page.newer_cursor, limit
                    )
                    back.append([item.id for item in page.items])
                    assert len(back) <= len(forward), "paging back must end"
            assert back == forward[::-1], f"{read.__name__}, page size {limit}"


async def test_channel_counts_and_the_total_agree_with_the_timeline(hub: Hub) -> None:
    account, contact = await _fill(hub, 8)
    async with hub.sessions() as session:
        for kind, expected in (("account", account), ("contact", contact)):
            counted = await queries.channel_counts(session, MANAGER, kind, 1)
            counts = counted.counts
            assert counted.complete and sum(counts.values()) == len(expected)
            calls = [n for n in expected if n % 2 == 0]  # _fill: even items are calls
            assert counts.get("call", 0) == len(calls)
            ranged = await queries.channel_counts(
                session, MANAGER, kind, 1, T0 + timedelta(minutes=20), T0 + timedelta(minutes=30)
            )
            assert 0 < sum(ranged.counts.values()) < len(expected)
            head = await queries.timeline_head(
                session, MANAGER, kind, 1, T0 + timedelta(minutes=10)
            )
            assert head.counts == counted, "the head counts what channel_counts counts"
            last, next_ = head.last_at, head.next_at
            assert last is not None and last <= T0 + timedelta(minutes=10)
            assert next_ is not None and next_ > T0 + timedelta(minutes=10)


async def test_a_big_timeline_is_counted_over_its_newest_items_and_says_so(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The head's counts read at most COUNTED items per range, newest first: bounded work on a
    key account's page, marked incomplete so that the page says "over the latest ..."."""
    account, contact = await _fill(hub, 9)
    monkeypatch.setattr(queries, "COUNTED", 10)
    async with hub.sessions() as session:
        for kind, expected in (("account", account), ("contact", contact)):
            counted = await queries.channel_counts(session, MANAGER, kind, 1)
            assert not counted.complete
            assert 0 < sum(counted.counts.values()) <= min(22, len(expected)), "newest 11 rows"
        monkeypatch.setattr(queries, "COUNTED", 1_000)
        counted = await queries.channel_counts(session, MANAGER, "account", 1)
        assert counted.complete and sum(counted.counts.values()) == len(account)
