"""`POST /hooks/pbx/{connector}` (docs/pbx-webhook.md) through the real app and store: a signed
event is stored and found by its ids; forged, tampered, unsigned, stale and misdirected requests
get the same 403 and an audit entry; a replay is a duplicate; a signed bad body gets a 400
naming what is wrong. Requests are signed here with `hmac` directly, as a PBX's adapter would,
not with crmhub's own signer.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
import typing
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator
from sqlalchemy import func, select

from connectors.calls import STATUSES
from connectors.pbx_webhook import EVENT_SCHEMA, CallEvent, Status
from hub.admin import add_connector
from hub.bootstrap import Hub
from hub.web.app import build_app
from storage.tables import AuditRow, InteractionRow, NativeIdRow, SourceRow
from storage.throttle import LIMIT, client_key, retry_after

SECRET = "pbx-signing-secret-0123456789"
DOC = Path(__file__).parents[2] / "docs" / "pbx-webhook.md"
# A finished inbound call as a 3CX adapter sends it (docs/pbx-webhook.md, "The event").
THREECX = {
    "call_id": "00000191F2A7C3E1_1042",
    "linked_id": "88412",
    "start": "2026-03-02T08:30:00Z",
    "answer": "2026-03-02T08:30:07Z",
    "end": "2026-03-02T08:34:17Z",
    "from": "+4917612345678",
    "to": "200",
    "direction": "inbound",
    "status": "completed",
    "from_name": "Jana Kunde",
    "to_name": "Anna Vertrieb",
}


def _sign(body: bytes, secret: str = SECRET, at: float | None = None) -> dict[str, str]:
    stamp = str(int(time.time() if at is None else at))
    digest = hmac.new(secret.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return {
        "Content-Type": "application/json",
        "X-Crmhub-Timestamp": stamp,
        "X-Crmhub-Signature": digest,
    }


def _body(event: dict[str, Any]) -> bytes:
    return json.dumps(event).encode()


@pytest.fixture
async def client(hub: Hub) -> AsyncIterator[httpx.AsyncClient]:
    await add_connector(
        hub, "pbx-webhook", "telefon", {"owner": "anna@ourco.example"}, {"signing_secret": SECRET}
    )
    transport = httpx.ASGITransport(app=build_app(hub))
    async with httpx.AsyncClient(transport=transport, base_url="http://hub") as http:
        yield http


async def _post(
    client: httpx.AsyncClient, body: bytes, headers: dict[str, str], name: str = "telefon"
) -> httpx.Response:
    return await client.post(f"/hooks/pbx/{name}", content=body, headers=headers)


async def _calls(hub: Hub) -> int:
    async with hub.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(InteractionRow)) or 0)


async def _refusals(hub: Hub) -> list[tuple[str, str]]:
    async with hub.sessions() as session:
        rows = await session.execute(
            select(AuditRow.target, AuditRow.after)
            .where(AuditRow.action == "webhook.refused")
            .order_by(AuditRow.id)
        )
        return [(target, after["reason"]) for target, after in rows]


async def test_a_signed_3cx_style_call_is_stored_under_the_connector_and_found_by_its_ids(
    hub: Hub, client: httpx.AsyncClient
) -> None:
    body = _body(THREECX)
    answer = await _post(client, body, _sign(body))
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"new": 1, "updated": 0, "duplicates": 0, "skipped": 0}
    async with hub.sessions() as session:
        item = (
            await session.execute(
                select(InteractionRow)
                .join(NativeIdRow, NativeIdRow.interaction_id == InteractionRow.id)
                .where(NativeIdRow.native_id == "88412")
            )
        ).scalar_one()
        source = (
            await session.execute(select(SourceRow).where(SourceRow.interaction_id == item.id))
        ).scalar_one()
    assert item.subject == "Call +4917612345678 → 200 (answered, 4:10)"
    assert item.direction == "inbound" and item.duration_seconds == 250
    assert item.extra["native_ids"] == ["00000191F2A7C3E1_1042", "88412"]
    assert (source.connector, source.external_id, source.owner) == (
        "telefon",
        "00000191F2A7C3E1_1042",
        "anna@ourco.example",
    )
    assert await _refusals(hub) == []


async def test_sipgate_style_states_update_one_call_and_a_replay_is_a_duplicate(
    hub: Hub, client: httpx.AsyncClient
) -> None:
    """sipgate.io's newCall, answer and hangup of a call from a withheld number, mapped as
    the doc says."""
    call = {
        "call_id": "8F0A9D3C2B1E",
        "start": "2026-03-02T10:00:00+01:00",
        "from": "anonymous",
        "to": "4951112345",
        "direction": "inbound",
        "to_name": "Anna Vertrieb",
    }
    states = [
        {**call, "status": "ringing"},
        {**call, "status": "in-progress", "answer": "2026-03-02T10:00:04+01:00"},
        {
            **call,
            "status": "completed",
            "answer": "2026-03-02T10:00:04+01:00",
            "end": "2026-03-02T10:02:04+01:00",
        },
    ]
    counts = []
    for state in states:
        body = _body(state)
        answer = await _post(client, body, _sign(body))
        assert answer.status_code == 200, answer.text
        counts.append(answer.json())
    assert [(c["new"], c["updated"]) for c in counts] == [(1, 0), (0, 1), (0, 1)]

    body = _body(states[2])
    headers = _sign(body)
    for _ in range(2):  # the same signed request twice within the window
        again = await _post(client, body, headers)
        assert again.json() == {"new": 0, "updated": 0, "duplicates": 1, "skipped": 0}
    late = _body(states[0])  # an old "ringing" arriving last
    assert (await _post(client, late, _sign(late))).status_code == 200
    assert await _calls(hub) == 1
    async with hub.sessions() as session:
        subject = await session.scalar(select(InteractionRow.subject))
    assert subject == "Call withheld → 4951112345 (answered, 2:00)"


async def test_forged_tampered_unsigned_stale_and_misdirected_requests_are_refused_and_audited(
    hub: Hub, client: httpx.AsyncClient
) -> None:
    body = _body(THREECX)
    tampered = body.replace(b"+4917612345678", b"+4917699999999")
    cases: list[tuple[str, bytes, dict[str, str], str]] = [
        ("telefon", body, _sign(body, secret="somebody-elses-secret-42"), "does not match"),
        ("telefon", tampered, _sign(body), "does not match"),
        ("telefon", body, {"Content-Type": "application/json"}, "unsigned"),
        ("telefon", body, _sign(body, at=time.time() - 301), "stale"),
        ("telefon", body, _sign(body, at=time.time() + 400), "stale"),
        ("telefon", body, {**_sign(body), "X-Crmhub-Timestamp": "yesterday"}, "whole seconds"),
        ("nosuch", body, _sign(body), "no enabled pbx-webhook connector named 'nosuch'"),
    ]
    answers = [await _post(client, b, headers, name) for name, b, headers, _ in cases]
    assert [a.status_code for a in answers] == [403] * len(cases)
    assert len({a.text for a in answers}) == 1, "the answer does not say what was wrong"
    assert "nosuch" not in answers[-1].text
    refusals = await _refusals(hub)
    assert [target for target, _ in refusals] == [name for name, *_ in cases]
    for (_, reason), (*_, expected) in zip(refusals, cases, strict=True):
        assert expected in reason
    assert SECRET not in str(refusals)
    assert await _calls(hub) == 0


async def test_a_connector_of_another_kind_or_without_a_secret_takes_nothing(
    hub: Hub, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    await add_connector(hub, "asterisk-cdr", "cdr", {"path": str(tmp_path / "Master.csv")}, {})
    await add_connector(hub, "pbx-webhook", "nosecret", {}, {})
    body = _body(THREECX)
    for name in ("cdr", "nosecret"):
        assert (await _post(client, body, _sign(body), name)).status_code == 403
    assert [reason for _, reason in await _refusals(hub)] == [
        "no enabled pbx-webhook connector named 'cdr'",
        "nosecret has no signing_secret stored",
    ]


async def test_a_flood_of_forged_requests_is_audited_up_to_the_limit_and_real_calls_still_land(
    hub: Hub, client: httpx.AsyncClient
) -> None:
    """Anybody can post to a webhook: a thousand forgeries must not write a thousand audit
    entries (hub.web.refusals). Every one is still refused, and a signed call from the same
    address (a reverse proxy's) is stored in the middle of the flood."""
    body = _body(THREECX)
    forged = [await _post(client, body, _sign(body, "guessed")) for _ in range(LIMIT + 15)]
    assert {a.status_code for a in forged} == {403}
    assert len(await _refusals(hub)) == LIMIT, "one entry per refusal up to the limit only"
    signed = await _post(client, body, _sign(body))
    assert signed.status_code == 200, signed.text
    assert await _calls(hub) == 1
    # The login of a user behind the same proxy is not blocked by the forger.
    async with hub.sessions() as session:
        assert await retry_after(session, [client_key("127.0.0.1")], datetime.now(UTC)) is None


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"status": "done"}, "status: Input should be 'completed'"),
        ({"start": "2026-03-02T08:30:00"}, "start: Input should have timezone info"),
        ({"answer": None, "end": None}, "a completed call needs duration, or answer and end"),
        ({"end": "2026-03-02T08:00:00Z"}, "end is before start"),
        ({"duraton": 12}, "duraton: Extra inputs are not permitted"),
        ({"call_id": ""}, "call_id: String should have at least 1 character"),
    ],
)
async def test_a_signed_body_that_is_no_event_gets_a_400_naming_what_is_wrong(
    hub: Hub, client: httpx.AsyncClient, change: dict[str, Any], words: str
) -> None:
    body = _body({**THREECX, **change})
    answer = await _post(client, body, _sign(body))
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "bad_event"
    assert words in answer.json()["error"]["message"]
    assert await _calls(hub) == 0


async def test_a_signed_body_that_is_not_json_gets_a_400(
    hub: Hub, client: httpx.AsyncClient
) -> None:
    body = b"event=newCall&callId=1"  # a sipgate form posted without an adapter
    answer = await _post(client, body, _sign(body))
    assert answer.status_code == 400
    assert "Invalid JSON" in answer.json()["error"]["message"]


def _documented_schema() -> dict[str, Any]:
    text = DOC.read_text()
    block = re.search(r"### Schema.*?```json\n(.*?)```", text, re.S)
    assert block, "docs/pbx-webhook.md has a ### Schema section with a json block"
    return dict(json.loads(block.group(1)))


def test_the_documented_schema_is_the_one_validated_and_both_judge_alike() -> None:
    documented = _documented_schema()
    assert documented == EVENT_SCHEMA
    validator = Draft202012Validator(documented, format_checker=Draft202012Validator.FORMAT_CHECKER)
    samples: list[dict[str, Any]] = [
        THREECX,
        {**THREECX, "status": "done"},
        {**THREECX, "answer": None, "end": None},
        {**THREECX, "answer": None, "end": None, "duration": 5},
        {**THREECX, "status": "ringing", "answer": None, "end": None},
        {**THREECX, "extra": 1},
        {k: v for k, v in THREECX.items() if k != "to"},
    ]
    for sample in samples:
        by_schema = validator.is_valid(sample)
        try:
            CallEvent.model_validate_json(json.dumps(sample))
            by_model = True
        except ValueError:
            by_model = False
        assert by_schema == by_model, sample


def test_the_event_statuses_are_the_shared_call_statuses() -> None:
    assert typing.get_args(Status) == STATUSES
