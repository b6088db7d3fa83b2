"""iCalendar files: each event occurrence is one meeting; recurring events expanded in a window."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar, Protocol, cast
from zoneinfo import ZoneInfo

import icalendar
import recurring_ical_events

from connectors.base import ConnectorError, FileConnector, MalformedItem
from hub.model import AddressKind, Channel, Interaction, Participant, RawItem, Role


class _DateTimeProperty(Protocol):
    dt: Any


def _dt(prop: object) -> Any:
    """The value of DTSTART or DTEND, read as icalendar parsed it.

    icalendar types every property as any of its value classes. These parse to vDDDTypes;
    anything else (a value that failed to parse) raises on `.dt`, and the event is quarantined.
    """
    return cast(_DateTimeProperty, prop).dt


def _as_datetime(value: Any, tz: str) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=ZoneInfo(tz))
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=ZoneInfo(tz))
    raise MalformedItem(f"DTSTART {value!r} is not a date or date-time")


def occurrence_key(event: icalendar.Component, tz: str) -> str:
    """UID alone for a single event, UID plus RECURRENCE-ID (in UTC) for an occurrence."""
    uid = str(event.get("UID", "")).strip()
    if not uid:
        uid = "sha256:" + hashlib.sha256(event.to_ical()).hexdigest()
    rid = event.get("RECURRENCE-ID")
    if rid is None:
        return uid
    stamp = _as_datetime(rid.dt, tz).astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{uid}|{stamp}"


def _address(value: Any) -> str:
    return str(value).strip().removeprefix("mailto:").removeprefix("MAILTO:")


class IcsConnector(FileConnector):
    kind = "ics"
    options: ClassVar[dict[str, str]] = {"path": "the .ics file to read"}

    def _read(self, cursor: dict[str, Any]) -> Iterator[tuple[list[RawItem], dict[str, Any]]]:
        path = Path(self.settings["path"]).expanduser()
        if not path.is_file():
            raise ConnectorError(f"{self.name}: {path} is not a readable .ics file")
        data = path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        today = datetime.now(UTC).date().isoformat()
        mark = {"sha256": digest, "window": today}
        if cursor == mark:
            return
        try:
            calendar = icalendar.Calendar.from_ical(data)
        except ValueError as e:
            raise ConnectorError(f"{self.name}: {path} is not an iCalendar file: {e}") from e
        batch: list[RawItem] = []
        for event in self._occurrences(calendar):
            payload = event.to_ical()
            batch.append(
                RawItem(occurrence_key(event, self.context.timezone), payload, "text/calendar")
            )
            if len(batch) >= self.batch_size:
                yield batch, cursor
                batch = []
        yield batch, mark

    def _occurrences(self, calendar: icalendar.Calendar) -> Iterator[icalendar.Component]:
        """Single events as they are, each recurring series expanded on its own.

        A series that cannot be expanded (no DTSTART, a bad RRULE) is yielded unexpanded, so
        that translation quarantines or logs it instead of one event stopping the whole file.
        """
        window = timedelta(days=self.context.calendar_window_days)
        now = datetime.now(UTC)
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

    def translate(self, raw: RawItem) -> Interaction:
        tz = self.context.timezone
        event = icalendar.Event.from_ical(raw.data)
        if "DTSTART" not in event:
            raise MalformedItem("event without DTSTART")
        start = _as_datetime(_dt(event["DTSTART"]), tz)
        end = _as_datetime(_dt(event["DTEND"]), tz) if "DTEND" in event else None
        participants = []
        organizer = event.get("ORGANIZER")
        if organizer:
            participants.append(
                Participant(
                    Role.ORGANIZER,
                    _address(organizer),
                    AddressKind.EMAIL,
                    str(organizer.params.get("CN", "")),
                )
            )
        attendees = event.get("ATTENDEE") or []
        answers: dict[str, str] = {}
        for attendee in attendees if isinstance(attendees, list) else [attendees]:
            address = _address(attendee)
            participants.append(
                Participant(
                    Role.ATTENDEE, address, AddressKind.EMAIL, str(attendee.params.get("CN", ""))
                )
            )
            if answer := str(attendee.params.get("PARTSTAT", "")).strip().lower():
                answers[address.lower()] = answer
        description = str(event.get("DESCRIPTION", ""))
        return Interaction(
            channel=Channel.MEETING,
            occurred_at=start,
            ends_at=end,
            dedupe_key=f"ics:{raw.external_id}",
            subject=str(event.get("SUMMARY", "")),
            snippet=" ".join(description.split())[:240],
            body_text=description,
            participants=participants,
            thread_key=f"ics:{event.get('UID', raw.external_id)!s}",
            extra={"location": str(event.get("LOCATION", ""))}
            | ({"answers": answers} if answers else {}),
        )
