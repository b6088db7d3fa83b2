"""Missed calls (storage.missed_calls): an unanswered inbound call from a known customer is
open until a later answered call or a mail with them closes it, whichever arrives first; it
belongs to the contact's owner, else the account's. SQLite, or PostgreSQL in CI.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from hub.admin import add_connector
from hub.bootstrap import Hub
from hub.model import Account, Contact
from hub.pipeline import ingest_pushed
from hub.sending import Outgoing, send_mail
from storage.directory import upsert_directory
from storage.missed_calls import mark_done, open_for
from storage.tables import InteractionRow, MissedCallRow, SourceRow
from tests.integration.conftest import logged_in
from tests.integration.fake_senders import SENDER, SENT
from tests.integration.pushed_items import KIND, pushed
from tests.weblogin import csrf_of

JANA_PHONE, PIET_PHONE, HOTLINE = "+4917612345678", "+491712233445", "+49511123456"
JANA_MAIL = "j.ohlsen@elbe-logistik.de"
SALES, KEY_ACCOUNTS = "sales@ourco.example", "key.accounts@ourco.example"


async def _setup(hub: Hub) -> None:
    elbe = Account("Elbe Logistik GmbH", ("elbe-logistik.de",), owner=KEY_ACCOUNTS)
    entries = [
        (elbe, Contact("Jana Ohlsen", None, (JANA_MAIL,), (JANA_PHONE,), owner=SALES)),
        (elbe, Contact("Piet Brandt", None, (), (PIET_PHONE,))),  # no owner: the account's
    ]
    async with hub.sessions() as session, session.begin():
        await upsert_directory(session, entries)
    await add_connector(hub, KIND, "pbx", {}, {})
    await add_connector(hub, KIND, "mail", {"owner": SALES}, {})


async def _missed(hub: Hub) -> dict[str, dict[str, Any]]:
    """The missed-call rows by the call's source id."""
    async with hub.sessions() as session:
        rows = await session.execute(
            select(MissedCallRow, SourceRow.external_id).join(
                SourceRow, SourceRow.interaction_id == MissedCallRow.interaction_id
            )
        )
        return {
            eid: {"owner": m.owner, "open": m.closed_at is None, "by": m.closed_by, "id": m.id}
            for m, eid in rows
        }


async def _id(hub: Hub, external_id: str) -> int:
    async with hub.sessions() as session:
        found = await session.scalar(
            select(SourceRow.interaction_id).where(SourceRow.external_id == external_id)
        )
    assert found is not None
    return found


def _call(id_: str, at: str, status: str, caller: str = JANA_PHONE, callee: str = HOTLINE) -> Any:
    return pushed("call", id_, f"2026-03-02T{at}:00+00:00", caller, callee, status=status)


def _mail(id_: str, at: str, sender: str, to: str) -> Any:
    return pushed("mail", id_, f"2026-03-02T{at}:00+00:00", sender, to, subject=f"mail {id_}")


async def test_a_missed_call_is_open_for_its_owner_until_a_later_mail_closes_it(hub: Hub) -> None:
    await _setup(hub)
    await ingest_pushed(hub, "pbx", [_call("m1", "09:00", "no-answer")])
    assert await _missed(hub) == {"m1": {"owner": SALES, "open": True, "by": "", "id": 1}}
    async with hub.sessions() as session:
        assert [m.interaction_id for m in await open_for(session, SALES, 10)] == [
            await _id(hub, "m1")
        ]
        assert await open_for(session, KEY_ACCOUNTS, 10) == []

    await ingest_pushed(hub, "mail", [_mail("earlier", "08:00", JANA_MAIL, SALES)])
    assert (await _missed(hub))["m1"]["open"], "a mail before the call answers nothing"
    await ingest_pushed(hub, "mail", [_mail("reply", "09:30", SALES, JANA_MAIL)])
    missed = await _missed(hub)
    assert not missed["m1"]["open"]
    assert missed["m1"]["by"] == f"interaction:{await _id(hub, 'reply')}"


async def test_a_later_answered_call_closes_it_and_a_later_missed_one_does_not(hub: Hub) -> None:
    await _setup(hub)
    await ingest_pushed(hub, "pbx", [_call("m1", "09:00", "busy")])
    await ingest_pushed(hub, "pbx", [_call("m2", "09:10", "canceled")])
    await ingest_pushed(hub, "pbx", [_call("failed", "09:15", "no-answer", "201", JANA_PHONE)])
    missed = await _missed(hub)
    assert set(missed) == {"m1", "m2"}, "an outbound attempt is not a missed call"
    assert missed["m1"]["open"] and missed["m2"]["open"]

    await ingest_pushed(hub, "pbx", [_call("back", "09:20", "completed", "201", JANA_PHONE)])
    missed = await _missed(hub)
    assert not missed["m1"]["open"] and not missed["m2"]["open"]
    assert missed["m1"]["by"] == f"interaction:{await _id(hub, 'back')}"


async def test_order_of_arrival_does_not_matter(hub: Hub) -> None:
    """The answering mail synced before the missed call: the call is born closed."""
    await _setup(hub)
    await ingest_pushed(hub, "mail", [_mail("reply", "09:30", SALES, JANA_MAIL)])
    await ingest_pushed(
        hub, "pbx", [_call("m1", "09:00", "no-answer"), _call("m2", "10:00", "busy")]
    )
    missed = await _missed(hub)
    assert not missed["m1"]["open"] and missed["m1"]["by"].startswith("interaction:")
    assert missed["m2"]["open"], "the mail came before this one"


async def test_the_owner_is_the_contacts_else_the_accounts(hub: Hub) -> None:
    await _setup(hub)
    await ingest_pushed(
        hub,
        "pbx",
        [
            _call("piet", "09:00", "no-answer", PIET_PHONE),
            _call("stranger", "09:05", "no-answer", "+4930111222"),
            _call("answered", "08:50", "completed", PIET_PHONE),  # before: answers nothing
        ],
    )
    missed = await _missed(hub)
    assert set(missed) == {"piet"}, "a stranger is not a known customer; answered is not missed"
    assert missed["piet"]["owner"] == KEY_ACCOUNTS
    assert missed["piet"]["open"]
    await ingest_pushed(hub, "pbx", [_call("answered-later", "09:10", "completed", PIET_PHONE)])
    assert not (await _missed(hub))["piet"]["open"]


async def test_done_closes_only_the_owners_own(hub: Hub) -> None:
    await _setup(hub)
    await ingest_pushed(hub, "pbx", [_call("m1", "09:00", "no-answer")])
    row = (await _missed(hub))["m1"]["id"]
    async with hub.sessions() as session, session.begin():
        assert not await mark_done(session, row, KEY_ACCOUNTS)
        assert await mark_done(session, row, SALES)
        assert not await mark_done(session, row, SALES), "once"
    missed = await _missed(hub)
    assert missed["m1"] == {"owner": SALES, "open": False, "by": f"user:{SALES}", "id": row}
    async with hub.sessions() as session:
        assert await session.scalar(select(InteractionRow.id)) is not None


async def test_the_owners_start_page_lists_the_open_ones_and_done_removes_one(hub: Hub) -> None:
    """As the owner meets it: a link to the call and a "done" button; another user has
    neither the row nor the button's effect (404)."""
    await _setup(hub)
    await ingest_pushed(hub, "pbx", [_call("m1", "09:00", "no-answer")])
    call = await _id(hub, "m1")
    row = (await _missed(hub))["m1"]["id"]
    async with logged_in(hub, "tom@ourco.example") as tom:
        page = (await tom.get("/")).text
        assert f"/interactions/{call}" not in page, "not Tom's customer"
        refused = await tom.post(f"/missed-calls/{row}/done", data={"csrf": csrf_of(page)})
        assert refused.status_code == 404
    async with logged_in(hub, SALES) as sales:
        page = (await sales.get("/")).text
        assert f'href="/interactions/{call}"' in page and f"/missed-calls/{row}/done" in page
        done = await sales.post(f"/missed-calls/{row}/done", data={"csrf": csrf_of(page)})
        assert done.status_code == 200 and f"/missed-calls/{row}/done" not in done.text
    assert not (await _missed(hub))["m1"]["open"]


async def test_a_mail_sent_through_crmhub_closes_it(hub: Hub) -> None:
    """The reply a user sends from crmhub is stored by the store's own ingest, not by a sync:
    the missed call is closed in that same transaction (storage.ingest)."""
    await _setup(hub)
    await add_connector(hub, SENDER, "sales-out", {"owner": SALES, "files_copy": "Sent"}, {})
    await ingest_pushed(hub, "pbx", [_call("m1", "09:00", "no-answer")])
    assert (await _missed(hub))["m1"]["open"]
    reply = Outgoing(sender=SALES, to=[JANA_MAIL], subject="Ihr Anruf", body="Guten Tag")
    try:
        outcome = await send_mail(hub, "sales-out", reply)
    finally:
        SENT.clear()
    missed = await _missed(hub)
    assert not missed["m1"]["open"]
    assert missed["m1"]["by"] == f"interaction:{outcome.interaction_id}"
