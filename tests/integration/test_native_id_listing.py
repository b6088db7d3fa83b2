"""`GET /api/interactions?external_id=` at the storage level: a call is found by its own id in
the system that reported it (a Twilio CallSid, an Asterisk uniqueid), by its source id in any
connector, or with `connector` by that connector's source id alone; always within what the
reader may see. SQLite, or PostgreSQL with CRMHUB_TEST_DATABASE_URL.
"""

from __future__ import annotations

import json

from hub.admin import add_connector, remove_connector
from hub.bootstrap import Hub
from hub.model import Disclosure, RawItem, ReadScope
from hub.pipeline import ingest_pushed
from storage import queries
from tests.integration.pushed_items import KIND

ANNA = ReadScope("anna@ourco.example", Disclosure.FULL, Disclosure.NONE)  # owns the phones
TOM = ReadScope("tom@ourco.example", Disclosure.FULL, Disclosure.NONE)  # sales, not the owner
ADMIN = ReadScope("it@ourco.example", Disclosure.METADATA, Disclosure.METADATA)


def _call(source_id: str, sid: str, start: str, *legs: str) -> RawItem:
    """A call whose source id (`source_id`) differs from its native ids (`sid`, `legs`)."""
    call = {
        "type": "call",
        "id": sid,
        "legs": list(legs),
        "start": start,
        "from": "+4917612345678",
        "to": "+49511123456",
        "status": "completed",
        "seconds": 42,
    }
    return RawItem(source_id, json.dumps(call).encode(), "application/json")


async def _ids(hub: Hub, scope: ReadScope, **named: str) -> list[int]:
    async with hub.reads() as session, session.begin():
        page = await queries.list_interactions(session, scope, **named)  # type: ignore[arg-type]
    return [item.id for item in page.items]


async def test_a_call_is_found_by_its_native_ids_and_its_source_id(hub: Hub) -> None:
    await add_connector(hub, KIND, "phones", {"owner": ANNA.email}, {})
    report = await ingest_pushed(
        hub,
        "phones",
        [
            _call("line-1", "CA100", "2026-12-01T09:30:00+00:00", "CA100-leg"),
            _call("line-2", "CA200", "2026-12-01T10:30:00+00:00"),
        ],
    )
    assert (report.new, report.errors) == (2, 0)
    (first,) = await _ids(hub, ANNA, external_id="CA100")
    (second,) = await _ids(hub, ANNA, external_id="CA200")
    assert first != second
    assert await _ids(hub, ANNA, external_id="CA100-leg") == [first], "a child leg's id"
    assert await _ids(hub, ANNA, external_id="line-1") == [first], "the source id, any connector"
    assert await _ids(hub, ANNA, connector="phones", external_id="line-2") == [second]
    # With a connector the id is that connector's source id only (the public contract).
    assert await _ids(hub, ANNA, connector="phones", external_id="CA100") == []
    assert await _ids(hub, ANNA, connector="other", external_id="line-1") == []
    assert await _ids(hub, ANNA, external_id="CA999") == []
    assert await _ids(hub, ANNA, external_id="x" * 300) == [], "longer than any native id"


async def test_a_reader_who_may_not_see_the_call_gets_an_empty_list(hub: Hub) -> None:
    await add_connector(hub, KIND, "phones", {"owner": ANNA.email}, {})
    await ingest_pushed(hub, "phones", [_call("line-1", "CA100", "2026-12-01T09:30:00+00:00")])
    (item,) = await _ids(hub, ANNA, external_id="CA100")
    # An unknown caller: the item is attributed to nobody, so it is its owner's alone.
    assert await _ids(hub, TOM, external_id="CA100") == []
    assert await _ids(hub, TOM, external_id="line-1") == []
    assert await _ids(hub, ADMIN, external_id="CA100") == [], "the connector has an owner"
    assert await _ids(hub, ANNA, external_id="CA100", unmatched="true") == [item]  # type: ignore[arg-type]


async def test_items_of_a_removed_connector_are_still_found(hub: Hub) -> None:
    await add_connector(hub, KIND, "phones", {"owner": ANNA.email}, {})
    await add_connector(hub, KIND, "desk", {"owner": ANNA.email}, {})
    await ingest_pushed(hub, "desk", [_call("d-1", "CA300", "2026-12-02T09:30:00+00:00")])
    await ingest_pushed(hub, "phones", [_call("p-1", "CA400", "2026-12-02T10:30:00+00:00")])
    (item,) = await _ids(hub, ANNA, external_id="d-1")
    await remove_connector(hub, "desk")
    assert await _ids(hub, ANNA, external_id="d-1") == [item]
    assert await _ids(hub, ANNA, external_id="CA300") == [item]
    assert len(await _ids(hub, ANNA, external_id="p-1")) == 1


async def test_the_listing_pages_through_several_items_of_one_id(hub: Hub) -> None:
    """One native id on several items (a PBX reusing a uniqueid after a restart): newest
    first, paged by the listing's cursor."""
    await add_connector(hub, KIND, "phones", {"owner": ANNA.email}, {})
    starts = [f"2026-12-0{d}T09:00:00+00:00" for d in range(1, 4)]
    await ingest_pushed(
        hub, "phones", [_call(f"l{n}", f"C{n}", s, "SAME") for n, s in enumerate(starts)]
    )
    async with hub.reads() as session, session.begin():
        first = await queries.list_interactions(session, ANNA, external_id="SAME", limit=2)
        assert first.next_cursor is not None
        rest = await queries.list_interactions(
            session, ANNA, external_id="SAME", cursor=first.next_cursor, limit=2
        )
    times = [i.occurred_at for i in [*first.items, *rest.items]]
    assert len(times) == 3 and times == sorted(times, reverse=True)
    assert rest.next_cursor is None
