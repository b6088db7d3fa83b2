"""CalDAV resources -> occurrence items, and what the caldav cursor remembers of a calendar.

A calendar object resource (one href) holds one event or one recurring series. It becomes one
raw item per occurrence, keyed like every calendar source (`occurrence_key`: UID, plus
RECURRENCE-ID for an occurrence of a series), so the same meeting from several calendars,
users or kinds is one interaction with several sources.

The cursor keeps per href `[etag, [occurrence ids], start]`: the ETag tells a changed resource
from an unchanged one when the server has no usable sync token; the occurrence ids say which
meetings a deleted or changed resource took away; `start` (DTSTART of a single event as
iCalendar text, "" for a series) lets a deleted single event be reported cancelled at its time.
What a resource took away is reported as a cancellation (the occurrence's VEVENT with
`STATUS:CANCELLED`, under the same external id), once every calendar of the pass is read, and
only when no other href of the connector still holds it: an event moved between two calendars
is not a cancelled meeting.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import icalendar

from connectors.calendar import Lines, as_datetime, event_ical, occurrence_key, occurrences
from hub.model import RawItem

CONTENT_TYPE = "text/calendar"
UNREADABLE = "resource:"  # external id prefix of a resource that is no iCalendar at all
DELETED_MARK = "X-CRMHUB-DELETED"  # on a cancellation made for a deleted resource
PRIVATE_CLASSES = ("PRIVATE", "CONFIDENTIAL")
Entry = list[Any]  # [etag, [occurrence ids], start]


@dataclass
class Resource:
    """One resource read: its raw items, what the cursor keeps of it, and the cancellations
    of occurrences it no longer holds (occurrence id -> VEVENT text)."""

    items: list[RawItem] = field(default_factory=list)
    entry: Entry = field(default_factory=list)
    cancelled: dict[str, str] = field(default_factory=dict)


def read_resource(
    name: str,
    data: str,
    etag: str,
    old: Entry | None,
    *,
    timezone: str,
    window_days: int,
    private_markers: frozenset[str],
    now: datetime,
) -> Resource:
    """Expand one resource's events within the window; compare with what `old` held."""
    single = _plain_single(data, private_markers)
    if single is not None and (not old or set(old[1]) <= {single[0]}):
        key, start, payload, reason = single
        item = RawItem(key, b"" if reason else payload, CONTENT_TYPE, private=reason)
        return Resource([item], [etag, [key], start])
    try:
        calendar = icalendar.Calendar.from_ical(data)
    except ValueError:
        # Not iCalendar at all: handed on as it is, so that translation quarantines it.
        return Resource([RawItem(UNREADABLE + name, data.encode(), CONTENT_TYPE)], [etag, [], ""])
    resource = Resource()
    ids: list[str] = []
    masters = [e for e in calendar.walk("VEVENT") if e.get("RECURRENCE-ID") is None]
    start = _start_text(masters[0]) if len(masters) == 1 and not _recurs(masters[0]) else ""
    lines: Lines = {}
    try:
        for event in occurrences(calendar, window_days, now):
            key = occurrence_key(event, timezone)
            if key in ids:
                continue
            ids.append(key)
            reason = private_reason(event, private_markers)
            payload = b"" if reason else event_ical(event, lines)
            resource.items.append(RawItem(key, payload, CONTENT_TYPE, private=reason))
    except (ValueError, KeyError, TypeError, AttributeError):
        # An event the expansion cannot place (a RECURRENCE-ID that is no date): quarantined
        # whole by translation, as an .ics file's would be, instead of stopping the calendar.
        return Resource([RawItem(UNREADABLE + name, data.encode(), CONTENT_TYPE)], [etag, [], ""])
    resource.entry = [etag, ids, start]
    if old:
        floor = now - timedelta(days=window_days)
        master = masters[0] if len(masters) == 1 and _recurs(masters[0]) else None
        for gone in set(old[1]) - set(ids):
            rid = recurrence_of(gone)
            if rid is not None and rid < floor:
                continue  # fell out of the window's back: over, not cancelled
            text = _cancelled_occurrence(master, rid) if master is not None else None
            resource.cancelled[gone] = text or cancelled_event(gone, str(old[2] or ""))
    return resource


# Properties after which a resource is not one plain event: a series, an occurrence of one,
# or categories that `private_marker` must judge (icalendar reads those lists).
_NOT_PLAIN = frozenset(("RRULE", "RDATE", "EXDATE", "RECURRENCE-ID"))
_READ = frozenset(("UID", "DTSTART", "CLASS", "CATEGORIES"))  # each at most once


def _plain_single(data: str, private_markers: frozenset[str]) -> tuple[str, str, bytes, str] | None:
    """(occurrence id, start text, the server's VEVENT text, private reason) of a resource
    that holds one plain event, read from its lines; None for anything else, which icalendar
    reads. Most resources are single events, and parsing and re-serialising each one with
    icalendar was the larger half of an initial sync (bench/caldav_sync.py). The item is the
    event as the server wrote it, which translation reads as it reads any VEVENT; whatever
    this reader is unsure of (an escaped UID, a zone zoneinfo does not know, a second event)
    takes the full road, so both give the same id, start and privacy."""
    lines = data.replace("\r\n", "\n").replace("\n ", "").replace("\n\t", "").split("\n")
    begins = [n for n, line in enumerate(lines) if line.upper() == "BEGIN:VEVENT"]
    if len(begins) != 1:
        return None
    first = begins[0]
    depth, last = 0, -1
    props: dict[str, tuple[str, str]] = {}
    for n in range(first, len(lines)):
        line = lines[n]
        upper = line.upper()
        if upper.startswith("BEGIN:"):
            depth += 1
        elif upper.startswith("END:"):
            depth -= 1
            if depth == 0:
                last = n
                break
        elif depth == 1:  # the event's own properties, not its alarms'
            head, colon, value = line.partition(":")
            name, _, params = head.partition(";")
            name = name.upper()
            if not colon or name in _NOT_PLAIN:
                return None
            if name in _READ:
                if name in props or '"' in head:
                    return None
                props[name] = (params, value)
    uid = props.get("UID", ("", ""))[1].strip()
    if last < 0 or not uid or "\\" in uid or ("CATEGORIES" in props and private_markers):
        return None
    start = _plain_start(*props.get("DTSTART", ("", "")))
    if start is None:
        return None
    klass = props.get("CLASS", ("", ""))[1].strip().upper()
    reason = f"iCalendar CLASS:{klass}" if klass in PRIVATE_CLASSES else ""
    text = "\r\n".join(lines[first : last + 1]) + "\r\n"
    return uid, start, text.encode(), reason


def _plain_start(params: str, value: str) -> str | None:
    """`_start_text` of a DTSTART line: a day, UTC, floating, or in a zone zoneinfo knows."""
    value = value.strip()
    named = dict(p.partition("=")[::2] for p in params.split(";") if p)
    named = {k.upper(): v for k, v in named.items()}
    try:
        if len(value) == 8 and value.isdigit():
            return value
        moment = datetime.strptime(value.rstrip("Z"), "%Y%m%dT%H%M%S")
        if value.endswith("Z"):
            return value
        if "TZID" not in named:
            return value
        zone = ZoneInfo(named["TZID"])
    except (ValueError, KeyError, ZoneInfoNotFoundError):
        return None
    return moment.replace(tzinfo=zone).astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def private_reason(event: icalendar.Component, markers: frozenset[str]) -> str:
    """Why an event is never stored, or "": CLASS PRIVATE or CONFIDENTIAL (what calendar
    clients write for "private"), or a category that `private_marker` names."""
    klass = str(event.get("CLASS", "")).strip().upper()
    if klass in PRIVATE_CLASSES:
        return f"iCalendar CLASS:{klass}"
    categories = event.get("CATEGORIES")
    for group in categories if isinstance(categories, list) else [categories]:
        for category in getattr(group, "cats", []) or []:
            if str(category).strip().casefold() in markers:
                return f"category {category!r} (private_marker)"
    return ""


def recurrence_of(occurrence: str) -> datetime | None:
    """The RECURRENCE-ID (UTC) in an occurrence id, None for a single event."""
    _, bar, stamp = occurrence.rpartition("|")
    if not bar:
        return None
    try:
        return datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        return None


def cancelled_event(occurrence: str, start: str) -> str:
    """The VEVENT of a deleted resource's occurrence: UID, RECURRENCE-ID and DTSTART (the
    recurrence's time, or the single event's `start`) with STATUS:CANCELLED; what else the
    meeting said, storage keeps from before."""
    rid = recurrence_of(occurrence)
    uid = occurrence.rpartition("|")[0] if rid is not None else occurrence
    event = icalendar.Event()
    event.add("UID", uid)
    if rid is not None:
        event.add("RECURRENCE-ID", rid)
        event.add("DTSTART", rid)
    elif len(start) == 8:
        event.add("DTSTART", datetime.strptime(start, "%Y%m%d").date())
    elif start:
        event.add("DTSTART", _parse_start(start))
    event.add("STATUS", "CANCELLED")
    event.add(DELETED_MARK, "TRUE")
    return str(event.to_ical().decode())


def pending_cancellations(
    pending: Mapping[str, str], calendars: Iterable[Mapping[str, Any]]
) -> list[RawItem]:
    """Cancellations of the occurrences that no href of any calendar holds any more."""
    held: set[str] = set()
    for state in calendars:
        for entry in (state.get("hrefs") or {}).values():
            held.update(entry[1])
    return [
        RawItem(occurrence, text.encode(), CONTENT_TYPE)
        for occurrence, text in sorted(pending.items())
        if occurrence not in held
    ]


def _recurs(event: icalendar.Component) -> bool:
    return bool(event.get("RRULE") or event.get("RDATE"))


def _start_text(event: icalendar.Component) -> str:
    """DTSTART as compact text for the cursor: YYYYMMDD for a day, UTC or floating time."""
    prop = event.get("DTSTART")
    value = getattr(prop, "dt", None)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            return value.strftime("%Y%m%dT%H%M%S")
        return value.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    if isinstance(value, date):
        return value.strftime("%Y%m%d")
    return ""


def _parse_start(text: str) -> datetime:
    parsed = datetime.strptime(text.rstrip("Z"), "%Y%m%dT%H%M%S")
    return parsed.replace(tzinfo=UTC) if text.endswith("Z") else parsed


_NOT_COPIED = frozenset({"RRULE", "RDATE", "EXDATE", "DTSTART", "DTEND", "DURATION", "STATUS"})


def _cancelled_occurrence(master: icalendar.Component, rid: datetime | None) -> str | None:
    """A removed occurrence of a series that still exists (an EXDATE, a shortened RRULE),
    made from its master: its subject and parties, at its time, marked cancelled."""
    if rid is None:
        return None
    event = icalendar.Event()
    for name, value in master.items():
        if name not in _NOT_COPIED:
            event[name] = value
    begin, until = (
        getattr(master.get("DTSTART"), "dt", None),
        getattr(master.get("DTEND"), "dt", None),
    )
    duration = getattr(master.get("DURATION"), "dt", None)
    if begin is None:
        return None
    if until is not None:
        duration = as_datetime(until, "UTC") - as_datetime(begin, "UTC")
    length = duration if isinstance(duration, timedelta) else None
    event.add("RECURRENCE-ID", rid)
    event.add("DTSTART", rid)
    if length is not None:
        event.add("DTEND", rid + length)
    event.add("STATUS", "CANCELLED")
    return str(event.to_ical().decode())


def forget(hrefs: dict[str, Any], name: str, pending: dict[str, str]) -> None:
    """A deleted resource: each occurrence it held becomes a pending cancellation."""
    entry = hrefs.pop(name, None)
    if entry:
        for occurrence in entry[1]:
            pending[occurrence] = cancelled_event(occurrence, str(entry[2] or ""))
