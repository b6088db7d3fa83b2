"""Exchange Server 2016, 2019 and SE over EWS (exchangelib): many mailboxes, one service account.

The service account logs in (NTLM or basic, over TLS) and impersonates each mailbox of the
`mailboxes` setting; every item carries its mailbox as owner, and each batch holds one
mailbox's items only. Mail folders (Inbox, Sent Items and those `folders` names) are read with
SyncFolderItems, one page a batch: a page's new sync state is in the cursor yielded with that
page's items, so it commits in the transaction that stores them, never before. A sync state the
server no longer accepts (ErrorInvalidSyncStateData) drops that folder's state and reads the
folder again; the items keep their EWS item id as external id, and storage knows them.

Mail arrives as raw MIME (GetItem MimeContent) and goes through the shared mail translator.
Items marked Private or Personal, or with an Outlook category `private_marker` names, or in a
folder it names, are never downloaded. The calendar is read through a CalendarView (the server
expands series into occurrences) over `calendar_window_days` around now, again whenever
SyncFolderItems on the calendar folder reports a change; attendees and their answers come from
item fields, since they are not in any MIME.

ErrorServerBusy, dropped connections and timeouts are TransientErrors: the base class waits
(BackOffMilliseconds when the server says) and resumes from the last cursor.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import getaddresses, parseaddr
from typing import Any, ClassVar, TypeVar

import requests
from exchangelib import Message  # type: ignore[import-untyped]
from exchangelib.errors import (  # type: ignore[import-untyped]
    CASError,
    ErrorAccessDenied,
    ErrorImpersonateUserDenied,
    ErrorImpersonationDenied,
    ErrorInternalServerTransientError,
    ErrorInvalidSyncStateData,
    ErrorMailboxMoveInProgress,
    ErrorMailboxStoreUnavailable,
    ErrorNonExistentMailbox,
    ErrorSendAsDenied,
    ErrorServerBusy,
    ErrorTimeoutExpired,
    EWSError,
    RedirectError,
    TransportError,
    UnauthorizedError,
)

from connectors import ews, ews_calendar
from connectors.base import (
    SWITCH,
    Booked,
    CalendarWriter,
    ConfigurationError,
    ConnectorError,
    MailSender,
    MalformedItem,
    SendResult,
    TransientError,
)
from connectors.booked import appointment_of
from connectors.calendar import meeting_interaction, translate_event
from connectors.mail import translate_in
from hub.model import Interaction, RawItem

log = logging.getLogger(__name__)

PAGE_SIZE = 100  # SyncFolderItems MaxChangesReturned: one page is one batch
MIME_CHUNK = 20  # items per GetItem MimeContent call: 20 large mails stay a few hundred MB
MAIL_FIELDS = ("sensitivity", "categories")
CALENDAR_SYNC_FIELDS = ("uid", "sensitivity", "categories")
JSON = "application/json"
ICS = "text/calendar"
T = TypeVar("T")

_TRANSIENT = (
    ErrorServerBusy,
    ErrorTimeoutExpired,
    ErrorInternalServerTransientError,
    ErrorMailboxMoveInProgress,
    ErrorMailboxStoreUnavailable,
    requests.ConnectionError,
    requests.Timeout,
)


class ExchangeConnector(MailSender, CalendarWriter):
    kind = "exchange"
    options: ClassVar[dict[str, str]] = {
        "server": "the Exchange server's name (EWS at https://SERVER/EWS/Exchange.asmx)",
        "service_endpoint": "the full EWS URL, e.g. https://mail.ourco.example/EWS/Exchange.asmx",
        "autodiscover": "on: find the EWS URL by autodiscover from the first mailbox (default off)",
        "username": "the service account: DOMAIN\\name or name@domain",
        "auth": "ntlm (default) or basic",
        "mailboxes": "comma-separated mail addresses of the mailboxes to log (impersonated)",
        "folders": "comma-separated extra mail folders (a name or a path like Projects/Acme); "
        "Inbox and Sent Items are always read",
        "calendar": "on (default): log each mailbox's calendar too; off: mail only",
        "ca_file": "PEM file of the CA that signed the server certificate (default: system CAs)",
        "timeout": "seconds to wait for any server answer (default 60)",
        "retries": "attempts after a busy server or a dropped connection (default 5)",
    }
    required: ClassVar[tuple[str, ...]] = ("username", "mailboxes")
    example: ClassVar[dict[str, str]] = {
        "server": "mail.ourco.example",
        "username": "svc-crmhub@ourco.example",
        "mailboxes": "anna@ourco.example",
    }
    secret_options: ClassVar[dict[str, str]] = {"password": "the service account's password"}
    batch_size: ClassVar[int] = PAGE_SIZE

    @classmethod
    def validate_settings(cls, settings: Any) -> None:
        super().validate_settings(settings)
        autodiscover = str(settings.get("autodiscover", "off")).lower()
        if autodiscover not in SWITCH:
            raise ConfigurationError(f"exchange: autodiscover={autodiscover!r}; use on or off")
        given = [k for k in ("server", "service_endpoint") if settings.get(k)]
        if len(given) > 1:
            raise ConfigurationError(
                "exchange: set server or service_endpoint, not both (service_endpoint wins "
                "nothing: remove one)"
            )
        if not given and not SWITCH[autodiscover]:
            raise ConfigurationError(
                "exchange: missing setting server (--set server=mail.ourco.example), or "
                "service_endpoint=https://.../EWS/Exchange.asmx, or autodiscover=on"
            )
        endpoint = settings.get("service_endpoint")
        if endpoint and not str(endpoint).lower().startswith("https://"):
            raise ConfigurationError(
                f"exchange: service_endpoint={endpoint!r} must start with https:// (the password "
                "would cross the network in clear)"
            )
        server = settings.get("server")
        if server and "/" in server:
            raise ConfigurationError(
                f"exchange: server={server!r} is a host name only; for a full URL use "
                "service_endpoint"
            )
        auth = settings.get("auth", "ntlm")
        if auth not in ews.AUTH_TYPES:
            raise ConfigurationError(f"exchange: auth={auth!r}; use ntlm or basic")
        bad = [m for m in _split(settings.get("mailboxes", "")) if not _is_address(m)]
        if bad:
            raise ConfigurationError(
                f"exchange: mailboxes: {', '.join(map(repr, bad))} is not a mail address; "
                "use --set mailboxes=anna@ourco.example,ben@ourco.example"
            )
        if str(settings.get("calendar", "on")).lower() not in SWITCH:
            raise ConfigurationError(f"exchange: calendar={settings['calendar']!r}; use on or off")
        cls.require_numbers(settings, "timeout")
        cls.require_numbers(settings, "retries", zero=True)

    @classmethod
    def mailbox_owner(cls, settings: Any) -> str:
        """The `owner` setting, else the mailbox when there is only one: the username is a
        service account, never the owner. With many mailboxes each item names its own."""
        if owner := (settings.get("owner") or "").strip():
            return str(owner)
        mailboxes = _split(settings.get("mailboxes", ""))
        return mailboxes[0] if len(mailboxes) == 1 else ""

    @property
    def mailboxes(self) -> list[str]:
        return _split(self.settings["mailboxes"])

    @property
    def endpoint(self) -> str | None:
        if endpoint := self.settings.get("service_endpoint"):
            return str(endpoint)
        if server := self.settings.get("server"):
            return f"https://{server}/EWS/Exchange.asmx"
        return None

    def _login(self) -> ews.Login:
        password = self.secrets.get("password", "")
        if not password:
            raise ConfigurationError(
                f"{self.name}: no password stored; add the connector again with "
                "--secret password=ENV_VAR"
            )
        ca_file = str(self.settings.get("ca_file") or "")
        if ca_file and self.endpoint:
            ews.trust(self.endpoint, ca_file)
        return ews.Login(
            self.endpoint,
            self.settings["username"],
            password,
            self.settings.get("auth", "ntlm"),
            float(self.settings.get("timeout") or 60),
            ca_file,
        )

    async def _call(self, function: Callable[..., T], *args: Any) -> T:
        """Run one blocking exchangelib call in a thread; busy and dropped are transient."""
        try:
            return await asyncio.to_thread(function, *args)
        except ErrorServerBusy as e:
            raise TransientError(f"server busy: {e}", retry_after=e.back_off) from e
        except _TRANSIENT as e:
            raise TransientError(f"{type(e).__name__}: {e}") from e

    async def _fetch(
        self, cursor: dict[str, Any]
    ) -> AsyncIterator[tuple[list[RawItem], dict[str, Any]]]:
        state: dict[str, Any] = {
            "mailboxes": {
                address: {
                    "folders": dict(mark.get("folders", {})),
                    "calendar": dict(mark.get("calendar", {})),
                }
                for address, mark in dict(cursor.get("mailboxes", {})).items()
            }
        }
        login = self._login()
        for mailbox in self.mailboxes:
            mark = state["mailboxes"].setdefault(mailbox, {"folders": {}, "calendar": {}})
            account = await self._call(ews.open_account, login, mailbox)
            try:
                folders, _ = await self._call(self._mail_folders, account)
                for folder in folders:
                    async for raws in self._sync_mail(account, mailbox, folder, mark["folders"]):
                        yield raws, _copy(state)
                if SWITCH[str(self.settings.get("calendar", "on")).lower()]:
                    async for raws in self._sync_calendar(account, mailbox, mark):
                        yield raws, _copy(state)
            except (EWSError, requests.RequestException) as e:
                if isinstance(e, _TRANSIENT):
                    raise
                raise self._explain(e, mailbox) from e
            finally:
                await asyncio.to_thread(ews.close, account)

    def _mail_folders(self, account: Any) -> tuple[list[ews.MailFolder], list[str]]:
        """Inbox, Sent Items and the `folders` named in settings (by path or by name), and
        the named folders this mailbox lacks.

        With one mailbox a missing folder is an error (a typo); with several it is normal
        that a project folder exists in some mailboxes only, so it is logged and skipped.
        """
        chosen = ews.distinguished(account)
        wanted = _split(self.settings.get("folders", ""))
        missing: list[str] = []
        if wanted:
            available = ews.all_folders(account)
            for name in wanted:
                match = [f for f in available if _folder_matches(f, name)]
                if match:
                    chosen.append(match[0])
                    continue
                if len(self.mailboxes) == 1:
                    known = ", ".join(sorted(f.path for f in available)) or "none"
                    raise ConnectorError(
                        f"{self.name}: mailbox {account.primary_smtp_address} has no folder "
                        f"{name!r} (folders: {known})"
                    )
                log.warning(
                    "%s: mailbox %s has no folder %r; skipped there",
                    self.name,
                    account.primary_smtp_address,
                    name,
                )
                missing.append(name)
        return list({f.folder_id: f for f in chosen}.values()), missing

    async def _sync_mail(
        self, account: Any, mailbox: str, folder: ews.MailFolder, states: dict[str, str]
    ) -> AsyncIterator[list[RawItem]]:
        """The folder's changes page by page; `states` gets a page's state just before that
        page is yielded, so the cursor handed out with it covers exactly what was stored."""
        state: str | None = states.get(folder.folder_id)
        in_private_folder = self.private_folder(folder.levels)
        while True:
            try:
                page = await self._call(
                    ews.sync_page, account, folder.folder, state, PAGE_SIZE, MAIL_FIELDS
                )
            except ErrorInvalidSyncStateData:
                if state is None:
                    raise
                log.warning(
                    "%s: the server no longer knows the sync state of %s in %s; reading the "
                    "folder again, recognising what is stored",
                    self.name,
                    folder.path,
                    mailbox,
                )
                state = None
                states.pop(folder.folder_id, None)
                continue
            private = {
                c.item_id: why
                for c in page.changes
                if (why := in_private_folder or self._private(c.sensitivity, c.categories))
            }
            wanted = [c for c in page.changes if c.item_id not in private]
            data: dict[str, bytes] = {}
            for start in range(0, len(wanted), MIME_CHUNK):
                chunk = wanted[start : start + MIME_CHUNK]
                data.update(await self._call(ews.mime_of, account, folder.folder, chunk))
            raws = [
                RawItem(c.item_id, b"", private=private[c.item_id], owner=mailbox)
                if c.item_id in private
                else RawItem(c.item_id, data[c.item_id], owner=mailbox)
                for c in page.changes
                if c.item_id in private or c.item_id in data
            ]
            states[folder.folder_id] = page.state
            if raws or page.state != state:
                yield raws
            if page.last or page.state == state:
                return
            state = page.state

    async def _sync_calendar(
        self, account: Any, mailbox: str, mark: dict[str, Any]
    ) -> AsyncIterator[list[RawItem]]:
        """Occurrences in the window: all of them on the first pass and when the window moved
        to a new day, else those of the series SyncFolderItems reports changed."""
        calendar = mark["calendar"]
        state: str | None = calendar.get("state")
        today = datetime.now(UTC).date().isoformat()
        changed: set[str] = set()
        new_state = state
        folder = await self._call(getattr, account, "calendar")
        while True:
            try:
                page = await self._call(
                    ews.sync_page, account, folder, new_state, PAGE_SIZE, CALENDAR_SYNC_FIELDS
                )
            except ErrorInvalidSyncStateData:
                if new_state is None:
                    raise
                state = new_state = None
                continue
            changed.update(c.uid for c in page.changes if c.uid)
            done = page.last or page.state == new_state
            new_state = page.state
            if done:
                break
        everything = state is None or calendar.get("day") != today
        if not everything and not changed:
            if new_state != state:
                calendar["state"] = new_state
                yield []
            return
        raws: list[RawItem] = []
        now = datetime.now(UTC)
        for start, end in ews.window_views(now, self.context.calendar_window_days):
            for item in await self._call(ews.occurrences, account, start, end):
                if not everything and str(item.uid or "") not in changed:
                    continue
                raws.append(self._calendar_raw(item, mailbox))
        unique = list({r.external_id: r for r in raws}.values())
        chunks = [unique[n : n + PAGE_SIZE] for n in range(0, len(unique), PAGE_SIZE)] or [[]]
        for n, chunk in enumerate(chunks):
            if n == len(chunks) - 1:  # the new state commits with the last occurrences
                calendar.update(state=new_state, day=today)
            yield chunk

    def _calendar_raw(self, item: Any, mailbox: str) -> RawItem:
        occurrence = ews.occurrence_key(item)
        why = self._private(str(item.sensitivity or ""), item.categories or ())
        if why:
            return RawItem(occurrence, b"", JSON, private=why, owner=mailbox)
        return RawItem(occurrence, ews.occurrence_json(item, occurrence), JSON, owner=mailbox)

    def _private(self, sensitivity: str, categories: Any) -> str:
        return ews.private_reason(sensitivity, categories or (), self.private_markers)

    def translate(self, raw: RawItem) -> Interaction:
        if raw.content_type == JSON:
            try:
                meeting = ews.meeting_from_json(raw.data)
            except (KeyError, ValueError, TypeError) as e:
                raise MalformedItem(f"calendar item fields cannot be read: {e}") from e
            return meeting_interaction(meeting)
        if raw.content_type == ICS:  # a meeting booked through crmhub (hub.booking)
            return translate_event(self.context, raw.data, raw.external_id)
        return translate_in(self.context, raw.data)

    async def _check(self) -> list[str]:
        login = self._login()
        lines = [
            f"{self.name}: logged in to {login.endpoint or 'the autodiscovered server'} as "
            f"{login.username} ({login.auth})"
        ]
        for mailbox in self.mailboxes:
            account = await self._call(ews.open_account, login, mailbox)
            try:
                folders, missing = await self._call(self._mail_folders, account)
                counts = ", ".join(
                    f"{f.path}: {f.folder.total_count} items"
                    + (" (private_marker: never stored)" if self.private_folder(f.levels) else "")
                    for f in folders
                )
                calendar = ""
                if SWITCH[str(self.settings.get("calendar", "on")).lower()]:
                    calendar = f", calendar: {(await self._call(_calendar_count, account))} items"
                absent = f" (no folder {', '.join(map(repr, missing))})" if missing else ""
                lines.append(f"  {mailbox}: {counts}{calendar}{absent}")
            except (EWSError, requests.RequestException) as e:
                raise self._explain(e, mailbox) from e
            finally:
                await asyncio.to_thread(ews.close, account)
        version = getattr(account.version, "build", None)
        if version:
            lines.insert(1, f"  server build {version}")
        return lines

    @classmethod
    def senders(cls, settings: Mapping[str, str]) -> tuple[str, ...]:
        """Every mailbox the service account reads: each owner sends as their own."""
        return tuple(_split(settings.get("mailboxes", ""))) or super().senders(settings)

    async def _send(self, message: EmailMessage) -> SendResult:
        """Send through the sender's mailbox (CreateItem SendAndSaveCopy): Exchange files the
        copy in that mailbox's Sent Items itself."""
        sender = parseaddr(str(message.get("From", "")))[1].lower()
        known = {m.lower(): m for m in self.mailboxes}
        mailbox = known.get(sender) or (self.mailboxes[0] if len(self.mailboxes) == 1 else "")
        if not mailbox:
            raise ConnectorError(
                f"{self.name}: cannot send as {sender or 'an empty From'}: not one of the "
                f"mailboxes {', '.join(self.mailboxes)}"
            )
        recipients = [
            address
            for header in ("To", "Cc", "Bcc")
            for _, address in getaddresses([str(v) for v in message.get_all(header) or []])
            if address
        ]
        login = self._login()
        account = await asyncio.to_thread(ews.open_account, login, mailbox)
        try:
            await asyncio.to_thread(_send_and_save, account, bytes(message))
        except (EWSError, requests.RequestException) as e:
            raise self._explain(e, mailbox) from e
        finally:
            await asyncio.to_thread(ews.close, account)
        return SendResult(recipients, {}, sent_folder="Sent Items")

    async def _book(self, event: bytes, organizer: str) -> Booked:
        """CreateItem in the organizer's calendar (impersonated), SendToNone: crmhub invites."""
        mailbox = self._own_mailbox(organizer)
        appointment = appointment_of(event)
        account = await asyncio.to_thread(ews.open_account, self._login(), mailbox)
        try:
            folder = await asyncio.to_thread(ews_calendar.create_appointment, account, appointment)
        except (EWSError, requests.RequestException) as e:
            raise self._explain(e, mailbox) from e
        finally:
            await asyncio.to_thread(ews.close, account)
        return Booked(f"{mailbox}/{folder}", appointment.uid, invited_by_server=False)

    async def _free_busy(
        self, organizer: str, start: datetime, end: datetime
    ) -> list[tuple[datetime, datetime]] | None:
        mailbox = self._own_mailbox(organizer)
        account = await asyncio.to_thread(ews.open_account, self._login(), mailbox)
        try:
            return await asyncio.to_thread(ews_calendar.busy_periods, account, mailbox, start, end)
        except (EWSError, requests.RequestException) as e:
            raise self._explain(e, mailbox) from e
        finally:
            await asyncio.to_thread(ews.close, account)

    def _own_mailbox(self, address: str) -> str:
        known = {m.lower(): m for m in self.mailboxes}
        if address.lower() not in known:
            raise ConfigurationError(
                f"{self.name}: {address} is not one of the mailboxes {', '.join(self.mailboxes)}"
            )
        return known[address.lower()]

    def readable(self, error: Exception) -> ConnectorError:
        if isinstance(error, EWSError | requests.RequestException):
            return self._explain(error, "")
        return super().readable(error)

    def _explain(self, error: Exception, mailbox: str) -> ConnectorError:
        """exchangelib's error as one line that tells IT what to fix."""
        where = f" for mailbox {mailbox}" if mailbox else ""
        endpoint = self.endpoint or "the autodiscovered server"
        user = self.settings.get("username", "")
        if isinstance(error, ErrorImpersonateUserDenied | ErrorImpersonationDenied):
            return ConnectorError(
                f"{self.name}: the service account {user} may not impersonate "
                f"{mailbox or 'the mailbox'}: impersonation is not granted. Give it the "
                "ApplicationImpersonation "
                f"role (New-ManagementRoleAssignment -Name crmhub-impersonation -Role "
                f"ApplicationImpersonation -User {user!r})"
            )
        if isinstance(error, ErrorNonExistentMailbox):
            return ConnectorError(
                f"{self.name}: mailbox {mailbox or '?'} not found on {endpoint}: check the "
                "mailboxes setting (the primary SMTP address; a mailbox in Microsoft 365 needs "
                "the m365 connector)"
            )
        if isinstance(error, ErrorSendAsDenied):
            return ConnectorError(
                f"{self.name}: {user} may not send as {mailbox}: missing permission SendAs "
                "(ApplicationImpersonation grants it; or Add-ADPermission -ExtendedRights "
                "Send-As)"
            )
        if isinstance(error, ErrorAccessDenied):
            return ConnectorError(
                f"{self.name}: access denied{where}: missing permission ApplicationImpersonation "
                f"(or FullAccess on the mailbox) for {user}: {error}"
            )
        if isinstance(error, UnauthorizedError):
            return ConnectorError(
                f"{self.name}: {endpoint} refused the login of {user!r} "
                f"(auth={self.settings.get('auth', 'ntlm')}): check the username "
                "(DOMAIN\\name or name@domain), the password secret and the auth setting"
            )
        if isinstance(error, ErrorServerBusy):
            return ConnectorError(
                f"{self.name}: {endpoint} is busy (EWS throttling){where}; the next sync "
                "tries again"
            )
        if isinstance(error, requests.exceptions.SSLError) or "SSL" in str(error)[:200]:
            return ConnectorError(
                f"{self.name}: the TLS certificate of {endpoint} is not trusted: set ca_file to "
                "the PEM of the CA that signed it"
            )
        if isinstance(error, RedirectError | CASError):
            return ConnectorError(
                f"{self.name}: {endpoint} did not answer as EWS ({error}): check server or "
                "service_endpoint (usually https://mail.ourco.example/EWS/Exchange.asmx)"
            )
        if any(
            isinstance(e, ErrorTimeoutExpired | requests.RequestException) for e in _chain(error)
        ):
            return ConnectorError(
                f"{self.name}: cannot reach {endpoint}: {_reach_reason(error)}: check the "
                "server or service_endpoint setting, DNS and firewall"
            )
        if isinstance(error, TransportError):
            return ConnectorError(
                f"{self.name}: {endpoint} did not answer as an Exchange EWS endpoint "
                f"({_short(error)}): check server or service_endpoint"
            )
        return ConnectorError(f"{self.name}{where}: {type(error).__name__}: {_short(error)}")


def _calendar_count(account: Any) -> int:
    return int(account.calendar.total_count or 0)


def _send_and_save(account: Any, mime: bytes) -> None:
    Message(account=account, folder=account.sent, mime_content=mime).send_and_save()


def _folder_matches(folder: ews.MailFolder, name: str) -> bool:
    wanted = name.strip().strip("/").casefold()
    return folder.path.casefold() == wanted or (
        "/" not in wanted and folder.levels[-1].casefold() == wanted
    )


def _split(value: str) -> list[str]:
    return [part.strip() for part in str(value or "").split(",") if part.strip()]


def _is_address(value: str) -> bool:
    local, _, domain = value.rpartition("@")
    return bool(local) and "." in domain.strip(".") and not any(c.isspace() for c in value)


def _chain(error: BaseException) -> list[BaseException]:
    """The error and those it was raised from or during (exchangelib re-raises a refused
    connection during version detection as a TransportError)."""
    found: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in found:
        found.append(current)
        current = current.__cause__ or current.__context__
    return found


def _reach_reason(error: BaseException) -> str:
    """Why a connection failed, in a few words instead of urllib3's nested reprs."""
    text = " ".join(str(e) for e in _chain(error)).lower()
    for needle, reason in (
        ("refused", "connection refused"),
        ("name or service not known", "the name does not resolve"),
        ("nameresolution", "the name does not resolve"),
        ("timed out", "no answer in time"),
        ("timeout", "no answer in time"),
        ("reset", "connection reset"),
    ):
        if needle in text:
            return reason
    return "connection failed"


def _short(error: Exception) -> str:
    """The first line of an exchangelib message (some carry a whole HTTP response)."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return text[:300]


def _copy(state: dict[str, Any]) -> dict[str, Any]:
    return {
        "mailboxes": {
            address: {"folders": dict(mark["folders"]), "calendar": dict(mark["calendar"])}
            for address, mark in state["mailboxes"].items()
        }
    }
