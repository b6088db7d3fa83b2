"""The shared calendar translator: one meeting occurrence -> Interaction.

Every calendar kind (ics files, CalDAV, Exchange, Microsoft 365) ends here, as every mail kind
ends in `connectors/mail.py`. iCalendar sources hand over the event's text (`translate_event`);
sources whose attendees and answers live in item fields rather than in iCalendar (EWS, Graph)
build a `Meeting` and call `meeting_interaction`. Both give the same dedupe key for the same
occurrence (`ics:` + UID, plus RECURRENCE-ID in UTC for one occurrence of a series), so a
meeting seen in a team calendar file and in an Exchange mailbox is stored once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol, cast
from zoneinfo import ZoneInfo

import icalendar
import recurring_ical_events

from connectors.base import ConnectorContext, MalformedItem
from hub.model import AddressKind, Channel, Interaction, Participant, Role

SNIPPET_CHARS = 240


class _DateTimeProperty(Protocol):
    dt: Any


def _dt(prop: object) -> Any:
    """The value of DTSTART or DTEND, read as icalendar parsed it.

    icalendar types every property as any of its value classes. These parse to vDDDTypes;
    anything else (a value that failed to parse) raises on `.dt`, and the event is quarantined.
    """
    return cast(_DateTimeProperty, prop).dt


def as_datetime(value: Any, tz: str) -> datetime:
    """A DTSTART-like value as an aware datetime: floating times and all-day dates are read in
    the hub's zone `tz`."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=ZoneInfo(tz))
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=ZoneInfo(tz))
    raise MalformedItem(f"DTSTART {value!r} is not a date or date-time")


def occurrence_id(uid: str, recurrence_id: datetime | None) -> str:
    """UID alone for a single event, UID plus RECURRENCE-ID (in UTC) for an occurrence."""
    if recurrence_id is None:
        return uid
    return f"{uid}|{recurrence_id.astimezone(UTC).strftime('%Y%m%dT%H%M%SZ')}"


def occurrence_key(event: icalendar.Component, tz: str) -> str:
    """The occurrence id of an iCalendar VEVENT; an event without UID is named by its text."""
    uid = str(event.get("UID", "")).strip()
    if not uid:
        uid = "sha256:" + hashlib.sha256(event.to_ical()).hexdigest()
    rid = event.get("RECURRENCE-ID")
    return occurrence_id(uid, None if rid is None else as_datetime(rid.dt, tz))


def occurrences(
    calendar: icalendar.Calendar, window_days: int, now: datetime | None = None
) -> Iterator[icalendar.Component]:
    """Single events as they are, each recurring series expanded within `window_days` of now.

    A series that cannot be expanded (no DTSTART, a bad RRULE) is yielded unexpanded, so
    that translation quarantines or logs it instead of one event stopping the whole calendar.
    """
    window = timedelta(days=window_days)
    now = now or datetime.now(UTC)
    series: dict[str, list[icalendar.Component]] = {}
    for event in calendar.walk("VEVENT"):
        if event.get("RRULE") or event.get("RDATE") or event.get("RECURRENCE-ID"):
            series[str(event.get("UID", ""))] = []
    for event in calendar.walk("VEVENT"):
        uid = str(event.get("UID", ""))
        if uid in series:
            series[uid].append(event)
        else:
            yield event
    for events in series.values():
        part = icalendar.Calendar()
        for component in [*calendar.walk("VTIMEZONE"), *events]:
            part.add_component(component)
        try:
            expanded = list(recurring_ical_events.of(part).between(now - window, now + window))
        except (KeyError, ValueError, TypeError):
            yield from events
            continue
        for event in expanded:
            if event.get("RECURRENCE-ID") is None:
                event.add("RECURRENCE-ID", event["DTSTART"].dt)
            yield event


Lines = dict[tuple[str, object], tuple[object, bytes]]  # see event_ical


def event_ical(event: icalendar.Component, lines: Lines) -> bytes:
    """The bytes of `event.to_ical()`, each property line made by icalendar itself, but made
    only once per value object: `lines` keeps them by name and id(value) (BEGIN and END by
    their text), with the value, so that no id is reused while it is known.

    `occurrences` copies a series' master for each occurrence and replaces only DTSTART,
    DTEND and RECURRENCE-ID; every other value is the master's own object, so with one `lines`
    per series its lines are folded once instead of once per occurrence (measured: serialising
    a year of weekly occurrences takes less than half the time).
    """
    out = []
    for name, value in event.property_items():
        key = (name, value if isinstance(value, bytes) else id(value))
        known = lines.get(key)
        if known is None or (known[0] is not value and not isinstance(value, bytes)):
            text = event.content_line(name, value)
            # icalendar folds at 75 octets, one character at a time (a fifth of serialising):
            # a shorter ASCII line is its own folding.
            known = (value, text.encode() if len(text) < 75 and text.isascii() else text.to_ical())
            lines[key] = known
        out.append(known[1])
    return b"\r\n".join(line for line in out if line) + b"\r\n"


@dataclass(frozen=True)
class Attendee:
    address: str
    name: str = ""
    answer: str = ""  # accepted, declined, tentative, needs-action ("" when unknown)


@dataclass(frozen=True)
class Meeting:
    """One occurrence as a source's own fields give it, before it becomes an Interaction."""

    occurrence: str  # occurrence_id(uid, recurrence_id)
    uid: str
    start: datetime
    end: datetime | None = None
    subject: str = ""
    description: str = ""
    location: str = ""
    organizer: Attendee | None = None
    attendees: list[Attendee] = field(default_factory=list)
    # iCalendar STATUS (tentative, confirmed, cancelled; "" when the source says none) and
    # SEQUENCE (the organizer's revision number): storage revises a stored occurrence from
    # them, and never with an older revision than the one it holds.
    status: str = ""
    sequence: int | None = None
    # The day of an all-day event: a date, not a time. `start` is its midnight in the hub's
    # zone (for ordering); pages show this day, in whatever zone the reader is.
    all_day: date | None = None


def meeting_interaction(meeting: Meeting) -> Interaction:
    """The Interaction of one occurrence: organizer and attendees as parties, their answers
    (PARTSTAT, lower-case) by address in `extra`, the series' UID as the thread."""
    participants: list[Participant] = []
    if meeting.organizer is not None and meeting.organizer.address:
        organizer = meeting.organizer
        participants.append(
            Participant(Role.ORGANIZER, organizer.address, AddressKind.EMAIL, organizer.name)
        )
    answers: dict[str, str] = {}
    for attendee in meeting.attendees:
        if not attendee.address:
            continue
        participants.append(
            Participant(Role.ATTENDEE, attendee.address, AddressKind.EMAIL, attendee.name)
        )
        if attendee.answer:
            answers[attendee.address.lower()] = attendee.answer.lower()
    extra: dict[str, Any] = {"location": meeting.location}
    if answers:
        extra["answers"] = answers
    if meeting.status:
        extra["status"] = meeting.status.lower()
    if meeting.sequence is not None:
        extra["sequence"] = meeting.sequence
    if meeting.all_day is not None:
        extra["all_day"] = meeting.all_day.isoformat()
    return Interaction(
        channel=Channel.MEETING,
        occurred_at=meeting.start,
        ends_at=meeting.end,
        dedupe_key=f"ics:{meeting.occurrence}",
        subject=meeting.subject,
        snippet=" ".join(meeting.description.split())[:SNIPPET_CHARS],
        body_text=meeting.description,
        participants=participants,
        thread_key=f"ics:{meeting.uid}",
        extra=extra,
    )


def _address(value: Any) -> str:
    return str(value).strip().removeprefix("mailto:").removeprefix("MAILTO:")


def translate_event(context: ConnectorContext, data: bytes, occurrence: str) -> Interaction:
    """One VEVENT's iCalendar text (as `occurrences` yields it, serialised) -> Interaction."""
    tz = context.timezone
    event = icalendar.Event.from_ical(data)
    if "DTSTART" not in event:
        raise MalformedItem("event without DTSTART")
    organizer = event.get("ORGANIZER")
    attendees = event.get("ATTENDEE") or []
    start = _dt(event["DTSTART"])
    return meeting_interaction(
        Meeting(
            occurrence=occurrence,
            uid=str(event.get("UID", occurrence)),
            start=as_datetime(start, tz),
            end=as_datetime(_dt(event["DTEND"]), tz) if "DTEND" in event else None,
            subject=str(event.get("SUMMARY", "")),
            description=str(event.get("DESCRIPTION", "")),
            location=str(event.get("LOCATION", "")),
            organizer=Attendee(_address(organizer), str(organizer.params.get("CN", "")))
            if organizer
            else None,
            attendees=[
                Attendee(
                    _address(attendee),
                    str(attendee.params.get("CN", "")),
                    str(attendee.params.get("PARTSTAT", "")).strip().lower(),
                )
                for attendee in (attendees if isinstance(attendees, list) else [attendees])
            ],
            status=str(event.get("STATUS", "")).strip(),
            sequence=_sequence(event.get("SEQUENCE")),
            all_day=start if isinstance(start, date) and not isinstance(start, datetime) else None,
        )
    )


def _sequence(value: Any) -> int | None:
    """SEQUENCE as a number; absent or unreadable is None (RFC 5545 3.8.7.4: default 0, but
    None lets a source that never sends one be told from one that sent 0)."""
    if value is None:
        return None
    try:
        return int(str(value).strip())
    except ValueError as e:
        raise MalformedItem(f"SEQUENCE {str(value)[:40]!r} is not a number") from e
