"""One call reported by a PBX and by the carrier is one interaction with two sources
(storage.call_merge): same parties after normalising the numbers, starts within 60 s, from
another connector. SQLite, or PostgreSQL with CRMHUB_TEST_DATABASE_URL.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from hub.admin import add_connector
from hub.bootstrap import Hub
from hub.pipeline import ingest_pushed
from storage.tables import InteractionRow, NativeIdRow, SourceRow
from tests.integration.pushed_items import KIND, pushed

CUSTOMER, HOTLINE = "+4917612345678", "+49511123456"
CUSTOMER_NATIONAL, HOTLINE_NATIONAL = "0176 1234 5678", "(0511) 123456"  # read with region DE


async def _connectors(hub: Hub) -> None:
    for name in ("pbx", "carrier"):
        await add_connector(hub, KIND, name, {}, {})


async def _calls(hub: Hub) -> list[dict[str, Any]]:
    async with hub.sessions() as session:
        rows = (await session.execute(select(InteractionRow).order_by(InteractionRow.id))).scalars()
        return [
            {
                "id": r.id,
                "subject": r.subject,
                "seconds": r.duration_seconds,
                "sources": sorted((s.connector, s.external_id) for s in r.sources),
            }
            for r in rows
        ]


async def test_the_same_call_from_pbx_and_carrier_is_one_item_with_two_sources(hub: Hub) -> None:
    await _connectors(hub)
    first = await ingest_pushed(
        hub,
        "pbx",
        [pushed("call", "1700000000.42", "2026-03-02T09:30:05+01:00", CUSTOMER_NATIONAL,
                HOTLINE_NATIONAL, status="completed", seconds=118)],
    )  # fmt: skip
    second = await ingest_pushed(
        hub,
        "carrier",
        [pushed("call", "CA77", "2026-03-02T08:29:20+00:00", CUSTOMER, HOTLINE,
                status="completed", seconds=121)],
    )  # fmt: skip
    assert (first.new, second.new, second.duplicates) == (1, 0, 1)
    (call,) = await _calls(hub)
    assert call["sources"] == [("carrier", "CA77"), ("pbx", "1700000000.42")]
    # the longer talk time holds the shorter one: the carrier's report wins
    assert call["seconds"] == 121 and "2:01" in call["subject"]
    async with hub.sessions() as session:
        rows = await session.execute(select(NativeIdRow.native_id, NativeIdRow.interaction_id))
        natives = {(native, item) for native, item in rows}
    assert natives == {("1700000000.42", call["id"]), ("CA77", call["id"])}, "found by either id"

    again = await ingest_pushed(
        hub,
        "carrier",
        [pushed("call", "CA77", "2026-03-02T08:29:20+00:00", CUSTOMER, HOTLINE,
                status="completed", seconds=121)],
    )  # fmt: skip
    assert (again.new, again.duplicates) == (0, 1)
    assert len(await _calls(hub)) == 1


async def test_an_answered_report_wins_over_an_unanswered_one_and_ties_keep_the_first(
    hub: Hub,
) -> None:
    await _connectors(hub)
    at = "2026-03-02T10:00:00+00:00"
    await ingest_pushed(
        hub, "pbx", [pushed("call", "p1", at, CUSTOMER, HOTLINE, status="no-answer")]
    )
    await ingest_pushed(
        hub,
        "carrier",
        [pushed("call", "c1", at, CUSTOMER, HOTLINE, status="completed", seconds=30)],
    )
    (call,) = await _calls(hub)
    assert "(answered, 0:30)" in call["subject"]

    later = "2026-03-02T11:00:00+00:00"
    await ingest_pushed(
        hub,
        "pbx",
        [pushed("call", "p2", later, CUSTOMER, HOTLINE, status="completed", seconds=60)],
    )
    await ingest_pushed(
        hub,
        "carrier",
        [pushed("call", "c2", later, CUSTOMER, HOTLINE, status="completed", seconds=60)],
    )
    calls = await _calls(hub)
    assert len(calls) == 2 and calls[1]["sources"] == [("carrier", "c2"), ("pbx", "p2")]


async def test_calls_that_are_not_the_same_stay_apart(hub: Hub) -> None:
    await _connectors(hub)
    base = "2026-03-02T12:00:00+00:00"
    await ingest_pushed(hub, "pbx", [pushed("call", "p1", base, CUSTOMER, HOTLINE)])
    await ingest_pushed(
        hub,
        "carrier",
        [
            # 61 s later: another call
            pushed("call", "c-late", "2026-03-02T12:01:01+00:00", CUSTOMER, HOTLINE),
            # another number
            pushed("call", "c-other", base, "+4930999888", HOTLINE),
            # withheld: no pair, never joined
            pushed("call", "c-withheld", base, "", HOTLINE),
        ],
    )
    # the same connector twice within a minute: two calls, however close
    await ingest_pushed(
        hub, "pbx", [pushed("call", "p2", "2026-03-02T11:59:40+00:00", CUSTOMER, HOTLINE)]
    )
    calls = await _calls(hub)
    assert [len(c["sources"]) for c in calls] == [1, 1, 1, 1, 1]


async def test_the_nearest_start_is_joined_and_each_stored_call_once(hub: Hub) -> None:
    await _connectors(hub)
    await ingest_pushed(
        hub,
        "pbx",
        [
            pushed("call", "p-a", "2026-03-02T13:00:00+00:00", CUSTOMER, HOTLINE),
            pushed("call", "p-b", "2026-03-02T13:00:50+00:00", CUSTOMER, HOTLINE),
        ],
    )
    await ingest_pushed(
        hub,
        "carrier",
        [
            pushed("call", "c-b", "2026-03-02T13:00:45+00:00", CUSTOMER, HOTLINE),
            pushed("call", "c-a", "2026-03-02T13:00:02+00:00", CUSTOMER, HOTLINE),
        ],
    )
    calls = {c["sources"][-1][1]: c["sources"] for c in await _calls(hub)}
    assert calls == {
        "p-a": [("carrier", "c-a"), ("pbx", "p-a")],
        "p-b": [("carrier", "c-b"), ("pbx", "p-b")],
    }
    async with hub.sessions() as session:
        owners = (await session.execute(select(SourceRow.connector))).scalars().all()
    assert sorted(owners) == ["carrier", "carrier", "pbx", "pbx"]
