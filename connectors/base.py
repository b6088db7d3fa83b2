"""The Connector base class: the part every source shares.

Writing a connector (a guide for plugin authors)
------------------------------------------------
Subclass `Connector` (or `FileConnector` for a local file or folder), set `kind`, list the
settings you accept in `options` (name -> help text; `required` names the mandatory ones), the
secrets you read from `self.secrets` in `secret_options` (name -> help text: stored encrypted,
never shown back; the admin pages and the API take only these), and implement two hooks:

* `_fetch(cursor)`: an async generator of `(raw_items, next_cursor)` pairs, each pair a batch of
  at most `batch_size` items that come after `cursor`. `next_cursor` must be a JSON-able dict
  that, given back to `_fetch`, resumes right after that batch. Re-running from an old cursor
  must be harmless: storage deduplicates by `(connector, external_id)`.
* `translate(raw)`: one raw item -> `Interaction`. Raise `MalformedItem` (or anything else) for
  an item that cannot be read; the base class quarantines it with the reason, and the sync goes
  on. Raise `PrivateItem` for an item marked private (the shared mail translator does so for
  `Sensitivity: Private`): it is skipped, counted, and stored nowhere, not even in quarantine.

Items the source itself marks private (an IMAP keyword, a folder named by the `private_marker`
setting: see `private_folder`) should not even be downloaded: `_fetch` yields them as
`RawItem(external_id, b"", private=reason)`, which `translate_all` skips untranslated.

Everything else (batching, translation in a worker thread, error wrapping) is done here, so that
a connector holds only what is specific to its source. Connectors never touch storage or
matching.

Every kind also accepts the hub-level settings in `HUB_OPTIONS` (`create_contacts`, `owner`):
they tell the pipeline what to do with what the connector fetched, so a connector author neither
lists nor reads them. Override `mailbox_owner` when the login is not the mailbox's owner.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
from collections.abc import AsyncGenerator, AsyncIterator, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from typing import Any, BinaryIO, ClassVar, final

from hub.model import Interaction, Quarantined, RawItem, Skipped, Translated

log = logging.getLogger(__name__)


class ConnectorError(Exception):
    """The connector cannot go on; the message tells IT what to fix and holds no secret."""


class ConfigurationError(ConnectorError):
    """A setting is missing or wrong."""


class MalformedItem(ValueError):
    """One item cannot be translated; it is quarantined with this reason."""


class PrivateItem(Exception):
    """One item is marked private: it is skipped with this reason, and stored nowhere."""


class TransientError(Exception):
    """A failure that may pass by itself (a dropped connection, a busy or throttling server).

    Raised from `_fetch`, it makes the base class fetch again from the last cursor; the delay
    is `retry_after` seconds when the source said how long to wait (EWS BackOffMilliseconds,
    HTTP Retry-After), else an exponential back-off.
    """

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


DEFAULT_RETRIES = 5
DEFAULT_TIMEOUT = 60.0
MAX_BACKOFF = 30.0
MAX_RETRY_AFTER = 300.0  # a source asking for longer is waited for by the next scheduled sync


def backoff(attempt: int, retry_after: float | None = None) -> float:
    """Seconds to wait before retry number `attempt` (1, 2, ...): what the source asked for,
    capped, or 0.2 s doubled per attempt up to 30 s, with jitter so that many connectors
    throttled together do not come back together."""
    if retry_after is not None:
        return min(MAX_RETRY_AFTER, max(0.0, retry_after))
    return min(MAX_BACKOFF, 0.2 * 2**attempt) * random.uniform(0.5, 1.0)


CREATE_CONTACTS = ("off", "written-to", "account-domain")
VISIBILITIES = ("full", "subject", "metadata")
MIN_INTERVAL = 10  # seconds: a shorter per-connector interval is a typo, not a plan
SWITCH = {"on": True, "true": True, "yes": True, "off": False, "false": False, "no": False}
HUB_OPTIONS: dict[str, str] = {
    "create_contacts": "new contacts from unknown addresses at a known account's domain: off "
    "(default), written-to (recipients of mail the owner sent), account-domain (every party)",
    "owner": "the mailbox owner's mail address (default: username, when it is a mail address)",
    "visibility": "what users other than the owner see of this connector's items: full "
    "(default), subject (no body, snippet or attachment) or metadata (no subject either)",
    "private_marker": "an IMAP keyword or folder name (comma-separated for several) whose mail "
    "is never stored, like mail marked Sensitivity: Private",
    "audit_reads": "on: every read of this connector's items by a user other than the owner "
    "goes into the audit log (default off)",
    "interval": f"seconds between scheduled syncs, at least {MIN_INTERVAL} (default: the "
    "sync_interval setting when set, else the kind's own: 120 for m365 and caldav, 300 for "
    "the others; imap also watches with IDLE)",
}


@dataclass(frozen=True)
class ConnectorContext:
    """The hub-wide settings that translation needs, passed in explicitly."""

    region: str | None = "DE"
    timezone: str = "UTC"
    internal_domains: tuple[str, ...] = ()
    calendar_window_days: int = 365
    max_header_bytes: int = 64_000
    max_message_bytes: int = 25_000_000
    # The HTML body of mail. Storing needs none (the page reads it from the raw message), so
    # the translation workers turn it off: decoding it was a tenth of translating a mail.
    keep_html: bool = True
    extra: Mapping[str, Any] = field(default_factory=dict)


class Connector:
    kind: ClassVar[str] = ""
    options: ClassVar[dict[str, str]] = {}
    required: ClassVar[tuple[str, ...]] = ()
    secret_options: ClassVar[dict[str, str]] = {}
    # A valid minimal configuration where `required` alone is not one (settings needed in
    # some combination, values with a shape): the settings tests start from it.
    example: ClassVar[dict[str, str]] = {}
    batch_size: ClassVar[int] = 500
    watches: ClassVar[bool] = False
    # Seconds between scheduled syncs (hub.jobs.interval_of): a source that answers "what
    # changed" cheaply (delta or sync tokens) may set less; a watching one keeps this as its sweep.
    interval: ClassVar[float] = 300.0

    def __init__(
        self,
        name: str,
        settings: Mapping[str, str],
        secrets: Mapping[str, str] | None = None,
        context: ConnectorContext | None = None,
    ) -> None:
        self.name = name
        self.settings = dict(settings)
        self.secrets = dict(secrets or {})
        self.context = context or ConnectorContext()
        self.validate_settings(self.settings)
        self.private_markers = private_markers(self.settings)

    @classmethod
    def validate_settings(cls, settings: Mapping[str, str]) -> None:
        accepted = {**HUB_OPTIONS, **cls.options}
        unknown = sorted(set(settings) - set(accepted))
        if unknown:
            known = ", ".join(sorted(accepted))
            raise ConfigurationError(
                f"{cls.kind}: unknown setting {', '.join(unknown)} (known: {known})"
            )
        missing = [key for key in cls.required if not settings.get(key)]
        if missing:
            raise ConfigurationError(
                f"{cls.kind}: missing setting {', '.join(missing)} "
                f"(--set {missing[0]}=...: {accepted[missing[0]]})"
            )
        policy = settings.get("create_contacts", "off")
        if policy not in CREATE_CONTACTS:
            raise ConfigurationError(
                f"{cls.kind}: create_contacts={policy!r}; use {', '.join(CREATE_CONTACTS[:-1])} "
                f"or {CREATE_CONTACTS[-1]}"
            )
        visibility = settings.get("visibility", "full")
        if visibility not in VISIBILITIES:
            raise ConfigurationError(
                f"{cls.kind}: visibility={visibility!r}; use full, subject or metadata"
            )
        if str(settings.get("audit_reads", "off")).lower() not in SWITCH:
            raise ConfigurationError(
                f"{cls.kind}: audit_reads={settings['audit_reads']!r}; use on or off"
            )
        interval = settings.get("interval")
        if interval is not None and not (
            str(interval).isdigit() and int(str(interval)) >= MIN_INTERVAL
        ):
            raise ConfigurationError(
                f"{cls.kind}: interval={interval!r}; use whole seconds, at least {MIN_INTERVAL}"
            )
        owner = settings.get("owner")
        if owner is not None and not _looks_like_address(owner):
            raise ConfigurationError(
                f"{cls.kind}: owner={owner!r} is not a mail address (like anna@ourco.example)"
            )

    @classmethod
    def mailbox_owner(cls, settings: Mapping[str, str]) -> str:
        """Whose mailbox this is, for `create_contacts=written-to`; "" when unknown.

        The `owner` setting, else a `username` that is a mail address: a mailbox login usually
        is its owner's address. A kind that logs in as a service account must override this.
        """
        if owner := (settings.get("owner") or "").strip():
            return owner
        username = (settings.get("username") or "").strip()
        return username if _looks_like_address(username) else ""

    @classmethod
    def require_numbers(cls, settings: Mapping[str, str], *keys: str, zero: bool = False) -> None:
        """Each of `keys` that is set must be a whole number above 0 (or 0 with `zero`)."""
        for key in keys:
            value = settings.get(key)
            if value is None:
                continue
            text = str(value)
            if not text.isdigit() or (int(text) == 0 and not zero):
                raise ConfigurationError(f"{cls.kind}: {key}={value!r} is not a positive number")

    def retry_limit(self) -> int:
        """How many times a transient failure is retried before the sync fails (`retries`)."""
        return int(self.settings.get("retries") or DEFAULT_RETRIES)

    def stall_seconds(self) -> float:
        """How long one batch may take before the source counts as hung: ten times the
        per-answer `timeout`, so that a connector's own timeouts fire first."""
        return 10 * float(self.settings.get("timeout") or DEFAULT_TIMEOUT)

    @final
    async def raw_batches(
        self, cursor: Mapping[str, Any]
    ) -> AsyncIterator[tuple[list[RawItem], dict[str, Any]]]:
        """Fetched, untranslated batches after `cursor`, with source errors made readable.

        A `TransientError` (a dropped connection, a busy or throttling server, a batch that
        stalls) restarts `_fetch` from the last cursor handed out, after the delay the source
        asked for or an exponential back-off with jitter, at most `retry_limit()` times in a
        row. Restarting from a cursor is always safe (re-running is), so a connector never
        writes its own retry loop. The pipeline translates the batches where it likes (a
        process pool for big batches), so that fetching the next batch overlaps with
        translating and storing this one.
        """
        current = dict(cursor)
        attempt = 0
        while True:
            fetcher = self._fetch(dict(current))
            try:
                while True:
                    try:
                        async with asyncio.timeout(self.stall_seconds()):
                            raws, next_cursor = await anext(fetcher)
                    except StopAsyncIteration:
                        return
                    except TimeoutError as e:
                        raise TransientError(f"no answer within {self.stall_seconds():g} s") from e
                    attempt = 0
                    current = next_cursor
                    yield raws, next_cursor
            except TransientError as e:
                attempt += 1
                limit = self.retry_limit()
                if attempt > limit:
                    raise ConnectorError(f"{self.name}: {e}; gave up after {limit} retries") from e
                delay = backoff(attempt, e.retry_after)
                log.warning("%s: %s; retrying in %.1f s", self.name, e, delay)
                await asyncio.sleep(delay)
            except ConnectorError:
                raise
            except Exception as e:
                raise self.readable(e) from e
            finally:
                if close := getattr(fetcher, "aclose", None):
                    await close()

    def readable(self, error: Exception) -> ConnectorError:
        """A source's exception as a ConnectorError that tells IT what happened.

        Override to add hints for a library's own errors; call super() for the rest. Whatever
        is not known is still wrapped: an exception must never reach a user as a traceback.
        """
        if isinstance(error, ConnectorError):
            return error
        if isinstance(error, OSError) and error.filename:
            return ConnectorError(f"{self.name}: {error.strerror or error} ({error.filename})")
        if isinstance(error, OSError | TimeoutError | TransientError):
            return ConnectorError(f"{self.name}: {error or type(error).__name__}")
        return ConnectorError(f"{self.name}: {type(error).__name__}: {error}")

    @final
    async def check(self) -> list[str]:
        """Lines describing what the source holds; raises ConnectorError when unusable."""
        try:
            return await self._check()
        except ConnectorError:
            raise
        except Exception as e:
            raise self.readable(e) from e

    async def _check(self) -> list[str]:
        """By default: fetch everything once and count it. Sources override this with a
        cheaper look (a login and a folder listing)."""
        fetched = 0
        async for raws, _ in self.raw_batches({}):
            fetched += len(raws)
        return [f"{self.name}: readable, {fetched} items"]

    async def watch(self) -> AsyncGenerator[str, None]:
        """For sources that can push (IMAP IDLE): yields a reason whenever a sync is due.

        Runs until cancelled; set `watches = True` when implementing it. Connection trouble is
        handled inside (reconnect, fall back to polling), never raised.
        """
        raise NotImplementedError
        yield ""  # pragma: no cover

    def private_folder(self, levels: Iterable[str]) -> str:
        """Why mail in a folder is never stored, or "" when it may be: the folder, or one it
        lies in (`levels`, outermost first), is named by `private_marker` (any case), so that
        what a user files under Private stays private however deep they file it."""
        for level in levels:
            if level.strip().casefold() in self.private_markers:
                return f"in the private folder {level!r} (private_marker)"
        return ""

    @final
    def translate_all(self, raws: list[RawItem]) -> list[Translated | Quarantined | Skipped]:
        """Translate a batch; an item that fails is quarantined with the reason, an item
        marked private (by the fetcher, or by `translate` raising PrivateItem) is skipped."""
        out: list[Translated | Quarantined | Skipped] = []
        for raw in raws:
            if raw.private:
                out.append(Skipped(raw, raw.private))
                continue
            try:
                out.append(Translated(raw, self.translate(raw)))
            except PrivateItem as e:
                out.append(Skipped(raw, str(e)))
            except MalformedItem as e:
                out.append(Quarantined(raw, str(e)))
            except Exception as e:  # noqa: BLE001 - one bad item must never stop a sync
                out.append(Quarantined(raw, f"cannot be read: {type(e).__name__}: {e}"))
        return out

    async def _fetch(
        self, cursor: dict[str, Any]
    ) -> AsyncIterator[tuple[list[RawItem], dict[str, Any]]]:
        raise NotImplementedError
        yield  # pragma: no cover

    def translate(self, raw: RawItem) -> Interaction:
        raise NotImplementedError


def private_markers(settings: Mapping[str, str]) -> frozenset[str]:
    """The `private_marker` setting as case-folded names (IMAP keywords and folder names)."""
    markers = str(settings.get("private_marker") or "").split(",")
    return frozenset(m.strip().casefold() for m in markers if m.strip())


def _looks_like_address(value: str) -> bool:
    """A cheap shape check (local@dotted.domain); matching normalises the address properly."""
    text = value.strip()
    local, _, domain = text.rpartition("@")
    return bool(local) and "." in domain.strip(".") and not any(c.isspace() for c in text)


_DONE = object()
HEAD_BYTES = 4096  # how much of a file's start `file_head` fingerprints


def file_head(handle: BinaryIO, length: int) -> str:
    """Fingerprint of a file's first `length` bytes (at most HEAD_BYTES).

    Compared over the part already read, a changed head means the file was replaced or
    rewritten rather than appended to, and must be read again from the start.
    """
    handle.seek(0)
    return hashlib.sha256(handle.read(min(length, HEAD_BYTES))).hexdigest()


def resume_offset(handle: BinaryIO, size: int, cursor: Mapping[str, Any]) -> int:
    """Where to go on reading a file that only grows (an mbox, a CDR file): the cursor's
    `offset` if the file only grew since, else 0 (it was replaced, truncated or rewritten)."""
    offset = int(cursor.get("offset", 0))
    head_len = int(cursor.get("head_len", offset))
    if offset > size or head_len > size or cursor.get("head") != file_head(handle, head_len):
        return 0
    return offset


def file_mark(handle: BinaryIO, size: int) -> dict[str, Any]:
    """What a cursor over a growing file keeps next to its `offset`, so that `resume_offset`
    can tell a file that grew from one that was replaced."""
    return {"head": file_head(handle, size), "head_len": min(size, HEAD_BYTES)}


class FileConnector(Connector):
    """A connector over local files: reading happens in a worker thread, batch by batch.

    For a file that only grows, keep `{"offset": ..., **file_mark(handle, size)}` in the
    cursor and start reading at `resume_offset(handle, size, cursor)`.
    """

    options: ClassVar[dict[str, str]] = {"path": "the file or folder to read"}
    required: ClassVar[tuple[str, ...]] = ("path",)

    async def _fetch(
        self, cursor: dict[str, Any]
    ) -> AsyncIterator[tuple[list[RawItem], dict[str, Any]]]:
        reader = self._read(cursor)
        while True:
            step = await asyncio.to_thread(next, reader, _DONE)
            if step is _DONE:
                return
            yield step  # type: ignore[misc]

    def _read(self, cursor: dict[str, Any]) -> Iterator[tuple[list[RawItem], dict[str, Any]]]:
        raise NotImplementedError


@dataclass(frozen=True)
class SendResult:
    accepted: list[str]
    refused: dict[str, str] = field(default_factory=dict)  # address -> "550 5.1.1 no such user"
    sent_folder: str = ""  # where the sender itself filed the copy ("" when it did not)


class MailSender(Connector):
    """The port the hub sends mail through (smtp, exchange, m365): one mailbox's way out.

    A kind whose server files the sent copy itself (Exchange's SaveOnly/SendAndSaveCopy,
    Graph's saveToSentItems) sets `sent_folder` in its result; for one that cannot (SMTP), the
    hub files the copy through the `imap` connector its settings name.
    """

    @classmethod
    def senders(cls, settings: Mapping[str, str]) -> tuple[str, ...]:
        """The mailboxes one may send as through this connector: its owner's by default. A
        kind that reads many mailboxes (impersonation, a tenant) lists them, and its `_send`
        sends as the one the message's From names; the hub lets each user send as their own."""
        owner = cls.mailbox_owner(settings)
        return (owner,) if owner else ()

    @final
    async def send(self, message: EmailMessage) -> SendResult:
        """Send; raises ConnectorError only when nobody gets the mail. Never retried: a
        timeout after the server took the mail would send it twice."""
        try:
            return await self._send(message)
        except ConnectorError:
            raise
        except Exception as e:
            raise self.readable(e) from e

    async def _send(self, message: EmailMessage) -> SendResult:
        raise NotImplementedError


class SentFolder(Connector):
    """A mailbox that can take a copy of a mail sent elsewhere (IMAP APPEND to Sent)."""

    @final
    async def append_sent(self, data: bytes) -> str:
        """File `data` in the mailbox's Sent folder; returns the folder's name."""
        try:
            return await self._append_sent(data)
        except ConnectorError:
            raise
        except Exception as e:
            raise self.readable(e) from e

    async def _append_sent(self, data: bytes) -> str:
        raise NotImplementedError


class Listener(Connector):
    """A source that pushes its items live and does not replay what was missed (a PBX's
    manager interface): not a fetch after a cursor, so the base class's paging and retries do
    not apply.

    Implement `listen()`: an async generator yielding each batch of RawItems as it arrives,
    running until cancelled. Connection trouble is handled inside (reconnect with `backoff`,
    log a warning), never raised: the scheduler (hub.jobs) runs one listener per connector and
    stores each batch through `hub.pipeline.ingest_pushed`. `_fetch` yields nothing, so that a
    scheduled sync of the connector is harmless; override `_check` with a cheap login.

    `pushes` tells the connector contract test (which drives cursors) that the kind has none.
    """

    pushes: ClassVar[bool] = True

    async def listen(self) -> AsyncGenerator[list[RawItem], None]:
        raise NotImplementedError
        yield []  # pragma: no cover

    async def _fetch(
        self, cursor: dict[str, Any]
    ) -> AsyncIterator[tuple[list[RawItem], dict[str, Any]]]:
        return
        yield  # pragma: no cover - a listener's items arrive through listen()


@dataclass(frozen=True)
class Booked:
    """What `CalendarWriter.book` did with a meeting."""

    calendar: str  # where it went, as the user knows it (a calendar's name)
    uid: str  # the UID the calendar keeps it under: the one given, or the server's own
    invited_by_server: bool  # the server invited the attendees itself: crmhub must not too


class CalendarWriter(Connector):
    """The port the hub books meetings through (caldav, exchange, m365): one user's calendar.

    `book` writes a new event into the calendar of `organizer` (a mailbox the connector reads,
    see `MailSender.senders` for kinds that read many) and says, as `Booked`, where it went,
    under which UID the calendar keeps it, and whether the server invited the attendees. A
    kind whose server can store an event without inviting anyone keeps the given UID and
    invites nobody (caldav: SCHEDULE-AGENT=CLIENT, exchange: SendToNone): the invitation is
    then crmhub's own iMIP mail. A kind whose server always invites (Graph) returns the UID the
    server gave the event, the one its invitation carries, and `invited_by_server=True`.
    `free_busy` gives the organizer's busy times, or None when the server offers none. Both
    are wrapped like `check`: whatever the source raises reaches the user as a ConnectorError
    that names the connector.
    """

    @final
    async def book(self, event: bytes, organizer: str) -> Booked:
        """Write `event` (a VCALENDAR holding one VEVENT) into `organizer`'s calendar."""
        try:
            return await self._book(event, organizer)
        except ConnectorError:
            raise
        except Exception as e:
            raise self.readable(e) from e

    @final
    async def free_busy(
        self, organizer: str, start: datetime, end: datetime
    ) -> list[tuple[datetime, datetime]] | None:
        """`organizer`'s busy periods between `start` and `end`, or None when unknown."""
        try:
            return await self._free_busy(organizer, start, end)
        except ConnectorError:
            raise
        except Exception as e:
            raise self.readable(e) from e

    async def _book(self, event: bytes, organizer: str) -> Booked:
        raise NotImplementedError

    async def _free_busy(
        self, organizer: str, start: datetime, end: datetime
    ) -> list[tuple[datetime, datetime]] | None:
        return None
