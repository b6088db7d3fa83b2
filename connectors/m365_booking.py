"""Booking through the `m365` connector: a booked VEVENT as a Graph event, free/busy from
`getSchedule`.

Graph reference (learn.microsoft.com/graph/api/...): `user-post-events` ("Create event": "when
an event is sent, the server sends invitations to all the attendees", and no request option
turns that off) and `calendar-getschedule` (per schedule `scheduleItems` with `status` free,
tentative, busy, oof, workingElsewhere or unknown, and `start`/`end` as dateTimeTimeZone in
the zone asked for).

So the event goes into the organizer's calendar *without* attendees, and crmhub's own iMIP
request is the only invitation (`CalendarWriter`: the server must not send one too); the
attendee is named in the event's text, and the meeting crmhub logs at booking keeps them as a
participant. Graph gives the event an iCalUId of its own and never takes one; crmhub's UID
rides in `transactionId` (set on create, returned with the event), and the calendar fetcher
uses it as the meeting's UID, so the next sync finds the booked meeting under `ics:` + UID.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from connectors.base import ConnectorError
from connectors.booked import appointment_of
from connectors.m365_events import parse_time

BOOKED_PREFIX = "crmhub-"  # the UIDs crmhub gives booked meetings (hub.invitation.UID_PREFIX)
BUSY = ("busy", "tentative", "oof", "workingelsewhere")


def _graph_time(moment: datetime) -> dict[str, str]:
    return {"dateTime": moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"}


def event_json(event: bytes) -> dict[str, Any]:
    """The Graph event for the one VEVENT of `event` (a VCALENDAR), without attendees."""
    booked = appointment_of(event)
    invited = ", ".join(f"{name} <{address}>".strip() for address, name in booked.attendees)
    text = f"{booked.body}\n\nInvited by crmhub: {invited}".strip() if invited else booked.body
    doc: dict[str, Any] = {
        "subject": booked.subject,
        "body": {"contentType": "text", "content": text},
        "start": _graph_time(booked.start),
        "end": _graph_time(booked.end),
        "showAs": "busy",
        "transactionId": booked.uid,
    }
    if booked.location:
        doc["location"] = {"displayName": booked.location}
    return doc


def booked_uid(event: dict[str, Any]) -> str:
    """crmhub's UID of an event it booked (its transactionId), or ""."""
    value = str(event.get("transactionId") or "")
    return value if value.startswith(BOOKED_PREFIX) else ""


def schedule_request(mailbox: str, start: datetime, end: datetime) -> dict[str, Any]:
    return {
        "schedules": [mailbox],
        "startTime": _graph_time(start),
        "endTime": _graph_time(end),
        "availabilityViewInterval": 30,
    }


def busy_of(doc: Any, mailbox: str) -> list[tuple[datetime, datetime]]:
    """The busy periods of `mailbox` in a getSchedule answer; ConnectorError when Graph
    answered for the schedule with an error instead."""
    schedules = doc.get("value") if isinstance(doc, dict) else None
    if not isinstance(schedules, list):
        raise ConnectorError(f"getSchedule answered without a value list: {str(doc)[:120]}")
    periods: list[tuple[datetime, datetime]] = []
    for schedule in schedules:
        if str(schedule.get("scheduleId", "")).lower() != mailbox.lower():
            continue
        if error := schedule.get("error"):
            code, text = error.get("responseCode", ""), error.get("message", "")
            raise ConnectorError(f"free/busy of {mailbox}: {code} {text}")
        for item in schedule.get("scheduleItems") or []:
            if str(item.get("status", "")).lower() in BUSY:
                periods.append((parse_time(item["start"]), parse_time(item["end"])))
    return periods
