"""exchangelib plumbing for booking through the `exchange` connector: create a calendar item,
read free/busy. Blocking calls; the connector runs them in a worker thread.

EWS reference (learn.microsoft.com, exchange/client-developer/web-service-reference/...):
`createitem-operation-calendar-item` (SendMeetingInvitations="SendToNone": Exchange files the
appointment with its attendees but mails nobody; crmhub sends its own iMIP request), `uid`
(settable on create since Exchange 2007 SP1, so the item keeps crmhub's UID), and
`getuseravailability-operation` with `freebusyviewoptions` (RequestedView FreeBusy: each busy
period as a CalendarEvent with StartTime, EndTime and BusyType).
"""

from __future__ import annotations

from datetime import UTC, datetime, time
from typing import Any

from exchangelib import (  # type: ignore[import-untyped]
    Attendee,
    Body,
    CalendarItem,
    EWSDateTime,
    EWSTimeZone,
    Mailbox,
)
from exchangelib.items import SEND_TO_NONE  # type: ignore[import-untyped]
from exchangelib.properties import (  # type: ignore[import-untyped]
    DaylightTime,
    FreeBusyViewOptions,
    MailboxData,
    StandardTime,
    TimeWindow,
    TimeZone,
)
from exchangelib.services import GetUserAvailability  # type: ignore[import-untyped]

from connectors.booked import Appointment

# A period the organizer cannot be booked in; Free and NoData (unknown) are not busy.
BUSY_TYPES = ("Busy", "Tentative", "OOF", "WorkingElsewhere")
# GetUserAvailability wants a time zone with both transitions; UTC has none, so both are the
# same (bias 0), and the answer's times come back in UTC.
_UTC_RULE = {"bias": 0, "time": time(2, 0), "occurrence": 5, "weekday": "Sunday"}
UTC_ZONE = TimeZone(
    bias=0,
    standard_time=StandardTime(iso_month=10, **_UTC_RULE),
    daylight_time=DaylightTime(iso_month=3, **_UTC_RULE),
)


def create_appointment(account: Any, appointment: Appointment) -> str:
    """CreateItem in the mailbox's calendar without invitations; returns the folder's name."""
    item = CalendarItem(
        account=account,
        folder=account.calendar,
        uid=appointment.uid,
        subject=appointment.subject,
        body=Body(appointment.body),
        location=appointment.location or None,
        start=EWSDateTime.from_datetime(appointment.start),
        end=EWSDateTime.from_datetime(appointment.end),
        required_attendees=[
            Attendee(mailbox=Mailbox(email_address=address, name=name or None))
            for address, name in appointment.attendees
        ],
    )
    item.save(send_meeting_invitations=SEND_TO_NONE)
    return str(account.calendar.name or "Calendar")


def busy_periods(
    account: Any, mailbox: str, start: datetime, end: datetime
) -> list[tuple[datetime, datetime]]:
    """GetUserAvailability (FreeBusy view) of `mailbox` over [start, end), in UTC."""
    utc = EWSTimeZone("UTC")
    views = GetUserAvailability(account.protocol).call(
        tzinfo=utc,
        mailbox_data=[
            MailboxData(email=mailbox, attendee_type="Organizer", exclude_conflicts=False)
        ],
        timezone=UTC_ZONE,
        free_busy_view_options=FreeBusyViewOptions(
            time_window=TimeWindow(
                start=EWSDateTime.from_datetime(start.astimezone(UTC)),
                end=EWSDateTime.from_datetime(end.astimezone(UTC)),
            ),
            merged_free_busy_interval=30,
            requested_view="FreeBusy",
        ),
    )
    periods = []
    for view in views:
        if isinstance(view, Exception):
            raise view
        for event in view.calendar_events or []:
            if event.busy_type in BUSY_TYPES:
                periods.append((_utc(event.start), _utc(event.end)))
    return periods


def _utc(value: Any) -> datetime:
    """An EWSDateTime as a plain datetime in UTC (exchangelib's zone class is its own)."""
    if value.tzinfo is None:
        return datetime(*value.timetuple()[:6]).replace(tzinfo=UTC)
    return datetime.fromtimestamp(value.timestamp(), UTC)
