"""What the review queue shows of a case's items is decided by the database with the case
(storage.review.CaseItem), not by loading each item and asking hub.policy: here the two are
held equal on random items. A subject the viewer may not read is blank, a body they may not
read is not offered to suggestions (signatures), and an item they may not see is not shown at
all, whatever its owners, caps, attributions and channel."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert

from hub.bootstrap import Hub
from hub.policy import (
    ItemSource,
    Viewer,
    disclosure,
    read_scope,
    shows_body,
    shows_subject,
)
from storage import review
from storage.tables import (
    AccountRow,
    AttributionRow,
    InteractionRow,
    ParticipantRow,
    ReviewItemRow,
    SourceRow,
)
from tests.rows import item_row, link_row, review_row

SALES = "sales@ourco.example"
T0 = datetime(2025, 3, 1, tzinfo=UTC)
KEYS = [f"p{n}@kunde.example" for n in range(8)]


async def _fill(
    hub: Hub, seed: int
) -> dict[int, tuple[datetime, str, str, bool, list[ItemSource], set[str]]]:
    """Random items with review rows; returns per item: time, channel, subject, attributed,
    sources, and the addresses spelled for each key (as "key|address")."""
    rng = random.Random(seed)
    items, links, sources, people, rows = [], [], [], [], []
    truth = {}
    for n in range(1, 161):
        at = T0 + timedelta(minutes=rng.randrange(400))
        channel = rng.choice(["email", "email", "call"])
        subject = f"subject {n}"
        items.append(item_row(n, at, channel, subject))
        seen = []
        for m in range(rng.randint(1, 2)):
            source = ItemSource(
                rng.choice([SALES, "other@ourco.example", ""]),
                rng.choice(["full", "subject", "metadata"]),
                f"c{m}",
            )
            seen.append(source)
            sources.append(
                {
                    "interaction_id": n,
                    "connector": source.connector,
                    "external_id": str(n),
                    "owner": source.owner,
                    "visibility": source.visibility,
                    "occurred_at": at,
                }
            )
        attributed = rng.random() < 0.6
        if attributed or rng.random() < 0.3:
            links.append(link_row(n, at, 1, None, removed=not attributed))  # or a tombstone
        key = rng.choice(KEYS)
        spelled = set()
        for spelling in rng.sample([key, key.upper(), key.replace("@", "+crm@")], 2):
            spelled.add(f"{key}|{spelling}")
            people.append(
                {
                    "interaction_id": n,
                    "role": "from",
                    "kind": "email",
                    "address": spelling,
                    "name": "",
                    "normalized": key,
                    "occurred_at": at,
                }
            )
        people.append(  # another party's address is no spelling of the key
            {
                "interaction_id": n,
                "role": "to",
                "kind": "email",
                "address": "anna@ourco.example",
                "name": "",
                "normalized": "anna@ourco.example",
                "occurred_at": at,
            }
        )
        rows.append(review_row(n, at, key, T0))
        truth[n] = (at, channel, subject, attributed, seen, spelled)
    async with hub.sessions() as session, session.begin():
        await session.execute(insert(AccountRow), [{"id": 1, "name": "A", "owner": ""}])
        for table, values in (
            (InteractionRow, items),
            (SourceRow, sources),
            (AttributionRow, links),
            (ParticipantRow, people),
            (ReviewItemRow, rows),
        ):
            await session.execute(insert(table), values)
    return truth


@pytest.mark.parametrize("seed", [3, 4])
@pytest.mark.parametrize("role", ["sales", "manager"])
async def test_a_case_shows_what_the_policy_lets_the_viewer_see_of_its_items(
    hub: Hub, seed: int, role: str
) -> None:
    truth = await _fill(hub, seed)
    viewer = Viewer.of(SALES, role)
    levels = {
        n: disclosure(viewer, attributed=attributed, sources=seen)
        for n, (_, _, _, attributed, seen, _) in truth.items()
    }
    async with hub.sessions() as session:
        page = await review.list_open(session, read_scope(viewer), None, None, 100)
    assert {case.key for case in page.items} <= set(KEYS)
    shown = 0
    for case in page.items:
        keyed = [n for n, t in truth.items() if any(s.startswith(case.key + "|") for s in t[5])]
        visible = [n for n in keyed if levels[n]]
        newest = sorted(visible, key=lambda n: (truth[n][0], n), reverse=True)[: review.SAMPLE]
        assert case.count == len(visible)
        assert [i.id for i in case.items] == newest, "the newest visible items, newest first"
        for item in case.items:
            at, channel, subject, _, _, spelled = truth[item.id]
            level = levels[item.id]
            assert item.occurred_at == at
            assert item.subject == (subject if shows_subject(level) else ""), item.id
            assert item.body_readable == shows_body(level, channel), item.id
            assert {f"{case.key}|{s}" for s in item.spellings} == spelled
            shown += 1
    assert shown >= 20, "the random set must exercise the rules"
