"""storage.visibility states hub.policy in SQL: listings and searches filter in the database.

Every combination of owners, caps, attribution and channel is stored once; for each user and
each level, the rows the SQL condition admits are exactly those the pure policy grants, and a
text search finds an item only by words the user may read. SQLite, or PostgreSQL in CI.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from hub.bootstrap import Hub
from hub.model import Disclosure
from hub.policy import Role, Viewer, item_disclosure, read_scope
from storage.fulltext import ItemText, index_items
from storage.tables import AccountRow, AttributionRow, InteractionRow, SourceRow
from storage.visibility import discloses, text_matches

OWNERS = ("", "anna@ourco.example", "tom@ourco.example")
CAPS = ("full", "subject", "metadata")
VIEWERS = [
    Viewer("anna@ourco.example", Role.SALES),
    Viewer("tom@ourco.example", Role.CALLCENTER),
    Viewer("it@ourco.example", Role.ADMIN),
    Viewer("mia@ourco.example", Role.MANAGER),
    Viewer("cc@ourco.example", Role.CALLCENTER),
]
SUBJECT_WORD, BODY_WORD = "Zauberwort", "Geheimzahl"


def _combinations() -> list[tuple[tuple[tuple[str, str], ...], bool, str]]:
    one = list(itertools.product(OWNERS, CAPS))
    sources = [(s,) for s in one] + [
        (a, b) for a, b in itertools.combinations(one, 2) if a[0] != b[0] or a[1] != b[1]
    ]
    return [(s, attributed, channel) for s in sources for attributed in (False, True)
            for channel in ("email", "call")]  # fmt: skip


@pytest.fixture
async def stored(hub: Hub) -> dict[int, InteractionRow]:
    combos = _combinations()
    async with hub.sessions() as session, session.begin():
        account = AccountRow(name="Elbe Logistik GmbH", owner="")
        session.add(account)
        await session.flush()
        for n, (sources, attributed, channel) in enumerate(combos):
            row = InteractionRow(
                dedupe_key=f"k{n}",
                channel=channel,
                direction="inbound",
                occurred_at=datetime(2024, 1, 1, tzinfo=UTC),
                subject=f"{SUBJECT_WORD} {n}",
                snippet=f"{BODY_WORD} {n}",
            )
            session.add(row)
            await session.flush()
            for i, (owner, cap) in enumerate(sources):
                session.add(
                    SourceRow(
                        interaction_id=row.id,
                        connector=f"c{i}",
                        external_id=f"e{n}",
                        owner=owner,
                        visibility=cap,
                    )
                )
            if attributed:
                session.add(
                    AttributionRow(
                        interaction_id=row.id,
                        account_id=account.id,
                        rule="account-domain",
                        confidence=0.8,
                    )
                )
            # Stored here without ingest: the search reads the full-text index, not the rows.
            await index_items(
                session, [ItemText(row.id, row.occurred_at, row.subject, row.snippet, "")]
            )
    async with hub.sessions() as session:
        rows = (await session.execute(select(InteractionRow))).scalars()
        return {r.id: r for r in rows}


@pytest.mark.parametrize("viewer", VIEWERS, ids=lambda v: v.role.value)
async def test_sql_admits_exactly_what_the_policy_grants(
    hub: Hub, stored: dict[int, InteractionRow], viewer: Viewer
) -> None:
    scope = read_scope(viewer)
    async with hub.sessions() as session:
        for level in (Disclosure.METADATA, Disclosure.SUBJECT, Disclosure.FULL):
            query = select(InteractionRow.id).where(discloses(scope, level))
            admitted = set((await session.execute(query)).scalars())
            granted = {i for i, row in stored.items() if item_disclosure(viewer, row) >= level}
            assert admitted == granted, (viewer, level)


@pytest.mark.parametrize("viewer", VIEWERS, ids=lambda v: v.role.value)
async def test_a_search_finds_only_by_words_the_user_may_read(
    hub: Hub, stored: dict[int, InteractionRow], viewer: Viewer
) -> None:
    scope = read_scope(viewer)

    def readable(row: InteractionRow, part: str) -> bool:
        level = item_disclosure(viewer, row)
        if part == "subject":
            return level >= Disclosure.SUBJECT
        return level >= Disclosure.FULL or (level >= Disclosure.SUBJECT and row.channel == "call")

    async with hub.sessions() as session:
        for word, part in ((SUBJECT_WORD, "subject"), (BODY_WORD, "body")):
            query = select(InteractionRow.id).where(text_matches(scope, word.lower()))
            found = set((await session.execute(query)).scalars())
            assert found == {i for i, row in stored.items() if readable(row, part)}, part
    async with hub.sessions() as session:
        words = f'{SUBJECT_WORD} OR NEAR("x") AND -y:*'
        query = select(InteractionRow.id).where(text_matches(scope, words))
        assert set((await session.execute(query)).scalars()) == set(), "operators are words"
