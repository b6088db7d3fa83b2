"""Calls and texts attributed by phone number, as Twilio reports them: through the `twilio`
translation (connectors/twilio.py) and matching's `attribute`, no I/O.

Twilio writes numbers in E.164 but a withheld caller as a placeholder number, and WhatsApp
parties with a `whatsapp:` prefix; a foreign customer's number must match however the
directory wrote it, and a withheld caller must be an unknown outsider, never a customer and
never staff (DESIGN.md "Attribution policy", "Who sees what").
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from connectors.twilio import TwilioConnector
from hub.model import Account, Channel, Contact, Direction, Interaction, RawItem
from matching.engine import attribute
from matching.index import IdentityIndex
from matching.rules import CONTACT_PHONE

ELBE, LONDON = 1, 2
PIET, JANA, OLIVIA, BOB = 10, 11, 12, 13
OURS = "+4951112345600"


@pytest.fixture(scope="module")
def index() -> IdentityIndex:
    accounts = [
        Account("Elbe Logistik GmbH", ("elbe-logistik.de",), id=ELBE),
        Account("Thames Freight Ltd", ("thames-freight.example",), id=LONDON),
    ]
    contacts = [
        Contact("Piet Brandt", ELBE, (), ("+491712233445",), id=PIET),
        Contact("Jana Ohlsen", ELBE, (), ("+49403344556",), id=JANA),
        Contact("Olivia Hart", LONDON, (), ("+442079460958",), id=OLIVIA),
        Contact("Bob Reyes", LONDON, (), ("+14155550100",), id=BOB),
    ]
    return IdentityIndex.build(accounts, contacts, internal_domains=["ourco.example"], region="DE")


def _connector() -> TwilioConnector:
    settings = {"account_sid": "AC" + "0" * 32, "public_url": "https://crm.example.com"}
    return TwilioConnector("phones", settings)


def _call(caller: str, callee: str = OURS, direction: str = "inbound") -> Interaction:
    call = {
        "sid": "CA" + "1" * 32,
        "from": caller,
        "to": callee,
        "status": "completed",
        "direction": direction,
        "duration": "61",
        "start_time": "Tue, 01 Dec 2026 09:30:00 +0000",
    }
    return _translate({"call": call, "legs": [], "recordings": []})


def _text(sender: str, to: str = OURS) -> Interaction:
    message = {
        "sid": "SM" + "1" * 32,
        "from": sender,
        "to": to,
        "body": "Hallo",
        "status": "received",
        "direction": "inbound",
        "date_sent": "Tue, 01 Dec 2026 09:31:00 +0000",
    }
    return _translate({"message": message})


def _translate(doc: dict[str, Any]) -> Interaction:
    raw = RawItem(doc.get("call", doc.get("message", {}))["sid"], json.dumps(doc).encode())
    return _connector().translate(raw)


def _links(item: Interaction, index: IdentityIndex) -> set[tuple[int, int | None, str]]:
    return {(a.account_id, a.contact_id, a.rule) for a in attribute(item, index).attributions}


@pytest.mark.parametrize(
    ("caller", "contact", "account"),
    [
        ("+491712233445", PIET, ELBE),  # Twilio's E.164
        ("+442079460958", OLIVIA, LONDON),  # a foreign customer
        ("+14155550100", BOB, LONDON),
    ],
)
def test_a_call_goes_to_the_contact_whose_number_called(
    caller: str, contact: int, account: int, index: IdentityIndex
) -> None:
    item = _call(caller)
    assert item.channel is Channel.CALL and item.duration_seconds == 61
    assert _links(item, index) == {(account, contact, CONTACT_PHONE)}


@pytest.mark.parametrize(
    "number", ["0044 20 7946 0958", "+44 (0)20 7946 0958", "+44 20 7946 0958", "00442079460958"]
)
def test_a_foreign_number_matches_however_it_is_written(number: str, index: IdentityIndex) -> None:
    """A PBX or an agent writes a London number in many ways; the region (DE) reads `00`."""
    assert _links(_call(OURS, number, "outbound-api"), index) == {(LONDON, OLIVIA, CONTACT_PHONE)}


def test_a_foreign_number_nobody_has_matches_nothing(index: IdentityIndex) -> None:
    """Same national digits as Jana's (40 3344556), other country: no match by digits alone."""
    assert _links(_call("+3140334455"), index) == set()
    assert _links(_call("+4340334455"), index) == set()


@pytest.mark.parametrize(
    "withheld", ["+266696687", "+7378742833", "+86282452253", "+2562533", "anonymous", ""]
)
def test_a_withheld_caller_is_an_unknown_outsider(withheld: str, index: IdentityIndex) -> None:
    """Twilio's placeholders for ANONYMOUS, RESTRICTED, UNAVAILABLE, BLOCKED are read as no
    number: not a customer in Lesotho or Russia, and not one of our own extensions."""
    item = _call(withheld)
    assert item.participants[0].address == ""
    assert "withheld" in item.subject
    decision = attribute(item, index)
    assert decision.attributions == []
    assert decision.direction is Direction.INBOUND, "an outsider called, not staff"
    assert decision.not_logged == ""


def test_a_text_goes_to_its_sender_and_whatsapp_reads_as_the_number(
    index: IdentityIndex,
) -> None:
    sms = _text("+49403344556")
    assert sms.channel is Channel.SMS
    assert _links(sms, index) == {(ELBE, JANA, CONTACT_PHONE)}
    whatsapp = _text("whatsapp:+491712233445", "whatsapp:" + OURS)
    assert whatsapp.channel is Channel.IM
    assert _links(whatsapp, index) == {(ELBE, PIET, CONTACT_PHONE)}


def test_a_text_from_a_short_code_or_sender_name_matches_nothing(index: IdentityIndex) -> None:
    """Alphanumeric senders ("DHL") and short codes cannot be a customer's phone."""
    assert _links(_text("DHL"), index) == set()
    assert _links(_text("72345"), index) == set()


@pytest.mark.parametrize(
    ("twilio_direction", "caller", "callee", "direction"),
    [
        ("inbound", "+491712233445", OURS, Direction.INBOUND),
        ("outbound-api", OURS, "+491712233445", Direction.OUTBOUND),
        ("outbound-dial", OURS, "+491712233445", Direction.OUTBOUND),
    ],
)
def test_our_twilio_number_is_us_whichever_way_the_call_goes(
    index: IdentityIndex, twilio_direction: str, caller: str, callee: str, direction: Direction
) -> None:
    """Our Twilio number is a full number like a customer's: Twilio's direction says which
    side it is, so an outbound call is outbound and still the customer's, not ours."""
    decision = attribute(_call(caller, callee, twilio_direction), index)
    assert decision.direction is direction
    assert {(a.account_id, a.contact_id) for a in decision.attributions} == {(ELBE, PIET)}
    ours = [p for p in decision.participants if p.internal]
    assert [p.participant.address for p in ours] == [OURS]
