"""The review queue read as a walk from the newest open item (issue 18) pages exactly like the
definition: every open case the user may see once, ordered by its latest visible item, then
kind and key, with its count; ties in time and items invisible to the user included."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert

from hub.bootstrap import Hub
from hub.model import Disclosure, ReadScope
from storage import review
from storage.tables import (
    AccountRow,
    AttributionRow,
    InteractionRow,
    ReviewItemRow,
    SourceRow,
)
from tests.rows import item_row, link_row

SALES = ReadScope("sales@ourco.example", Disclosure.FULL, Disclosure.NONE)
T0 = datetime(2025, 3, 1, tzinfo=UTC)


async def _fill(hub: Hub, seed: int) -> dict[tuple[str, str], tuple[datetime, int]]:
    """Random items, some visible to SALES (attributed, or their own), some not (another
    user's unattributed mail); open and settled review rows over a few keys. Returns the
    expected queue: case -> (latest visible open item, count of visible open items)."""
    rng = random.Random(seed)
    items, links, sources, rows = [], [], [], []
    expected: dict[tuple[str, str], tuple[datetime, int]] = {}
    for n in range(1, 241):
        at = T0 + timedelta(hours=rng.randrange(60))  # many items share a time
        visible = rng.random() < 0.7
        attributed = visible and rng.random() < 0.5
        items.append(item_row(n, at))
        owner = SALES.email if visible and not attributed else "other@ourco.example"
        sources.append(
            {
                "interaction_id": n,
                "connector": "m",
                "external_id": str(n),
                "owner": owner,
                "visibility": "full",
                "occurred_at": at,
            }
        )
        if attributed:
            links.append({**link_row(n, at, 1, None), "rule": "domain"})
        for kind in rng.sample(["unknown-sender", "shared-domain"], rng.randint(1, 2)):
            key = f"key{rng.randrange(25)}"
            settled = rng.random() < 0.2
            rows.append(
                {
                    "interaction_id": n,
                    "kind": kind,
                    "key": key,
                    "name": "",
                    "reason": "",
                    "candidates": [],
                    "opened_at": T0,
                    "settled_at": T0 if settled else None,
                    "settled_by": "x" if settled else None,
                    "settlement": "",
                    "occurred_at": at,
                }
            )
            if visible and not settled:
                latest, count = expected.get((kind, key), (at, 0))
                expected[(kind, key)] = (max(latest, at), count + 1)
    async with hub.sessions() as session, session.begin():
        await session.execute(insert(AccountRow), [{"id": 1, "name": "A", "owner": ""}])
        for table, values in (
            (InteractionRow, items),
            (SourceRow, sources),
            (AttributionRow, links),
            (ReviewItemRow, rows),
        ):
            await session.execute(insert(table), values)
    return expected


@pytest.mark.parametrize("seed", [1, 2])
async def test_every_page_size_walks_the_queue_in_its_order(hub: Hub, seed: int) -> None:
    expected = await _fill(hub, seed)
    order = sorted(expected, key=lambda c: (-expected[c][0].timestamp(), c))
    for limit in (1, 2, 3, 7, 100):
        seen: list[tuple[tuple[str, str], datetime, int]] = []
        cursor = None
        async with hub.sessions() as session:
            for _ in range(200):
                page = await review.list_open(session, SALES, None, cursor, limit)
                assert len(page.items) <= limit
                seen += [((c.kind, c.key), c.latest_at, c.count) for c in page.items]
                cursor = page.next_cursor
                if cursor is None:
                    break
        assert [case for case, _, _ in seen] == order, f"page size {limit}"
        assert [(at, n) for _, at, n in seen] == [expected[c] for c in order]
