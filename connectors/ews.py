"""exchangelib plumbing for the `exchange` connector: sessions, one SyncFolderItems page, MIME
and calendar occurrences, each a blocking call the connector runs in a worker thread.

Kept apart from `connectors/exchange.py` so that the connector reads as the sync it does, and so
that everything exchangelib-specific (its global HTTP adapter, its fail-fast policy, its field
names) sits in one place.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import requests
from exchangelib import (  # type: ignore[import-untyped]
    BASIC,
    IMPERSONATION,
    NTLM,
    Account,
    Configuration,
    Credentials,
    EWSDateTime,
    FailFast,
)
from exchangelib.folders import FolderCollection  # type: ignore[import-untyped]
from exchangelib.items import ID_ONLY  # type: ignore[import-untyped]
from exchangelib.protocol import BaseProtocol  # type: ignore[import-untyped]
from exchangelib.services import SyncFolderItems  # type: ignore[import-untyped]

from connectors.calendar import Attendee, Meeting, occurrence_id

AUTH_TYPES = {"ntlm": NTLM, "basic": BASIC}
PRIVATE_SENSITIVITIES = ("Private", "Personal")
# EWS ResponseType -> iCalendar PARTSTAT (lower-case), as the shared calendar translator keeps it.
ANSWERS = {
    "Accept": "accepted",
    "Decline": "declined",
    "Tentative": "tentative",
    "NoResponseReceived": "needs-action",
    "Organizer": "accepted",
}
CALENDAR_FIELDS = (
    "uid",
    "recurrence_id",
    "original_start",
    "type",
    "start",
    "end",
    "subject",
    "text_body",
    "location",
    "organizer",
    "required_attendees",
    "optional_attendees",
    "sensitivity",
    "categories",
    "is_cancelled",
    "is_all_day",
)
# A CalendarView answers at most 1,000 occurrences and may span at most two years; 60 days a
# request keeps a busy calendar well below both.
VIEW_DAYS = 60

_CA_FILES: dict[str, str] = {}  # "host:port" (lower-case) -> PEM file, per configured connector
_CA_LOCK = threading.Lock()


class CaFileAdapter(requests.adapters.HTTPAdapter):
    """An HTTP adapter that verifies a host's certificate against the connector's `ca_file`.

    exchangelib builds its own requests sessions, and requests takes REQUESTS_CA_BUNDLE from
    the environment over anything set on a session; only the adapter sees the final `verify`.
    Hosts without a configured CA file keep the default (environment or system trust).
    """

    def send(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        parts = urlsplit(request.url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        ca_file = _CA_FILES.get(f"{(parts.hostname or '').lower()}:{port}")
        if ca_file:
            kwargs["verify"] = ca_file
        return super().send(request, *args, **kwargs)


def trust(endpoint: str, ca_file: str) -> None:
    """Verify `endpoint`'s host with `ca_file` from now on (exchangelib's adapter is global)."""
    parts = urlsplit(endpoint)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    with _CA_LOCK:
        _CA_FILES[f"{(parts.hostname or '').lower()}:{port}"] = ca_file
        if BaseProtocol.HTTP_ADAPTER_CLS is not CaFileAdapter:
            BaseProtocol.HTTP_ADAPTER_CLS = CaFileAdapter


@dataclass(frozen=True)
class Login:
    """How to reach the server: endpoint (None with autodiscover), account and auth."""

    endpoint: str | None
    username: str
    password: str
    auth: str
    timeout: float
    ca_file: str = ""


def open_account(login: Login, mailbox: str) -> Any:
    """An exchangelib Account for `mailbox`, logged in as the service account (impersonation).

    FailFast: exchangelib's FaultTolerance would sleep for up to an hour on ErrorServerBusy
    inside one call; the base class must see it, to wait as asked and resume from the cursor.
    """
    credentials = Credentials(login.username, login.password)
    if login.endpoint is None:
        config = Configuration(
            credentials=credentials, auth_type=AUTH_TYPES[login.auth], retry_policy=FailFast()
        )
        account = Account(mailbox, config=config, autodiscover=True, access_type=IMPERSONATION)
    else:
        config = Configuration(
            service_endpoint=login.endpoint,
            credentials=credentials,
            auth_type=AUTH_TYPES[login.auth],
            retry_policy=FailFast(),
            max_connections=1,
        )
        account = Account(mailbox, config=config, autodiscover=False, access_type=IMPERSONATION)
    account.protocol.TIMEOUT = login.timeout  # per connector; exchangelib's default is 120 s
    return account


def close(account: Any) -> None:
    """Close the account's connections now rather than at garbage collection."""
    account.protocol.close()


@dataclass(frozen=True)
class MailFolder:
    """A folder to sync: EWS folder object, its id (the cursor key) and its path of names."""

    folder: Any
    folder_id: str
    levels: tuple[str, ...]

    @property
    def path(self) -> str:
        return "/".join(self.levels)


def distinguished(account: Any) -> list[MailFolder]:
    """Inbox and Sent Items, by their distinguished ids (the names are localised)."""
    found = []
    for folder in (account.inbox, account.sent):
        found.append(MailFolder(folder, folder.id, (folder.name,)))
    return found


def all_folders(account: Any) -> list[MailFolder]:
    """Every folder under the message folder root, with its path, in one FindFolder call."""
    root = account.msg_folder_root
    found = list(FolderCollection(account=account, folders=[root]).find_folders(depth="Deep"))
    by_id = {f.id: f for f in found if not isinstance(f, Exception)}

    def levels(folder: Any) -> tuple[str, ...]:
        names: list[str] = []
        seen: set[str] = set()
        while folder is not None and folder.id not in seen:
            seen.add(folder.id)
            names.append(folder.name or "")
            parent = getattr(folder, "parent_folder_id", None)
            folder = by_id.get(parent.id) if parent is not None else None
        return tuple(reversed(names))

    return [MailFolder(f, f.id, levels(f)) for f in by_id.values()]


@dataclass
class Change:
    """One created or updated item of a sync page, with what privacy needs before download."""

    item_id: str
    change_key: str
    sensitivity: str = ""
    categories: tuple[str, ...] = ()
    uid: str = ""


@dataclass
class SyncPage:
    changes: list[Change] = field(default_factory=list)
    state: str = ""
    last: bool = True


def sync_page(
    account: Any, folder: Any, state: str | None, page_size: int, fields: Iterable[str]
) -> SyncPage:
    """One SyncFolderItems page after `state`: its creates and updates, new state, and whether
    it includes the last change. Deletions are not returned: what was logged stays logged."""
    service = SyncFolderItems(account=account)
    wanted = folder.normalize_fields(fields=list(fields))
    additional = {f for f in wanted if not f.field.is_attribute}
    page = SyncPage()
    for change_type, item in service.call(
        folder=folder,
        shape=ID_ONLY,
        additional_fields=additional,
        sync_state=state,
        ignore=None,
        max_changes_returned=page_size,
        sync_scope=None,
    ):
        if isinstance(item, Exception):
            raise item
        if change_type not in ("create", "update"):
            continue
        page.changes.append(
            Change(
                item.id,
                item.changekey,
                str(getattr(item, "sensitivity", "") or ""),
                tuple(getattr(item, "categories", None) or ()),
                str(getattr(item, "uid", "") or ""),
            )
        )
    page.state = service.sync_state or ""
    page.last = bool(service.includes_last_item_in_range) or service.sync_state == state
    return page


def mime_of(account: Any, folder: Any, changes: list[Change]) -> dict[str, bytes]:
    """GetItem MimeContent for `changes`: item id -> raw message. An item gone since the sync
    page (deleted, moved on) is missing from the answer; its new place syncs it again."""
    ids = [(c.item_id, c.change_key) for c in changes]
    found: dict[str, bytes] = {}
    for item in account.fetch(ids=ids, folder=folder, only_fields=["mime_content"]):
        if isinstance(item, Exception):
            continue
        found[item.id] = bytes(item.mime_content or b"")
    return found


def window_views(now: datetime, days: int) -> list[tuple[datetime, datetime]]:
    """The calendar window (`days` either side of now) as CalendarView ranges of VIEW_DAYS."""
    start, end = now - timedelta(days=days), now + timedelta(days=days)
    ranges = []
    while start < end:
        stop = min(end, start + timedelta(days=VIEW_DAYS))
        ranges.append((start, stop))
        start = stop
    return ranges


def occurrences(account: Any, start: datetime, end: datetime) -> list[Any]:
    """FindItem with a CalendarView: every occurrence in [start, end), series expanded by the
    server; exchangelib asks GetItem for the attendee fields FindItem cannot return."""
    view = account.calendar.view(
        start=EWSDateTime.from_datetime(start), end=EWSDateTime.from_datetime(end)
    )
    return [o for o in view.only(*CALENDAR_FIELDS) if not isinstance(o, Exception)]


def private_reason(sensitivity: str, categories: Iterable[str], markers: frozenset[str]) -> str:
    """Why an Outlook item is never stored, or "": Private/Personal sensitivity, or a category
    that `private_marker` names (any case)."""
    if sensitivity in PRIVATE_SENSITIVITIES:
        return f"Sensitivity: {sensitivity}"
    for category in categories:
        if category.strip().casefold() in markers:
            return f"Outlook category {category!r} (private_marker)"
    return ""


def occurrence_key(item: Any) -> str:
    """The occurrence id the shared calendar translator uses: UID, plus RECURRENCE-ID (the
    original start) for one occurrence of a series, so an .ics or CalDAV copy dedupes."""
    uid = str(item.uid or item.id)
    if item.type in ("Occurrence", "Exception"):
        rid = item.recurrence_id or item.original_start or item.start
        return occurrence_id(uid, _aware(rid))
    return occurrence_id(uid, None)


def occurrence_json(item: Any, occurrence: str) -> bytes:
    """The fields of one occurrence as JSON: the raw item `meeting_from_json` reads back."""

    def person(value: Any, answer: str = "") -> dict[str, str]:
        mailbox = getattr(value, "mailbox", value)
        return {
            "address": str(getattr(mailbox, "email_address", "") or ""),
            "name": str(getattr(mailbox, "name", "") or ""),
            "answer": answer,
        }

    attendees = [
        person(a, ANSWERS.get(str(a.response_type or ""), ""))
        for a in [*(item.required_attendees or []), *(item.optional_attendees or [])]
    ]
    return json.dumps(
        {
            "occurrence": occurrence,
            "uid": str(item.uid or occurrence),
            "start": _aware(item.start).isoformat(),
            "end": _aware(item.end).isoformat() if item.end else None,
            "subject": str(item.subject or ""),
            "description": str(item.text_body or ""),
            "location": str(item.location or ""),
            "organizer": person(item.organizer) if item.organizer else None,
            "attendees": attendees,
            "cancelled": bool(getattr(item, "is_cancelled", False)),
            "all_day": _day(item.start) if getattr(item, "is_all_day", False) else None,
        },
        sort_keys=True,
    ).encode()


def meeting_from_json(data: bytes) -> Meeting:
    """A raw calendar item (see `occurrence_json`) as a Meeting; KeyError/ValueError when not."""
    fields: Mapping[str, Any] = json.loads(data)
    organizer = fields.get("organizer")
    return Meeting(
        occurrence=fields["occurrence"],
        uid=fields["uid"],
        start=datetime.fromisoformat(fields["start"]),
        end=datetime.fromisoformat(fields["end"]) if fields.get("end") else None,
        subject=fields.get("subject", ""),
        description=fields.get("description", ""),
        location=fields.get("location", ""),
        organizer=Attendee(organizer["address"], organizer["name"]) if organizer else None,
        attendees=[Attendee(a["address"], a["name"], a["answer"]) for a in fields["attendees"]],
        status="cancelled" if fields.get("cancelled") else "",
        all_day=date.fromisoformat(fields["all_day"]) if fields.get("all_day") else None,
    )


def _day(value: Any) -> str:
    """The day of an all-day item as Exchange wrote it (its start's date, not in UTC)."""
    return (value if not isinstance(value, datetime) else value.date()).isoformat()


def _aware(value: Any) -> datetime:
    """An EWS date or date-time as a plain aware datetime in UTC (an all-day date at midnight
    UTC): exchangelib's EWSDateTime refuses the standard library's time zones."""
    if isinstance(value, datetime):
        plain = datetime(*value.timetuple()[:6], value.microsecond, tzinfo=value.tzinfo or UTC)
        return datetime.fromtimestamp(plain.timestamp(), UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    raise ValueError(f"{value!r} is not a date")
