"""The caldav sync's plain-event reader (connectors/caldav_sync.py `_plain_single`) against the
full road through icalendar: for every single event of icalendar's own test files, wrapped as
a CalDAV resource, and for generated ones (zones, all-day, private, folded lines, alarms), the
reader either steps aside or gives the same occurrence id, cursor entry and privacy, and the
meeting translated from its item equals the one translated from icalendar's."""

from __future__ import annotations

import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import icalendar
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors import caldav_sync
from connectors.base import ConnectorContext
from connectors.calendar import translate_event
from hub.model import Interaction

CORPUS = Path(icalendar.__file__).parent / "tests"
NOW = datetime(2025, 6, 1, tzinfo=UTC)
CONTEXT = ConnectorContext(timezone="Europe/Berlin")
MARKERS = frozenset({"privat"})


def _read(data: str, *, plain: bool, markers: frozenset[str] = MARKERS) -> Any:
    original = caldav_sync._plain_single
    if not plain:
        caldav_sync._plain_single = lambda *_: None  # type: ignore[assignment]
    try:
        return caldav_sync.read_resource(
            "r.ics",
            data,
            '"e1"',
            None,
            timezone="Europe/Berlin",
            window_days=365,
            private_markers=markers,
            now=NOW,
        )
    finally:
        caldav_sync._plain_single = original


def _meeting(item: Any) -> Interaction | None:
    if item.private:
        return None
    return translate_event(CONTEXT, item.data, item.external_id)


def _same(data: str, markers: frozenset[str] = MARKERS) -> bool:
    """Whether the plain reader took `data`; asserts it agrees with the full road."""
    if caldav_sync._plain_single(data, markers) is None:
        return False
    fast, full = _read(data, plain=True, markers=markers), _read(data, plain=False, markers=markers)
    assert fast.entry == full.entry
    assert [(i.external_id, i.private) for i in fast.items] == [
        (i.external_id, i.private) for i in full.items
    ]
    (fast_item,), (full_item,) = fast.items, full.items
    assert _meeting(fast_item) == _meeting(full_item)
    return True


def _wrapped(event: icalendar.Component, zones: list[icalendar.Component]) -> str:
    calendar = icalendar.Calendar()
    calendar.add("PRODID", "-//test//EN")
    calendar.add("VERSION", "2.0")
    for component in [*zones, event]:
        calendar.add_component(component)
    return calendar.to_ical().decode()


def test_single_events_of_the_icalendar_corpus_read_alike() -> None:
    taken = 0
    for path in sorted(CORPUS.rglob("*.ics")):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                calendar = icalendar.Calendar.from_ical(path.read_bytes())
                zones = list(calendar.walk("VTIMEZONE"))
                resources = [_wrapped(e, zones) for e in calendar.walk("VEVENT")]
            except Exception:  # noqa: BLE001 - a file icalendar refuses has nothing to compare
                continue
            for data in resources:
                try:
                    _read(data, plain=False)
                    if _same(data):
                        taken += 1
                except AssertionError:
                    raise
                except Exception:  # noqa: BLE001 - the full road fails too: quarantined alike
                    continue
    assert taken >= 40, f"only {taken} corpus events took the plain road"


ZONES = st.sampled_from(["", "Z", "Europe/Berlin", "America/New_York", "Custom/Nowhere", "day"])
TEXT = st.text(st.sampled_from(list("abcxyz ÄöüßЖ€,;:\\\"'=")), min_size=1, max_size=120)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    zone=ZONES,
    summary=TEXT,
    klass=st.sampled_from(["", "PUBLIC", "PRIVATE", "confidential"]),
    category=st.sampled_from(["", "Privat", "Kunde"]),
    alarm=st.booleans(),
    lower=st.booleans(),
    attendees=st.integers(0, 3),
)
def test_generated_single_events_read_alike(
    zone: str, summary: str, klass: str, category: str, alarm: bool, lower: bool, attendees: int
) -> None:
    event = icalendar.Event()
    event.add("UID", "plain-1@ourco.example")
    event.add("DTSTAMP", datetime(2025, 1, 1, tzinfo=UTC))
    event.add("SUMMARY", summary)
    start = datetime(2025, 3, 30, 1, 30)  # the night Berlin's clocks go forward
    if zone == "day":
        event.add("DTSTART", start.date())
    else:
        event.add("DTSTART", start.replace(tzinfo=UTC) if zone == "Z" else start)
        if zone and zone != "Z":
            event["DTSTART"].params["TZID"] = zone
    if klass:
        event.add("CLASS", klass)
    if category:
        event.add("CATEGORIES", [category])
    for n in range(attendees):
        event.add("ATTENDEE", f"mailto:kunde{n}@elbe-logistik.de", parameters={"CN": f"K, {n}"})
    if alarm:
        alarm_part = icalendar.Alarm()
        alarm_part.add("ACTION", "DISPLAY")
        alarm_part.add("TRIGGER", datetime(2025, 3, 29, tzinfo=UTC))
        alarm_part.add("UID", "alarm-uid")
        event.add_component(alarm_part)
    data = _wrapped(event, [])
    if lower:
        data = data.replace("UID:plain", "uid:plain").replace("BEGIN:VEVENT", "begin:vevent")
    try:
        _read(data, plain=False)
    except Exception:  # noqa: BLE001 - nothing to compare with
        pytest.skip("icalendar refuses this event")
    _same(data)
    _same(data, frozenset())


def test_a_series_a_second_event_or_an_escaped_uid_take_the_full_road() -> None:
    head = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\n"
    event = "BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTART:20250301T090000Z\r\n{more}END:VEVENT\r\n"
    plain = head + event.format(uid="a@x", more="") + "END:VCALENDAR\r\n"
    assert _same(plain)
    for data in (
        head + event.format(uid="a@x", more="RRULE:FREQ=WEEKLY\r\n") + "END:VCALENDAR\r\n",
        head + event.format(uid="a@x", more="") * 2 + "END:VCALENDAR\r\n",
        head + event.format(uid="a\\,b@x", more="") + "END:VCALENDAR\r\n",
        head + event.format(uid="a@x", more="UID:b@x\r\n") + "END:VCALENDAR\r\n",
        plain.replace("DTSTART:", "DTSTART;TZID=Nowhere/Land:").replace("Z\r\n", "\r\n", 1),
    ):
        assert caldav_sync._plain_single(data, MARKERS) is None, data
