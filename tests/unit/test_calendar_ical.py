"""`event_ical` (connectors/calendar.py), the fast serialiser of occurrences, against icalendar's
own `to_ical`: the same bytes for every occurrence of the icalendar corpus and of generated
series (folding at the 75-octet edge, multi-byte characters, escapes, parameters), since those
bytes are what a caldav sync stores as each meeting's raw item."""

from __future__ import annotations

import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import icalendar
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.calendar import Lines, event_ical, occurrences

CORPUS = Path(icalendar.__file__).parent / "tests"
FILES = sorted(CORPUS.rglob("*.ics"))
NOW = datetime(2025, 6, 1, tzinfo=UTC)


def _calendar(path: Path) -> icalendar.Calendar | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return icalendar.Calendar.from_ical(path.read_bytes())
        except Exception:  # noqa: BLE001 - a file icalendar refuses has nothing to compare
            return None


def test_every_corpus_occurrence_serialises_as_icalendar_does() -> None:
    compared = 0
    for path in FILES:
        calendar = _calendar(path)
        if calendar is None:
            continue
        lines: Lines = {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                found = list(occurrences(calendar, 730, NOW))
            except Exception:  # noqa: BLE001 - the ics source quarantines these; not ours here
                continue
            for event in found:
                try:
                    expected = event.to_ical()
                except Exception:  # noqa: BLE001 - icalendar cannot write it either
                    continue
                assert event_ical(event, lines) == expected, path.name
                compared += 1
    assert compared >= 200, f"only {compared} occurrences compared"


TEXT = st.text(st.sampled_from(list("abcxyz ÄöüßЖ€😀,;:\\\"'\n\t=")), max_size=90)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    summary=TEXT,
    description=TEXT,
    name=TEXT,
    pad=st.integers(min_value=0, max_value=80),
    weeks=st.integers(min_value=1, max_value=6),
    zone=st.sampled_from(["UTC", "Europe/Berlin", "America/New_York", ""]),
)
def test_generated_series_serialise_as_icalendar_does(
    summary: str, description: str, name: str, pad: int, weeks: int, zone: str
) -> None:
    event = icalendar.Event()
    event.add("UID", "u" * pad + "@ourco.example")
    event.add("SUMMARY", summary)
    event.add("DESCRIPTION", description)
    start = datetime(2025, 5, 5, 9, 30)
    if zone:
        start = start.replace(tzinfo=ZoneInfo(zone))
    event.add("DTSTART", start)
    event.add("DTEND", start + timedelta(hours=1))
    event.add("DTSTAMP", datetime(2025, 1, 1, tzinfo=UTC))
    event.add("ORGANIZER", "mailto:anna@ourco.example", parameters={"CN": name})
    event.add("ATTENDEE", "mailto:" + "k" * pad + "@firma.example", parameters={"CN": name})
    event.add("RRULE", {"FREQ": "WEEKLY", "COUNT": weeks})
    calendar = icalendar.Calendar()
    calendar.add_component(event)
    parsed = icalendar.Calendar.from_ical(calendar.to_ical())
    lines: Lines = {}
    found = list(occurrences(parsed, 365, NOW))
    assert len(found) == weeks
    for occurrence in found:
        assert event_ical(occurrence, lines) == occurrence.to_ical()


@pytest.mark.parametrize("length", [72, 73, 74, 75, 76, 150])
def test_lines_at_the_folding_edge(length: int) -> None:
    event = icalendar.Event()
    event.add("SUMMARY", "x" * (length - len("SUMMARY:")))
    event.add("LOCATION", "ü" * (length // 2))
    assert event_ical(event, {}) == event.to_ical()
