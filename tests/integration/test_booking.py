"""Booking a follow-up meeting through POST /api/meetings (hub.booking), end to end in process.

The user's calendar is a real Radicale (caldav), the exchange connector on FakeEws or the m365
connector on the Graph fake (both fakes answer with the documented wire formats; their
docstrings name the pages); the invitation goes through a real aiosmtpd, and the test reads it
as the customer's mail client would: METHOD:REQUEST, the attendee, the times, and the UID of
the meeting crmhub logged. Microsoft 365 invites by itself (Graph creates the event with the
customer as attendee); the fake records that invitation, as Graph shows no mail for it.
"""

from __future__ import annotations

import email
import email.policy
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import icalendar
import pytest
from aiosmtpd.controller import Controller
from jsonschema import Draft202012Validator
from sqlalchemy import func, select

from hub.admin import add_connector, import_directory
from hub.bootstrap import Hub
from hub.pipeline import sync_all
from storage.tables import InteractionRow
from tests.ews_fake import FakeAttendee, FakeEvent, FakeEws
from tests.graph_fake import GraphFake, start_graph_fake
from tests.integration.conftest import logged_in
from tests.mailserver import RecordingMailserver, start_mailserver
from tests.radicale import CalDavUser, caldav_user, radicale  # noqa: F401

ANNA, BEN = "anna@ourco.example", "ben@ourco.example"
JANA = "j.ohlsen@elbe-logistik.de"
DIRECTORY = (
    "account,domains,contact,emails,phones,owner\n"
    f"Elbe Logistik,elbe-logistik.de,Jana Ohlsen,{JANA},,\n"
    "Elbe Logistik,elbe-logistik.de,Piet Brandt,p.brandt@elbe-logistik.de,,\n"
)


@pytest.fixture(scope="module")
def smtp() -> Iterator[tuple[Controller, RecordingMailserver]]:
    recorder = RecordingMailserver()
    controller = start_mailserver(recorder)
    yield controller, recorder
    controller.stop()


@pytest.fixture
def ews(tmp_path: Path) -> Iterator[FakeEws]:
    with FakeEws.running(tmp_path) as fake:
        fake.add_mailbox(ANNA)
        fake.add_mailbox(BEN)
        yield fake


@pytest.fixture(scope="module")
def graph(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GraphFake]:
    with start_graph_fake(tmp_path_factory.mktemp("graph")) as fake:
        fake.state.add_mailbox(ANNA)
        yield fake


async def _directory(hub: Hub, tmp_path: Path) -> dict[str, int]:
    path = tmp_path / "directory.csv"
    path.write_text(DIRECTORY)
    await import_directory(hub, path)
    async with logged_in(hub, "reader@ourco.example") as client:
        found = (await client.get("/api/accounts?q=Elbe")).json()["items"][0]
        account = (await client.get(f"/api/accounts/{found['id']}")).json()
    ids = {c["name"]: c["id"] for c in account["contacts"]}
    return {"account": found["id"], "jana": ids["Jana Ohlsen"], "piet": ids["Piet Brandt"]}


async def _smtp_connector(hub: Hub, smtp: Controller, owner: str = ANNA, name: str = "") -> None:
    await add_connector(
        hub,
        "smtp",
        name or f"{owner.split('@')[0]}-send",
        {"host": "127.0.0.1", "port": str(smtp.port), "tls": "none", "owner": owner},
        {},
    )


def _soon(days: int = 3, hour: int = 10) -> datetime:
    day = datetime.now(UTC) + timedelta(days=days)
    return day.replace(hour=hour, minute=0, second=0, microsecond=0)


def _invitation(recorder: RecordingMailserver) -> tuple[list[str], Any, icalendar.Component]:
    """The last mail the SMTP server took: recipients, the message, its REQUEST's VEVENT."""
    _, rcpts, content = recorder.received[-1]
    message = email.message_from_bytes(content, policy=email.policy.default)
    parts = [p for p in message.walk() if p.get_content_type() == "text/calendar"]
    assert len(parts) == 1 and parts[0].get_param("method") == "REQUEST"
    calendar = icalendar.Calendar.from_ical(parts[0].get_content())
    assert str(calendar["METHOD"]) == "REQUEST"
    attachments = [p for p in message.iter_attachments() if p.get_filename() == "invite.ics"]
    assert len(attachments) == 1
    (event,) = calendar.walk("VEVENT")
    return rcpts, message, event


async def _meetings(hub: Hub, uid: str) -> list[InteractionRow]:
    async with hub.sessions() as session:
        rows = await session.execute(
            select(InteractionRow).where(InteractionRow.dedupe_key == f"ics:{uid}")
        )
        return list(rows.scalars())


async def _book(client: httpx.AsyncClient, **body: Any) -> httpx.Response:
    """POST /api/meetings; every answer must be documented, and match its OpenAPI schema."""
    answer = await client.post("/api/meetings", json=body, headers={"Origin": "http://hub"})
    document = (await client.get("/api/openapi.json")).json()
    documented = document["paths"]["/api/meetings"]["post"]["responses"][str(answer.status_code)]
    schema = documented["content"]["application/json"]["schema"]
    validator = Draft202012Validator({**schema, "components": document["components"]})
    errors = [e.message for e in validator.iter_errors(answer.json())]
    assert not errors, (answer.status_code, errors)
    return answer


async def test_booking_in_exchange_invites_by_smtp_and_logs_the_meeting_once(
    hub: Hub, tmp_path: Path, ews: FakeEws, smtp: tuple[Controller, RecordingMailserver]
) -> None:
    controller, recorder = smtp
    ids = await _directory(hub, tmp_path)
    await add_connector(hub, "exchange", "anna-ex", ews.settings(ANNA), {"password": ews.password})
    await _smtp_connector(hub, controller)
    start = _soon()
    async with logged_in(hub, ANNA) as client:
        answer = await _book(
            client,
            contact_id=ids["jana"],
            start=start.isoformat(),
            duration=45,
            subject="Folgetermin Lager Nord",
            note="Wir besprechen die Staffelpreise.",
            mail_connector="anna-send",
        )
    assert answer.status_code == 201, answer.text
    booked = answer.json()
    assert booked["invited"] == [JANA] and booked["invitation_error"] == ""
    assert (booked["calendar_connector"], booked["mail_connector"]) == ("anna-ex", "anna-send")

    # Exchange filed it in Anna's calendar with crmhub's UID, and sent nobody anything.
    assert ews.invitations == ["SendToNone"]
    (created,) = ews.mailboxes[ANNA].events.values()
    assert created.uid == booked["uid"] and created.start == start and created.minutes == 45
    assert [a.address for a in created.required] == [JANA]

    # The customer's invitation: REQUEST, Jana asked to answer, Anna organizes, same times.
    rcpts, message, event = _invitation(recorder)
    assert rcpts == [JANA] and ANNA in str(message["From"])
    assert str(event["UID"]) == booked["uid"]
    assert event["DTSTART"].dt == start and event["DTEND"].dt == start + timedelta(minutes=45)
    attendee = event["ATTENDEE"]
    assert str(attendee) == f"mailto:{JANA}"
    assert (attendee.params["RSVP"], attendee.params["PARTSTAT"]) == ("TRUE", "NEEDS-ACTION")
    assert str(event["ORGANIZER"]) == f"mailto:{ANNA}" and int(event["SEQUENCE"]) == 0

    # Logged at once as an upcoming meeting of Jana's, under the UID the mail carries.
    (logged,) = await _meetings(hub, booked["uid"])
    assert logged.id == booked["interaction_id"] and logged.channel == "meeting"
    assert logged.occurred_at.replace(tzinfo=UTC) == start
    async with logged_in(hub, "manager@ourco.example", "manager") as client:
        timeline = (await client.get(f"/api/contacts/{ids['jana']}/timeline")).json()["items"]
    assert [i["id"] for i in timeline] == [logged.id]

    # The calendar's next sync finds the same meeting: one more source at most, no new item.
    (report,) = await sync_all(hub, ["anna-ex"])
    assert report.error == "" and report.new == 0
    assert len(await _meetings(hub, booked["uid"])) == 1
    async with hub.sessions() as session:
        meetings = await session.execute(
            select(func.count())
            .select_from(InteractionRow)
            .where(InteractionRow.channel == "meeting")
        )
        assert meetings.scalar_one() == 1


async def test_a_busy_slot_is_refused_until_confirmed(
    hub: Hub, tmp_path: Path, ews: FakeEws, smtp: tuple[Controller, RecordingMailserver]
) -> None:
    controller, recorder = smtp
    ids = await _directory(hub, tmp_path)
    await add_connector(hub, "exchange", "anna-ex", ews.settings(ANNA), {"password": ews.password})
    await _smtp_connector(hub, controller)
    start = _soon(days=4)
    ews.add_event(
        ANNA,
        FakeEvent(ews.new_id(), "busy-1", "Jour fixe", start + timedelta(minutes=30), 60,
                  organizer=FakeAttendee(ANNA)),
    )  # fmt: skip
    sent = len(recorder.received)
    body = {"account_id": ids["account"], "attendee": "P.Brandt@elbe-logistik.de",
            "start": start.isoformat(), "duration": 60, "subject": "Rahmenvertrag",
            "mail_connector": "anna-send"}  # fmt: skip
    async with logged_in(hub, ANNA) as client:
        refused = await _book(client, **body)
        assert refused.status_code == 409, refused.text
        assert "busy" in refused.json()["error"]["message"]
        assert len(ews.mailboxes[ANNA].events) == 1 and len(recorder.received) == sent
        confirmed = await _book(client, **body, confirm=True)
    assert confirmed.status_code == 201, confirmed.text
    assert confirmed.json()["invited"] == ["p.brandt@elbe-logistik.de"]
    assert len(ews.mailboxes[ANNA].events) == 2


async def test_booking_in_m365_lets_exchange_online_invite_and_logs_the_meeting_once(
    hub: Hub, tmp_path: Path, graph: GraphFake, smtp: tuple[Controller, RecordingMailserver]
) -> None:
    """Graph invites every attendee of an event it creates, from the organizer's mailbox: the
    customer is an attendee in Outlook, crmhub sends no iMIP of its own and needs no mail
    connector besides the m365 one, and the meeting is logged under Graph's iCalUId."""
    _, recorder = smtp
    ids = await _directory(hub, tmp_path)
    await add_connector(
        hub, "m365", "anna-365", graph.settings(mailboxes=ANNA, folders="inbox"), graph.secrets
    )
    start = _soon(days=5)
    mailed, invited = len(recorder.received), len(graph.state.invitations)
    async with logged_in(hub, ANNA) as client:
        answer = await _book(
            client,
            contact_id=ids["jana"],
            start=start.isoformat(),
            subject="Review",
            note="Staffelpreise",
        )
        assert answer.status_code == 201, answer.text
        booked = answer.json()
        # getSchedule now shows the booked slot busy: the same slot again is refused.
        again = await _book(client, contact_id=ids["jana"], start=start.isoformat(),
                            subject="Review")  # fmt: skip
        assert again.status_code == 409, again.text
    assert booked["invited"] == [JANA] and booked["invitation_error"] == ""
    assert (booked["calendar_connector"], booked["mail_connector"]) == ("anna-365", "anna-365")
    assert booked["calendar"] == f"{ANNA}/Calendar"

    # The event in Anna's calendar has Jana as a required attendee; Exchange Online sent the
    # request, under the iCalUId crmhub logged; nothing went through SMTP or sendMail.
    created = graph.state.created[-1]
    assert created["attendees"] == [
        {"emailAddress": {"address": JANA, "name": "Jana Ohlsen"}, "type": "required"}
    ]
    assert "transactionId" not in created and created["body"]["content"] == "Staffelpreise"
    (sent,) = graph.state.invitations[invited:]
    assert (sent.sender, sent.attendees, sent.ical_uid) == (ANNA, [JANA], booked["uid"])
    assert len(recorder.received) == mailed and graph.state.mailboxes[ANNA].sent == []

    (logged,) = await _meetings(hub, booked["uid"])
    assert logged.id == booked["interaction_id"] and logged.channel == "meeting"
    assert logged.occurred_at.replace(tzinfo=UTC) == start

    # `crmhub sync` reads the event from the calendar delta: the same meeting, nothing new.
    (report,) = await sync_all(hub, ["anna-365"])
    assert report.error == "" and report.new == 0, report
    (synced,) = await _meetings(hub, booked["uid"])
    async with logged_in(hub, "manager@ourco.example", "manager") as client:
        item = (await client.get(f"/api/interactions/{synced.id}")).json()
        timeline = (await client.get(f"/api/contacts/{ids['jana']}/timeline")).json()["items"]
    assert [i["id"] for i in timeline] == [synced.id] == [booked["interaction_id"]]
    assert {(s["connector"], s["external_id"]) for s in item["sources"]} == {
        ("anna-365", booked["uid"]),
        ("anna-365", f"event:{sent.event_id}"),
    }

    # Jana accepts in her mail client: Exchange records it on Anna's event, the next sync
    # shows her answer on the same meeting.
    graph.state.answer(ANNA, sent.event_id, JANA, "accepted")
    (report,) = await sync_all(hub, ["anna-365"])
    assert report.error == "" and report.new == 0, report
    (answered,) = await _meetings(hub, booked["uid"])
    assert answered.extra["answers"] == {JANA: "accepted"}


async def test_an_m365_booking_sends_nothing_through_a_named_mail_connector(
    hub: Hub, tmp_path: Path, graph: GraphFake, smtp: tuple[Controller, RecordingMailserver]
) -> None:
    """A mail connector named in the request is checked as the user's, but Exchange Online
    invites: the answer names the calendar connector as the one the invitation went through."""
    controller, recorder = smtp
    ids = await _directory(hub, tmp_path)
    await add_connector(
        hub, "m365", "anna-365", graph.settings(mailboxes=ANNA, folders="inbox"), graph.secrets
    )
    await _smtp_connector(hub, controller)
    body = {"contact_id": ids["jana"], "start": _soon(days=8).isoformat(), "subject": "Termin"}
    mailed = len(recorder.received)
    async with logged_in(hub, ANNA) as client:
        unknown = await _book(client, **body, mail_connector="nobody-send")
        assert unknown.status_code == 422, unknown.text
        answer = await _book(client, **body, mail_connector="anna-send")
    assert answer.status_code == 201, answer.text
    booked = answer.json()
    assert booked["mail_connector"] == "anna-365" and booked["invited"] == [JANA]
    assert graph.state.invitations[-1].ical_uid == booked["uid"]
    assert len(recorder.received) == mailed
    assert len(await _meetings(hub, booked["uid"])) == 1


async def test_every_failure_says_what_happened(
    hub: Hub, tmp_path: Path, ews: FakeEws, smtp: tuple[Controller, RecordingMailserver]
) -> None:
    controller, recorder = smtp
    ids = await _directory(hub, tmp_path)
    body = {"contact_id": ids["jana"], "start": _soon().isoformat(), "subject": "Termin"}
    async with logged_in(hub, ANNA) as client:
        none = await _book(client, **body)
        assert none.status_code == 403 and "no calendar" in none.json()["error"]["message"]

        # Ben's calendar is not Anna's: answered like a connector that does not exist.
        await add_connector(
            hub, "exchange", "ben-ex", ews.settings(BEN), {"password": ews.password}
        )
        others = await _book(client, **body, calendar_connector="ben-ex")
        assert others.status_code == 422
        assert "no calendar connector named 'ben-ex'" in others.json()["error"]["message"]
        assert ews.mailboxes[BEN].events == {}

        # The calendar refuses (the service account's password changed): nothing is sent.
        await add_connector(hub, "exchange", "anna-ex", ews.settings(ANNA), {"password": "old"})
        await _smtp_connector(hub, controller)
        sent = len(recorder.received)
        refused = await _book(client, **body, calendar_connector="anna-ex")
        assert refused.status_code == 502, refused.text
        assert "your calendar refused" in refused.json()["error"]["message"]
        assert len(recorder.received) == sent

        # The mail cannot go out: booked and logged, and the answer says Jana got nothing.
        await add_connector(
            hub, "exchange", "anna-ex2", ews.settings(ANNA), {"password": ews.password}
        )
        await add_connector(hub, "smtp", "anna-dead", {"host": "127.0.0.1", "port": "9",
                            "tls": "none", "owner": ANNA, "timeout": "3"}, {})  # fmt: skip
        lost = await _book(
            client, **body, calendar_connector="anna-ex2", mail_connector="anna-dead"
        )
    assert lost.status_code == 201, lost.text
    outcome = lost.json()
    assert outcome["invited"] == [] and f"{JANA} got nothing" in outcome["invitation_error"]
    assert len(await _meetings(hub, outcome["uid"])) == 1


async def test_booking_in_caldav_on_radicale(
    hub: Hub,
    tmp_path: Path,
    caldav_user: CalDavUser,  # noqa: F811
    smtp: tuple[Controller, RecordingMailserver],
) -> None:
    controller, recorder = smtp
    ids = await _directory(hub, tmp_path)
    await add_connector(
        hub,
        "caldav",
        "anna-cal",
        {"url": caldav_user.home, "username": caldav_user.name, "owner": ANNA},
        {"password": caldav_user.password},
    )
    await _smtp_connector(hub, controller)
    start = _soon(days=6, hour=13)
    body = {"contact_id": ids["jana"], "start": start.isoformat(), "duration": 60,
            "subject": "Folgetermin", "mail_connector": "anna-send"}  # fmt: skip
    async with logged_in(hub, ANNA) as client:
        answer = await _book(client, **body)
        assert answer.status_code == 201, answer.text
        booked = answer.json()
        # Radicale answers free-busy-query: the booked hour is busy now.
        again = await _book(client, **body)
        assert again.status_code == 409, again.text
    assert booked["calendar"] == "Work" and booked["invited"] == [JANA]
    rcpts, _, event = _invitation(recorder)
    assert rcpts == [JANA] and str(event["UID"]) == booked["uid"]
    assert event["DTSTART"].dt == start and event["DTEND"].dt == start + timedelta(hours=1)
    (logged,) = await _meetings(hub, booked["uid"])
    assert logged.id == booked["interaction_id"]
    (report,) = await sync_all(hub, ["anna-cal"])
    assert report.error == "" and report.new == 0, report
    assert len(await _meetings(hub, booked["uid"])) == 1
