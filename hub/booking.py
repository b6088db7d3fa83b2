"""Booking a follow-up meeting with a customer: the user's calendar, the invitation, the log.

The calendar counterpart of `hub.sending`. A user books in their own calendar only, through a
connector of theirs whose class is a `connectors.base.CalendarWriter` (caldav, exchange, m365),
exactly as they send only through a mailbox of theirs (`hub.policy.may_send_through`). Then:

1. the slot is checked against the user's free/busy when the calendar offers it (a collision is
   refused unless the request confirms it);
2. the event (hub.invitation) is written into the user's calendar; a refusal stops here. The
   calendar says under which UID it keeps the event (`connectors.base.Booked`): crmhub's own,
   or, for Microsoft 365, the iCalUId Graph gave it;
3. the meeting is logged at once through `hub.pipeline.ingest_pushed` under the calendar
   connector, as `RawItem(UID, VEVENT, "text/calendar")` with that UID (every CalendarWriter
   kind translates that with the shared calendar translator), so it is on the timeline as
   upcoming now, and the next sync of that calendar finds the same `ics:UID` and adds nothing;
4. when the calendar's server invited the customer itself (Exchange Online does, from the
   user's own mailbox), that is the invitation. Otherwise the customer gets crmhub's iMIP
   REQUEST through the user's mail sender (`MailSender.send`, the same connector replies go
   through). The invitation is not logged as a mail: the meeting is the item. When sending
   fails, the meeting stays booked and logged, and the outcome says that the customer got
   nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from connectors.base import CalendarWriter, ConfigurationError, ConnectorError, MailSender
from connectors.registry import connector_class
from hub.bootstrap import Hub
from hub.invitation import Booking, calendar_of, event_of, invitation, new_uid
from hub.model import RawItem
from hub.pipeline import ingest_pushed
from hub.policy import Viewer, may_send_through
from hub.sending import NoOwnMailConnector, own_mail_connectors, pick_own
from matching.identities import normalize_email
from storage.connectors_state import connector_row, kinds_and_settings
from storage.tables import ConnectorRow, InteractionRow

log = logging.getLogger(__name__)
Busy = list[tuple[datetime, datetime]]


class BookingError(ValueError):
    """The request cannot be booked as it stands; the message names the field to change."""


class NoOwnCalendar(ConfigurationError):
    """The user owns no calendar connector: every role books in its own calendar only."""


class SlotTaken(Exception):
    """The slot collides with the user's busy times; booking it anyway needs `confirm`."""

    def __init__(self, message: str, busy: Busy) -> None:
        super().__init__(message)
        self.busy = busy


@dataclass
class BookingOutcome:
    """`invitation_error` is set, and `invited` empty, when the meeting is booked and logged
    but the customer got no invitation. `mail_connector` is the calendar connector when the
    calendar's server sent the invitation (m365)."""

    interaction_id: int | None
    uid: str
    start: datetime
    end: datetime
    calendar_connector: str
    calendar: str
    mail_connector: str
    invited: list[str] = field(default_factory=list)
    invitation_error: str = ""

    def as_json(self) -> dict[str, Any]:
        return {
            "interaction_id": self.interaction_id,
            "uid": self.uid,
            "start": self.start.astimezone(UTC).isoformat(),
            "end": self.end.astimezone(UTC).isoformat(),
            "calendar_connector": self.calendar_connector,
            "calendar": self.calendar,
            "mail_connector": self.mail_connector,
            "invited": self.invited,
            "invitation_error": self.invitation_error,
        }


def calendars_of(cls: type[CalendarWriter], settings: dict[str, str]) -> tuple[str, ...]:
    """The mailboxes whose calendars a connector writes: the mailboxes it sends as for a kind
    that reads many (exchange, m365), else its owner's (caldav)."""
    if issubclass(cls, MailSender):
        return cls.senders(settings)
    owner = cls.mailbox_owner(settings)
    return (owner,) if owner else ()


def _writer_class(kind: str) -> type[CalendarWriter] | None:
    try:
        cls = connector_class(kind)
    except ConfigurationError:
        return None
    return cls if issubclass(cls, CalendarWriter) else None


async def own_calendar_connectors(hub: Hub, viewer: Viewer) -> list[str]:
    """The connectors `viewer` may book through: a CalendarWriter kind, their own calendar."""
    async with hub.reads() as session:
        rows = await kinds_and_settings(session)
    return sorted(
        name
        for name, kind, settings in rows
        if (cls := _writer_class(kind)) is not None
        and any(may_send_through(viewer, mailbox) for mailbox in calendars_of(cls, settings))
    )


async def calendar_connector_for(hub: Hub, viewer: Viewer, name: str | None) -> str:
    """The named calendar connector, or the only one `viewer` owns. Somebody else's is
    answered like one that does not exist (as `hub.sending.sending_connector_for`)."""
    return pick_own(
        await own_calendar_connectors(hub, viewer),
        name,
        BookingError(f"calendar: you have no calendar connector named {(name or '')[:100]!r}"),
        NoOwnCalendar(
            "you have no calendar of your own to book in; IT adds one with `crmhub connectors "
            f"add caldav NAME --set url=... --set username={viewer.email} --secret "
            "password=ENV_VAR` (or an exchange or m365 connector that reads your mailbox)"
        ),
        lambda names: BookingError(f"calendar: name one of {names}"),
    )


async def _connector(hub: Hub, name: str) -> tuple[ConnectorRow, Any]:
    async with hub.sessions() as session:
        row = await connector_row(session, name)
    if row is None:
        raise ConfigurationError(f"no connector named {name!r}")
    try:
        return row, hub.connector(row)
    except ValueError as e:  # secrets sealed under another key
        raise ConfigurationError(f"connector {name!r} cannot be opened: {e}") from e


def _organizer(writer: CalendarWriter, settings: dict[str, str], viewer: Viewer) -> str:
    wanted = normalize_email(viewer.email)
    for mailbox in calendars_of(type(writer), settings):
        if normalize_email(mailbox) == wanted:
            return mailbox
    return viewer.email


async def _mail_connector_for(hub: Hub, viewer: Viewer, name: str | None, calendar: str) -> str:
    """Named, else the only one, else the calendar connector when it also sends (exchange,
    m365): checked before anything is booked, so a booking never lacks a way to invite. A
    calendar whose server invites (m365) is a mail connector of the same user (`senders`),
    so it never needs another: this finds it, and the booking sends nothing through it."""
    mine = await own_mail_connectors(hub, viewer)
    if name:
        if name in mine:
            return name
        raise BookingError(f"mail_connector: you have no mail connector named {name[:100]!r}")
    if len(mine) == 1:
        return mine[0]
    if calendar in mine:
        return calendar
    if not mine:
        raise NoOwnMailConnector(
            "you have no mail connector of your own to send the invitation through; IT adds "
            f"one with `crmhub connectors add smtp NAME --set owner={viewer.email} ...`"
        )
    raise BookingError(f"mail_connector: name one of {', '.join(mine)}")


async def busy_times(
    hub: Hub, viewer: Viewer, start: datetime, end: datetime, calendar: str | None = None
) -> tuple[str, Busy | None]:
    """The user's calendar connector and their busy periods in [start, end), None when the
    calendar offers no free/busy."""
    name = await calendar_connector_for(hub, viewer, calendar)
    row, writer = await _connector(hub, name)
    busy = await writer.free_busy(_organizer(writer, row.settings, viewer), start, end)
    return name, None if busy is None else sorted(busy)


def collisions(busy: Busy, start: datetime, end: datetime) -> Busy:
    return [(s, e) for s, e in busy if s < end and e > start]


async def book_meeting(
    hub: Hub,
    viewer: Viewer,
    booking: Booking,
    zone: ZoneInfo,
    *,
    confirm: bool = False,
    calendar: str | None = None,
    mail: str | None = None,
) -> BookingOutcome:
    """Book `booking` (its organizer is set here) in the user's own calendar, log it, invite.

    Raises BookingError for a bad request, NoOwnCalendar / NoOwnMailConnector when the user
    lacks one, SlotTaken for a collision not confirmed, ConfigurationError when a connector is
    not set up right, ConnectorError when the calendar refused (then nothing happened).
    """
    now = datetime.now(UTC)
    if booking.start <= now:
        raise BookingError("start: a follow-up meeting must start in the future")
    name = await calendar_connector_for(hub, viewer, calendar)
    mail_name = await _mail_connector_for(hub, viewer, mail, name)
    row, writer = await _connector(hub, name)
    organizer = _organizer(writer, row.settings, viewer)
    booking = replace(booking, organizer=organizer)
    if not confirm:
        busy = await writer.free_busy(organizer, booking.start, booking.end)
        taken = collisions(busy or [], booking.start, booking.end)
        if taken:
            shown = ", ".join(
                f"{s.astimezone(zone):%Y-%m-%d %H:%M}-{e.astimezone(zone):%H:%M}" for s, e in taken
            )
            raise SlotTaken(
                f"start: your calendar is busy then ({shown}); choose another time, or book "
                "anyway (confirm)",
                taken,
            )
    booked = await writer.book(calendar_of(booking, new_uid(organizer), now), organizer)
    uid = booked.uid
    log.info("booked %s in %s (%s) for %s", uid, name, booked.calendar, organizer)
    raw = RawItem(uid, event_of(booking, uid, now), "text/calendar", owner=organizer)
    await ingest_pushed(hub, name, [raw])
    async with hub.sessions() as session:
        logged = await session.execute(
            select(InteractionRow.id).where(InteractionRow.dedupe_key == f"ics:{uid}")
        )
        interaction_id = logged.scalar_one_or_none()
    by_server = booked.invited_by_server  # then the calendar's server sent the invitation
    outcome = BookingOutcome(
        interaction_id,
        uid,
        booking.start,
        booking.end,
        name,
        booked.calendar,
        name if by_server else mail_name,
    )
    if by_server:
        outcome.invited = [booking.attendee]
    else:
        await _invite(hub, outcome, invitation(booking, uid, now, zone), booking.attendee)
    return outcome


async def _invite(hub: Hub, outcome: BookingOutcome, message: Any, attendee: str) -> None:
    """Send the invitation; a failure is reported in the outcome, never raised: the meeting
    is in the calendar and logged either way."""
    booked = f"The meeting is in your calendar ({outcome.calendar}), but"
    try:
        _, sender = await _connector(hub, outcome.mail_connector)
        if not isinstance(sender, MailSender):
            raise ConfigurationError(f"connector {outcome.mail_connector!r} cannot send mail")
        result = await sender.send(message)
    except (ConnectorError, ValueError) as e:
        outcome.invitation_error = (
            f"{booked} the invitation could not be sent ({e}): {attendee} got nothing. "
            "Send it again or tell them yourself."
        )
        log.warning("booked %s, but the invitation failed: %s", outcome.uid, e)
        return
    refused = {normalize_email(a): why for a, why in result.refused.items()}
    if normalize_email(attendee) in refused:
        outcome.invitation_error = (
            f"{booked} the mail server refused {attendee} "
            f"({refused[normalize_email(attendee)]}): they got no invitation."
        )
        return
    outcome.invited = [attendee]
