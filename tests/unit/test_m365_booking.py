"""A booking as the Graph event the m365 connector creates (connectors/m365_booking.py): the
customer a required attendee, so Exchange Online invites them, and the booking's UID read
from Graph's answer (tests/integration/test_booking.py books through the Graph fake)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from connectors.base import ConnectorError
from connectors.m365_booking import created_uid, event_json
from hub.invitation import Booking, calendar_of


def test_the_customer_is_a_required_attendee_of_the_event() -> None:
    start = datetime(2030, 3, 4, 9, 30, tzinfo=UTC)
    booking = Booking(
        "anna@ourco.example", "Anna", "j.ohlsen@elbe-logistik.de", "Jana Ohlsen",
        start, start + timedelta(minutes=45), "Folgetermin", "Staffelpreise",
    )  # fmt: skip
    doc = event_json(calendar_of(booking, "crmhub-1@ourco.example", start))
    assert doc["attendees"] == [
        {
            "emailAddress": {"address": "j.ohlsen@elbe-logistik.de", "name": "Jana Ohlsen"},
            "type": "required",
        }
    ]
    assert doc["body"] == {"contentType": "text", "content": "Staffelpreise"}
    assert doc["start"] == {"dateTime": "2030-03-04T09:30:00", "timeZone": "UTC"}
    assert doc["end"] == {"dateTime": "2030-03-04T10:15:00", "timeZone": "UTC"}
    assert "transactionId" not in doc and "iCalUId" not in doc  # Graph takes no UID


def test_the_uid_is_the_one_graph_gave_the_event() -> None:
    assert created_uid("anna-365", {"id": "AAMk1=", "iCalUId": "040000008200E0"}) == (
        "040000008200E0"
    )
    with pytest.raises(ConnectorError, match=r"^anna-365: Graph created the event .* iCalUId"):
        created_uid("anna-365", {"id": "AAMk1="})
