"""Booking through the `m365` connector: a booked VEVENT as a Graph event, free/busy from
`getSchedule`.

Graph reference (learn.microsoft.com/graph/api/...): `user-post-events` ("Create event": "when
an event is sent, the server sends invitations to all the attendees"; 201 with the event,
its `iCalUId` and its attendees with response `none`), the `event` resource (`iCalUId`: "a
unique identifier for an event across calendars", read-only) and `calendar-getschedule` (per
schedule `scheduleItems` with `status` free, tentative, busy, oof, workingElsewhere or unknown,
and `start`/`end` as dateTimeTimeZone in the zone asked for).

So Exchange Online invites: the event is created with the customer as a required attendee,
and Exchange sends the meeting request from the organizer's own mailbox, so the customer's
answer comes back to that mailbox and shows on the event in Outlook. Graph never takes a UID
from the caller: the booking's UID is the `iCalUId` Graph answers with, which its invitation
carries too and the calendar delta reports, so the meeting crmhub logs at booking and the
one the next sync reads are one (`ics:` + UID).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from connectors.base import ConnectorError
from connectors.booked import appointment_of
from connectors.m365_events import parse_time

BUSY = ("busy", "tentative", "oof", "workingelsewhere")


def _graph_time(moment: datetime) -> dict[str, str]:
    return {"dateTime": moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"}


def event_json(event: bytes) -> dict[str, Any]:
    """The Graph event for the one VEVENT of `event` (a VCALENDAR), its attendees required."""
    booked = appointment_of(event)
    doc: dict[str, Any] = {
        "subject": booked.subject,
        "body": {"contentType": "text", "content": booked.body},
        "start": _graph_time(booked.start),
        "end": _graph_time(booked.end),
        "showAs": "busy",
        "attendees": [
            {"emailAddress": {"address": address, "name": name}, "type": "required"}
            for address, name in booked.attendees
        ],
    }
    if booked.location:
        doc["location"] = {"displayName": booked.location}
    return doc


def created_uid(connector: str, doc: Any) -> str:
    """The iCalUId of the event Graph created; ConnectorError when its answer has none."""
    uid = str(doc.get("iCalUId") or "") if isinstance(doc, dict) else ""
    if not uid:
        raise ConnectorError(
            f"{connector}: Graph created the event and invited its attendees, but answered "
            f"without the event's iCalUId, so crmhub logs it with the next sync instead of now "
            f"({str(doc)[:120]})"
        )
    return uid


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
