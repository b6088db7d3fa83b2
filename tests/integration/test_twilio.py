"""The `twilio` connector against a local fake of Twilio's REST API (tests/twilio_fake.py), its
status callbacks through the real Starlette app with requests signed by the twilio library's
own `RequestValidator`, and the recording route for each role. SQLite, or PostgreSQL in CI.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update
from twilio.request_validator import RequestValidator

from hub.admin import add_connector, import_directory
from hub.bootstrap import Hub
from hub.pipeline import sync_connector
from storage.tables import AuditRow, ConnectorRow, InteractionRow, NativeIdRow
from tests.integration.conftest import logged_in
from tests.twilio_fake import (
    AUDIO,
    PUBLIC_URL,
    TOKEN,
    FakeTwilio,
    call,
    message,
    recording,
    start_twilio_fake,
    transcription,
)

DATA = Path(__file__).parent.parent / "data"
PIET = "+491712233445"  # a contact of Elbe Logistik (tests/data/directory.csv)
JANA_NATIONAL = "040 3344556"
OURS = "+4951112345600"
NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def fake() -> Iterator[FakeTwilio]:
    with start_twilio_fake() as started:
        yield started


@pytest.fixture
async def phones(hub: Hub, fake: FakeTwilio) -> AsyncIterator[FakeTwilio]:
    await import_directory(hub, DATA / "directory.csv")
    await add_connector(hub, "twilio", "phones", fake.settings(), fake.secrets)
    yield fake


async def _sync(hub: Hub) -> Any:
    report = await sync_connector(hub, "phones", await hub.identity_index())
    assert report.error == ""
    return report


async def _by_native(hub: Hub, native_id: str) -> InteractionRow:
    async with hub.sessions() as session:
        row = await session.scalar(
            select(InteractionRow)
            .join(NativeIdRow, NativeIdRow.interaction_id == InteractionRow.id)
            .where(NativeIdRow.native_id == native_id)
        )
    assert row is not None, f"nothing stored under {native_id}"
    return row


async def _count(hub: Hub) -> int:
    async with hub.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(InteractionRow)) or 0)


async def test_a_sync_reads_every_page_folds_legs_and_keeps_recordings(
    hub: Hub, phones: FakeTwilio
) -> None:
    start = NOW - timedelta(hours=3)
    phones.state.add(
        call("CA" + "1" * 32, start, PIET, OURS, duration=125, caller_name="PIET BRANDT"),
        call(
            "CA" + "2" * 32,
            start + timedelta(seconds=3),
            OURS,
            "+4951112345601",
            direction="outbound-dial",
            duration=118,
            parent="CA" + "1" * 32,
        ),
        call(
            "CA" + "3" * 32,
            start + timedelta(minutes=5),
            "+266696687",
            OURS,
            status="no-answer",
            duration=0,
        ),
        call(
            "CA" + "4" * 32,
            start + timedelta(minutes=9),
            OURS,
            JANA_NATIONAL,
            direction="outbound-api",
            status="busy",
            duration=0,
        ),
        recording("RE" + "1" * 32, "CA" + "2" * 32, start + timedelta(minutes=2)),
        message("SM" + "1" * 32, start + timedelta(minutes=20), PIET, OURS, body="Rückruf bitte"),
        message(
            "SM" + "2" * 32,
            start + timedelta(minutes=21),
            "whatsapp:" + PIET,
            "whatsapp:" + OURS,
            body="Per WhatsApp",
        ),
    )
    before = datetime.now(UTC)
    report = await _sync(hub)
    after = datetime.now(UTC)
    assert (report.fetched, report.new, report.quarantined) == (5, 5, 0)
    assert any("Page=1" in r and "PageToken=" in r for r in phones.state.requests), "page 2"
    # The sync takes its day from its own clock: around midnight UTC, either side's.
    days = {(t - timedelta(days=30)).date().isoformat() for t in (before, after)}
    assert any(f"StartTime%3E={d}" in r for d in days for r in phones.state.requests)

    parent = await _by_native(hub, "CA" + "1" * 32)
    assert (await _by_native(hub, "CA" + "2" * 32)).id == parent.id, "one call, not two"
    assert parent.extra["status"] == "completed" and parent.duration_seconds == 125
    assert parent.extra["recordings"] == ["RE" + "1" * 32]
    assert [leg["sid"] for leg in parent.extra["legs"]] == ["CA" + "2" * 32]
    assert parent.occurred_at.replace(tzinfo=UTC) == start, "UTC, as Twilio gives it"
    assert parent.participants[0].name == "PIET BRANDT"
    assert parent.attributions and parent.attributions[0].contact_id is not None
    withheld = await _by_native(hub, "CA" + "3" * 32)
    assert withheld.participants[0].address == "" and withheld.extra["status"] == "no-answer"
    outbound = await _by_native(hub, "CA" + "4" * 32)
    assert outbound.extra["twilio_direction"] == "outbound-api"
    assert outbound.attributions, "Jana's national number matches"
    sms = await _by_native(hub, "SM" + "1" * 32)
    whatsapp = await _by_native(hub, "SM" + "2" * 32)
    assert (sms.channel, whatsapp.channel) == ("sms", "im")
    assert whatsapp.participants[0].address == PIET and whatsapp.attributions
    assert "Rückruf bitte" in sms.snippet

    again = await _sync(hub)
    assert (again.fetched, again.new) == (0, 0), "an unchanged account delivers nothing"


async def test_a_throttled_listing_waits_for_retry_after_and_goes_on(
    hub: Hub, phones: FakeTwilio
) -> None:
    phones.state.add(call("CA" + "5" * 32, NOW - timedelta(hours=1), PIET, OURS))
    phones.state.throttle, phones.state.retry_after = 2, "0.5"
    started = time.monotonic()
    report = await _sync(hub)
    waited = time.monotonic() - started
    assert report.new == 1 and phones.state.throttle == 0
    assert waited >= 1.0, f"two Retry-After: 0.5 waited {waited:.2f} s"


async def test_a_call_in_progress_is_polled_by_its_sid_until_it_is_over(
    hub: Hub, phones: FakeTwilio
) -> None:
    sid = "CA" + "6" * 32
    start = NOW - timedelta(minutes=10)
    phones.state.add(call(sid, start, PIET, OURS, status="in-progress", updated=start))
    assert (await _sync(hub)).new == 1
    item = await _by_native(hub, sid)
    assert item.extra["status"] == "in-progress"
    async with hub.sessions() as session, session.begin():
        row = await session.execute(select(ConnectorRow).where(ConnectorRow.name == "phones"))
        connector = row.scalar_one()
        assert connector.cursor["open"] == [sid]
        # Three days on: the call is outside the listing's window, found by its SID alone.
        later = dict(connector.cursor, since=(NOW + timedelta(days=3)).isoformat())
        await session.execute(
            update(ConnectorRow).where(ConnectorRow.id == connector.id).values(cursor=later)
        )
    phones.state.add(call(sid, start, PIET, OURS, duration=312))
    phones.state.requests.clear()
    report = await _sync(hub)
    assert (report.new, report.counts.updated) == (0, 1)
    assert any(f"/Calls/{sid}.json" in r for r in phones.state.requests)
    item = await _by_native(hub, sid)
    assert item.extra["status"] == "completed" and item.duration_seconds == 312
    assert "5:12" in item.subject
    assert await _count(hub) == 1


def _signed(path: str, params: dict[str, str], url: str = PUBLIC_URL) -> dict[str, str]:
    signature = RequestValidator(TOKEN).compute_signature(url + path, params)
    return {"X-Twilio-Signature": signature}


def _voice(sid: str, status: str, **more: str) -> dict[str, str]:
    stamp = NOW.strftime("%a, %d %b %Y %H:%M:%S +0000")
    return {
        "CallSid": sid,
        "AccountSid": "AC" + "f" * 32,
        "From": PIET,
        "To": OURS,
        "CallStatus": status,
        "Direction": "inbound",
        "Timestamp": stamp,
        "ApiVersion": "2010-04-01",
        **more,
    }


async def _refusals(hub: Hub) -> list[AuditRow]:
    async with hub.sessions() as session:
        rows = await session.execute(select(AuditRow).where(AuditRow.action == "webhook.refused"))
        return list(rows.scalars())


async def test_signed_callbacks_land_in_order_whatever_order_they_come_in(
    hub: Hub, phones: FakeTwilio
) -> None:
    path = "/hooks/twilio/phones/voice"
    sid = "CA" + "7" * 32
    async with logged_in(hub, "sales@ourco.example", "sales") as client:
        ringing = _voice(sid, "ringing")
        started = time.perf_counter()
        answer = await client.post(path, data=ringing, headers=_signed(path, ringing))
        assert answer.status_code == 204, answer.text
        found = await client.get("/api/interactions", params={"external_id": sid})
        visible = time.perf_counter() - started
        assert [i["id"] for i in found.json()["items"]], "visible through the API"
        print(f"\ncallback -> visible through the API: {visible * 1000:.1f} ms")
        assert visible < 2.0

        done = _voice(sid, "completed", CallDuration="250")
        # Behind a reverse proxy: Host and scheme are the proxy's, the signature is public_url's.
        proxied = {**_signed(path, done), "X-Forwarded-Proto": "https", "Host": "10.0.0.5:8000"}
        assert (await client.post(path, data=done, headers=proxied)).status_code == 204
        late = _voice(sid, "ringing")
        assert (await client.post(path, data=late, headers=_signed(path, late))).status_code == 204
        replay = await client.post(path, data=done, headers=_signed(path, done))
        assert replay.status_code == 204, "a replayed callback is absorbed, not refused"
        item = await _by_native(hub, sid)
        assert item.extra["status"] == "completed" and "4:10" in item.subject
        assert await _count(hub) == 1

        leg = _voice("CA" + "8" * 32, "completed", ParentCallSid=sid, CallDuration="240")
        assert (await client.post(path, data=leg, headers=_signed(path, leg))).status_code == 204
        assert await _count(hub) == 1, "a child leg is folded by the poll, never a second call"


async def test_forged_tampered_and_misdirected_callbacks_are_refused_and_audited(
    hub: Hub, phones: FakeTwilio
) -> None:
    path = "/hooks/twilio/phones/voice"
    params = _voice("CA" + "9" * 32, "completed", CallDuration="5")
    async with logged_in(hub, "sales@ourco.example", "sales") as client:
        unsigned = await client.post(path, data=params)
        tampered = await client.post(
            path, data={**params, "CallDuration": "5000"}, headers=_signed(path, params)
        )
        signed_for_host = _signed(path, params, url="http://hub")  # the Host header's URL
        by_host = await client.post(path, data=params, headers=signed_for_host)
        other = "/hooks/twilio/nobody/voice"  # a valid signature replayed to another connector
        elsewhere = await client.post(other, data=params, headers=_signed(other, params))
    assert [r.status_code for r in (unsigned, tampered, by_host, elsewhere)] == [403] * 4
    assert await _count(hub) == 0
    refusals = await _refusals(hub)
    assert len(refusals) == 4
    assert "no X-Twilio-Signature" in refusals[0].after["reason"]
    assert "does not fit" in refusals[1].after["reason"]
    assert "nobody" in refusals[3].after["reason"]
    assert all(PIET not in str(r.after) for r in refusals), "no phone numbers in the audit log"


async def test_message_callbacks_store_texts_and_whatsapp(hub: Hub, phones: FakeTwilio) -> None:
    path = "/hooks/twilio/phones/sms"
    incoming = {
        "MessageSid": "SM" + "3" * 32,
        "SmsStatus": "received",
        "From": PIET,
        "To": OURS,
        "Body": "Bitte um Rückruf",
        "NumMedia": "0",
    }
    sent = message(
        "SM" + "4" * 32,
        NOW,
        OURS,
        "whatsapp:" + PIET,
        body="Gern!",
        status="delivered",
        direction="outbound-api",
    )
    phones.state.add(sent)
    status = {
        "MessageSid": sent["sid"],
        "MessageStatus": "delivered",
        "From": OURS,
        "To": "whatsapp:" + PIET,
    }
    async with logged_in(hub, "sales@ourco.example", "sales") as client:
        first = await client.post(path, data=incoming, headers=_signed(path, incoming))
        second = await client.post(path, data=status, headers=_signed(path, status))
    assert first.status_code == second.status_code == 200
    assert "<Response/>" in first.text, "empty TwiML: no automatic reply"
    text = await _by_native(hub, incoming["MessageSid"])
    assert (text.channel, text.snippet) == ("sms", "Bitte um Rückruf")
    reply = await _by_native(hub, sent["sid"])
    assert (reply.channel, reply.snippet) == ("im", "Gern!"), "the text came from the API"


async def test_the_recording_streams_through_crmhub_to_those_who_may_hear_it(
    hub: Hub, phones: FakeTwilio
) -> None:
    known, stranger = "CA" + "a" * 32, "CA" + "b" * 32
    start = NOW - timedelta(hours=2)
    phones.state.add(
        call(known, start, PIET, OURS),
        call(stranger, start + timedelta(minutes=1), "+4930999999", OURS),
        recording("RE" + "a" * 32, known, start + timedelta(minutes=1)),
        recording("RE" + "b" * 32, stranger, start + timedelta(minutes=2)),
    )
    await _sync(hub)
    item, unmatched = await _by_native(hub, known), await _by_native(hub, stranger)
    heard: dict[str, tuple[int, int]] = {}
    for role in ("manager", "sales", "callcenter", "admin"):
        async with logged_in(hub, f"{role}@ourco.example", role) as client:
            answer = await client.get(f"/api/interactions/{item.id}/recording")
            hidden = await client.get(f"/api/interactions/{unmatched.id}/recording")
            wrong = await client.get(
                f"/api/interactions/{item.id}/recording", params={"sid": "RE" + "b" * 32}
            )
            heard[role] = (answer.status_code, hidden.status_code)
            if answer.status_code == 200:
                assert answer.content == AUDIO
                assert answer.headers["content-type"].startswith("audio/mpeg")
                assert TOKEN not in answer.text and "twilio.com" not in str(answer.headers)
            assert wrong.status_code == 404, "only the call's own recordings"
    assert heard == {
        "manager": (200, 404),
        "sales": (200, 404),
        "callcenter": (200, 404),
        "admin": (404, 404),
    }
    detail = await _detail(hub, item.id)
    assert TOKEN not in str(detail) and "twilio.com" not in str(detail)
    assert detail["recordings"] == [
        {
            "sid": "RE" + "a" * 32,
            "url": f"/api/interactions/{item.id}/recording?sid={'RE' + 'a' * 32}",
        }
    ]
    async with logged_in(hub, "it@ourco.example", "admin") as client:
        admin = (await client.get(f"/api/interactions/{item.id}")).json()
    assert admin["recordings"] == [], "an admin sees that a call happened, not what was said"


async def test_a_transcription_is_the_calls_text_for_those_who_may_read_it(
    hub: Hub, phones: FakeTwilio
) -> None:
    """Twilio transcribes after the call: the first sync sees the call with a transcription in
    progress, a later one the text, which then revises the stored call and its search."""
    sid, recorded = "CA" + "c" * 32, "RE" + "c" * 32
    start = NOW - timedelta(hours=1)
    pending = transcription("TR" + "c" * 32, recorded, "", status="in-progress")
    phones.state.add(
        call(sid, start, PIET, OURS),
        recording(recorded, sid, start + timedelta(minutes=1)),
        pending,
    )
    await _sync(hub)
    assert (await _by_native(hub, sid)).body_text == ""
    phones.state.add(
        transcription("TR" + "c" * 32, recorded, "Bitte Angebot für Lager Nord schicken")
    )
    revised = await _sync(hub)
    assert (revised.fetched, revised.new, revised.counts.updated) == (1, 0, 1)
    item = await _by_native(hub, sid)
    assert item.body_text == "Bitte Angebot für Lager Nord schicken"
    found: dict[str, list[int]] = {}
    for role in ("sales", "callcenter", "admin"):
        async with logged_in(hub, f"{role}@ourco.example", role) as client:
            answer = await client.get("/api/interactions", params={"q": "Lager Nord"})
            found[role] = [i["id"] for i in answer.json()["items"]]
            detail = (await client.get(f"/api/interactions/{item.id}")).json()
            assert (detail["body_text"] is not None) == (role != "admin"), role
    assert found == {"sales": [item.id], "callcenter": [item.id], "admin": []}
    again = await _sync(hub)
    assert (again.fetched, again.new) == (0, 0), "a finished transcription is read once"


async def _detail(hub: Hub, item_id: int) -> dict[str, Any]:
    async with logged_in(hub, "reader@ourco.example", "sales") as client:
        answer: httpx.Response = await client.get(f"/api/interactions/{item_id}")
    return dict(answer.json())
