"""CalDAV calendars (Radicale, Nextcloud, iCloud, Fastmail, SOGo ...) through the `caldav` library.

Discovery starts from `url`: a calendar's own URL is read alone; any other URL is followed to
the user's principal, its calendar home and the calendars in it, of which `calendars` (names or
URLs) selects some. Per calendar, a sync-collection REPORT (RFC 6578) with the token of the last
pass lists what changed and what was removed, with the changed resources' data; what a server
lists without its data is fetched by calendar-multiget (connectors/caldav_listing.py). The new
token goes into the cursor yielded with the last batch it covers.

A token the server no longer knows (403/409 DAV:valid-sync-token) restarts that calendar's
listing without a token; a server with no sync-collection at all is read by comparing each
href's ETag with the cursor's, and the cursor says which mode a calendar is in (`mode`), so
that a server that once refused is asked again a day later instead of never (the library's own
fallback hands out "fake-" tokens that lock it into full downloads for ever). What the cursor
keeps per resource: connectors/caldav_sync.py.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any, ClassVar
from urllib.parse import unquote, urlsplit

import icalendar
from caldav.collection import Calendar
from caldav.davclient import DAVClient
from caldav.elements import dav
from caldav.lib import error as dav_error

from connectors.base import (
    Booked,
    CalendarWriter,
    ConfigurationError,
    ConnectorError,
    MalformedItem,
    TransientError,
)
from connectors.booked import appointment_of
from connectors.caldav_listing import (
    TRANSIENT,
    answered,
    by_etags,
    list_changes,
    multiget,
    resource_name,
)
from connectors.caldav_sync import UNREADABLE, forget, pending_cancellations, read_resource
from connectors.calendar import translate_event
from hub.model import Interaction, RawItem

log = logging.getLogger(__name__)

MULTIGET = 200  # resources read per step, fetched by one calendar-multiget where not sent
CALENDAR_TYPE = "{urn:ietf:params:xml:ns:caldav}calendar"  # a resourcetype
WINDOW_SLACK = timedelta(days=7)  # series are expanded again when the window moved this far


class CalDavConnector(CalendarWriter):
    kind = "caldav"
    options: ClassVar[dict[str, str]] = {
        "url": "the server's CalDAV URL (https://dav.ourco.example/) or one calendar's URL",
        "username": "the login (often the mail address)",
        "calendars": "comma-separated calendar names or URLs to read (default: all of the "
        "user's calendars)",
        "book_calendar": "the calendar booked meetings go into (default: the first one read)",
        "ca_file": "PEM file of the CA that signed the server certificate (default: system CAs)",
        "timeout": "seconds to wait for any answer (default 60)",
        "retries": "retries after a dropped connection or a busy server (default 5)",
    }
    required: ClassVar[tuple[str, ...]] = ("url",)
    example: ClassVar[dict[str, str]] = {
        "url": "https://dav.ourco.example/",
        "username": "anna@ourco.example",
    }
    secret_options: ClassVar[dict[str, str]] = {"password": "the login's (app) password"}
    interval: ClassVar[float] = 120.0  # sync tokens (RFC 6578) make a pass without changes cheap

    @classmethod
    def validate_settings(cls, settings: Mapping[str, str]) -> None:
        super().validate_settings(settings)
        url = urlsplit(str(settings.get("url", "")))
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ConfigurationError(
                f"caldav: url={settings.get('url')!r} is not an http(s) URL "
                "(like https://dav.ourco.example/)"
            )
        if "calendars" in settings and not _split(settings["calendars"]):
            raise ConfigurationError("caldav: calendars is empty; leave it out for all calendars")
        cls.require_numbers(settings, "timeout")
        cls.require_numbers(settings, "retries", zero=True)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.url = str(self.settings["url"])
        parts = urlsplit(self.url)
        local = parts.hostname in ("127.0.0.1", "localhost", "::1")
        if parts.scheme == "http" and not local:
            log.warning("%s: %s is plain http: the password travels unencrypted", self.name, self)
        # The login goes with the first request (RFC 7617 Basic), over TLS or on this host:
        # asking first costs a round trip per sync, and Radicale waits a second (auth delay)
        # before each 401. Plain http elsewhere waits for the server's scheme, which may be
        # Digest; so does a server that answers the Basic login with 401 (`calendars`).
        secret = self.settings.get("username") and self.secrets.get("password")
        self._basic_first = bool(secret) and (parts.scheme == "https" or local)
        self._dav: DAVClient | None = None

    def __str__(self) -> str:
        return urlsplit(self.url)._replace(query="", fragment="").geturl()

    # -- the client and discovery --------------------------------------------------------------

    def client(self) -> DAVClient:
        if self._dav is None:
            self._dav = DAVClient(
                url=self.url,
                username=self.settings.get("username") or None,
                password=self.secrets.get("password") or None,
                timeout=int(float(self.settings.get("timeout") or 60)),
                ssl_verify_cert=self.settings.get("ca_file") or True,
                rate_limit_handle=False,  # a busy server is a TransientError: the base waits
                auth_type="basic" if self._basic_first else None,
            )
        return self._dav

    def calendars(self) -> list[Calendar]:
        """The selected calendars, in the order `calendars` names them (else the server's)."""
        try:
            return self._calendars()
        except dav_error.AuthorizationError as e:
            if e.status != 401 or not self._basic_first:
                raise
        log.info("%s: %s refused a Basic login; asking for its scheme", self.name, self)
        self._basic_first, self._dav = False, None
        return self._calendars()

    def _calendars(self) -> list[Calendar]:
        client = self.client()
        own = client.calendar(url=self.url)
        if _is_calendar(own):
            found = [own]
        else:
            found = answered(client.get_principal().get_calendars())
        wanted = _split(self.settings.get("calendars", ""))
        if not wanted:
            return found
        chosen: list[Calendar] = []
        for name in wanted:
            match = [c for c in found if name in _names(c)]
            if not match and urlsplit(name).scheme in ("http", "https"):
                other = client.calendar(url=name)
                match = [other] if _is_calendar(other) else []
            if not match:
                known = ", ".join(sorted(_names(c)[0] for c in found)) or "none"
                raise ConfigurationError(
                    f"{self.name}: no calendar {name!r} at {self}; calendars found: {known}"
                )
            chosen.extend(c for c in match if c not in chosen)
        return chosen

    # -- fetching ------------------------------------------------------------------------------

    async def _fetch(
        self, cursor: dict[str, Any]
    ) -> AsyncIterator[tuple[list[RawItem], dict[str, Any]]]:
        now = datetime.now(UTC)
        calendars = await self._io(self.calendars)
        before: dict[str, Any] = cursor.get("calendars") or {}
        states = {str(c.url): dict(before.get(str(c.url)) or {}) for c in calendars}
        pending: dict[str, str] = dict(cursor.get("pending") or {})
        window = str(cursor.get("window") or "")
        refresh = not window or now.date() - date.fromisoformat(window) >= WINDOW_SLACK
        window = now.date().isoformat() if refresh else window

        def mark() -> dict[str, Any]:
            return {"calendars": dict(states), "pending": dict(pending), "window": window}

        moved = states.keys() != before.keys()
        for calendar in calendars:
            key = str(calendar.url)
            state = states[key]
            listing = await self._io(list_changes, calendar, state, now.date())
            hrefs: dict[str, Any] = dict(state.get("hrefs") or {})
            for name in listing.deleted:
                forget(hrefs, name, pending)
            names = [n for n, tag in listing.changed.items() if (hrefs.get(n) or [None])[0] != tag]
            if refresh:
                names += [n for n, e in hrefs.items() if not e[2] and n not in listing.changed]
            batch: list[RawItem] = []
            for start in range(0, len(names), MULTIGET):
                chunk = names[start : start + MULTIGET]
                sent = {n: listing.data.pop(n) for n in chunk if n in listing.data}
                rest = [n for n in chunk if n not in sent]
                answers = await self._io(multiget, calendar, rest) if rest else {}
                answers.update((n, (text, listing.changed[n])) for n, text in sent.items())
                for name in chunk:
                    if name not in answers:  # removed between the listing and the fetch
                        forget(hrefs, name, pending)
                        continue
                    data, etag = answers[name]
                    resource = read_resource(
                        name, data, etag or listing.changed.get(name, ""),
                        hrefs.get(name), timezone=self.context.timezone,
                        window_days=self.context.calendar_window_days,
                        private_markers=self.private_markers, now=now,
                    )  # fmt: skip
                    hrefs[name] = resource.entry
                    pending.update(resource.cancelled)
                    batch.extend(resource.items)
                if len(batch) >= self.batch_size:
                    states[key] = {**state, "hrefs": dict(hrefs)}  # the old token: resumable
                    yield batch, mark()
                    batch = []
            changed = bool(batch or listing.deleted or names) or listing.state != _mode(state)
            states[key] = {**listing.state, "hrefs": hrefs}
            if changed:
                moved = True
                yield batch, mark()
        cancellations = pending_cancellations(pending, states.values())
        if pending or moved or refresh:
            pending.clear()
            yield cancellations, mark()

    async def _io(self, call: Any, *args: Any) -> Any:
        """A blocking caldav call in a worker thread, its transient failures made retryable."""
        try:
            return await asyncio.to_thread(call, *args)
        except dav_error.RateLimitError as e:
            raise TransientError(f"{self} is busy", e.retry_after_seconds) from e
        except dav_error.DAVError as e:
            if e.status in TRANSIENT:
                raise TransientError(f"{self} answered {e.status}") from e
            raise
        except (ConnectionError, TimeoutError) as e:
            raise TransientError(f"{self}: {e}") from e

    def translate(self, raw: RawItem) -> Interaction:
        if raw.external_id.startswith(UNREADABLE):
            name = raw.external_id.removeprefix(UNREADABLE)
            try:
                icalendar.Calendar.from_ical(raw.data)
            except ValueError as e:
                raise MalformedItem(f"calendar resource {name} is not iCalendar: {e}") from e
            raise MalformedItem(f"calendar resource {name} holds no readable event")
        return translate_event(self.context, raw.data, raw.external_id)

    # -- check, errors -------------------------------------------------------------------------

    async def _check(self) -> list[str]:
        calendars = await self._io(self.calendars)
        if not calendars:
            return [f"{self.name}: no calendars at {self}"]
        lines = []
        for calendar in calendars:
            listing = await self._io(by_etags, calendar, {}, "")
            name = _names(calendar)[0]
            lines.append(f"{self.name}: calendar {name!r}: {len(listing.changed)} events")
        return lines

    def readable(self, error: Exception) -> ConnectorError:
        if isinstance(error, ConnectorError):
            return error
        if isinstance(error, dav_error.AuthorizationError) and error.status == 401:
            return ConnectorError(
                f"{self.name}: {self} refused the login of "
                f"{self.settings.get('username') or '(no username)'}: check username and password"
            )
        if isinstance(error, dav_error.AuthorizationError):
            return ConnectorError(f"{self.name}: {self} denies access ({error.reason})")
        if isinstance(error, dav_error.NotFoundError):
            return ConnectorError(f"{self.name}: {error.url or self} not found: check the url")
        if isinstance(error, dav_error.DAVError):
            return ConnectorError(
                f"{self.name}: {type(error).__name__} at {error.url}: {error.reason}"
            )
        text = str(error)
        if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
            return ConnectorError(
                f"{self.name}: the TLS certificate of {self} is not trusted: set ca_file to the "
                "PEM file of the CA that signed it"
            )
        if isinstance(error, ConnectionError | TimeoutError | OSError):
            return ConnectorError(f"{self.name}: cannot reach {self}: {error}")
        return super().readable(error)

    # -- booking (CalendarWriter) --------------------------------------------------------------

    async def _book(self, event: bytes, organizer: str) -> Booked:
        calendar = str(await self._io(self._put_event, event))  # the PUT checks the event
        return Booked(calendar, appointment_of(event).uid, invited_by_server=False)

    def _put_event(self, event: bytes) -> str:
        """PUT the event as a new resource (never over another) into the booking calendar.

        Each ATTENDEE gets SCHEDULE-AGENT=CLIENT (RFC 6638 section 7.1): crmhub sends the
        invitation itself, so a server that schedules (Nextcloud, iCloud) must not send one too.
        """
        try:
            calendar_data = icalendar.Calendar.from_ical(event)
        except ValueError as e:
            raise ConnectorError(f"{self.name}: the meeting to book is not iCalendar: {e}") from e
        events = calendar_data.walk("VEVENT")
        if len(events) != 1 or not str(events[0].get("UID", "")).strip():
            raise ConnectorError(f"{self.name}: a booking holds exactly one VEVENT with a UID")
        calendar_data.pop("METHOD", None)  # a stored resource has none (RFC 4791 4.1)
        attendees = events[0].get("ATTENDEE")
        for attendee in attendees if isinstance(attendees, list) else [attendees]:
            if attendee is not None:
                attendee.params["SCHEDULE-AGENT"] = "CLIENT"
        target = self._booking_calendar()
        target.add_event(
            ical=calendar_data.to_ical().decode(), no_overwrite=True, increase_seqno=False
        )
        return _names(target)[0]

    def _booking_calendar(self) -> Calendar:
        calendars = self.calendars()
        wanted = str(self.settings.get("book_calendar") or "").strip()
        if not wanted:
            if not calendars:
                raise ConnectorError(f"{self.name}: no calendar to book into at {self}")
            return calendars[0]
        every = calendars + answered(self.client().get_principal().get_calendars())
        for calendar in every:
            if wanted in _names(calendar):
                return calendar
        raise ConfigurationError(f"{self.name}: book_calendar={wanted!r} is no calendar at {self}")

    async def _free_busy(
        self, organizer: str, start: datetime, end: datetime
    ) -> list[tuple[datetime, datetime]] | None:
        return await self._io(self._busy, start, end)  # type: ignore[no-any-return]

    def _busy(self, start: datetime, end: datetime) -> list[tuple[datetime, datetime]] | None:
        """Busy periods over the read calendars (a CALDAV:free-busy-query REPORT on each,
        RFC 4791 7.10), merged; None when the server answers no such REPORT."""
        periods: list[tuple[datetime, datetime]] = []
        for calendar in self.calendars():
            try:
                answer = answered(calendar.freebusy_request(start, end))
            except dav_error.DAVError as e:
                if e.status == 401 or e.status in TRANSIENT:
                    raise
                log.info("%s: %s answers no free-busy-query (%s)", self.name, calendar.url, e)
                return None
            periods.extend(_busy_periods(str(answer.data or "")))
        return _merged(periods)


def _split(text: str) -> list[str]:
    return [part.strip() for part in str(text).split(",") if part.strip()]


def _mode(state: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in state.items() if key != "hrefs"}


def _is_calendar(collection: Calendar) -> bool:
    try:
        types = collection.get_property(dav.ResourceType())
    except dav_error.NotFoundError:
        return False
    return "{urn:ietf:params:xml:ns:caldav}calendar" in (
        types if isinstance(types, list) else [types]
    )


def _names(calendar: Calendar) -> list[str]:
    """What a `calendars` entry may name a calendar by: its display name, the last part of its
    path, its URL or path."""
    url = str(calendar.url)
    path = urlsplit(url).path
    names = [str(calendar.get_display_name() or ""), resource_name(url), url, path, unquote(path)]
    return [n for n in names if n]


def _busy_periods(text: str) -> list[tuple[datetime, datetime]]:
    """The FREEBUSY periods (not FBTYPE=FREE) of a VFREEBUSY answer, in UTC."""
    if not text.strip():
        return []
    periods = []
    for component in icalendar.Calendar.from_ical(text).walk("VFREEBUSY"):
        values = component.get("FREEBUSY") or []
        for prop in values if isinstance(values, list) else [values]:
            if str(prop.params.get("FBTYPE", "BUSY")).upper() == "FREE":
                continue
            for begin, until in _period_values(prop):
                periods.append((begin.astimezone(UTC), until.astimezone(UTC)))
    return periods


def _period_values(prop: Any) -> list[tuple[datetime, datetime]]:
    """icalendar reads FREEBUSY as one period or a list (vDDDLists) of them."""
    found = []
    for value in getattr(prop, "dts", None) or [prop]:
        period = getattr(value, "dt", value)
        if isinstance(period, tuple) and len(period) == 2:
            begin, other = period
            found.append((begin, other if isinstance(other, datetime) else begin + other))
    return found


def _merged(periods: list[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    merged: list[tuple[datetime, datetime]] = []
    for begin, until in sorted(periods):
        if merged and begin <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], until))
        else:
            merged.append((begin, until))
    return merged
