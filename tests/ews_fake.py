"""FakeEws: a local Exchange Web Services endpoint that answers with the documented wire formats.

No Exchange Server can run here, so the `exchange` connector's tests talk to this threaded HTTPS
server on 127.0.0.1 (a trustme CA signs its certificate). It parses the SOAP requests
exchangelib sends and answers with the envelopes the EWS reference documents, holding mailboxes
(folders, mail with MIME, calendar series with occurrences and exceptions) in memory.

Shapes come from these learn.microsoft.com pages (exchange/client-developer/web-service-
reference/...): `serverversioninfo` (the SOAP header every answer carries, which exchangelib
reads to learn the version), `exchangeimpersonation` and `connectingsid` (the impersonation
header), `getfolder-operation` and `distinguishedfolderid`, `findfolder-operation`,
`syncfolderitems-operation` with `syncfolderitemsresponsemessage` (SyncState,
IncludesLastItemInRange, Changes of Create/Update/Delete), `getitem-operation` with
`mimecontent`, `finditem-operation` with `calendarview` (occurrences expanded, CalendarItemType
Single/Occurrence/Exception, RecurrenceId), `attendee` and `responsetype`,
`createitem-operation-email-message` (MessageDisposition SendAndSaveCopy, SavedItemFolderId),
`responsecode` (ErrorServerBusy, ErrorInvalidSyncStateData, ErrorImpersonateUserDenied,
ErrorNonExistentMailbox) and, for the busy fault's BackOffMilliseconds in MessageXml,
`exchange-web-services/ews-throttling-in-exchange`.

Faults are injected per test: `busy()` (a SOAP fault ErrorServerBusy with BackOffMilliseconds),
`invalidate_sync_states()` (the next SyncFolderItems with an old state gets
ErrorInvalidSyncStateData), a wrong password (HTTP 401), `deny_impersonation()` and a mailbox
that does not exist (SOAP faults, as Exchange sends for a bad ExchangeImpersonation header).
"""

from __future__ import annotations

import base64
import itertools
import json
import ssl
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import trustme
from lxml import etree

from tests.connector_contract import ContractSource

SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
M = "http://schemas.microsoft.com/exchange/services/2006/messages"
T = "http://schemas.microsoft.com/exchange/services/2006/types"
E = "http://schemas.microsoft.com/exchange/services/2006/errors"
# Exchange Server 2019 CU14 (15.2.1544.4); every Exchange 2016+ reports Version="V2017_07_11".
VERSION_HEADER = (
    f'<h:ServerVersionInfo xmlns:h="{T}" MajorVersion="15" MinorVersion="2" '
    'MajorBuildNumber="1544" MinorBuildNumber="4" Version="V2017_07_11"/>'
)
DISTINGUISHED = {
    "root": ("root", "", "Folder"),
    "msgfolderroot": ("Top of Information Store", "IPF.Note", "Folder"),
    "inbox": ("Inbox", "IPF.Note", "Folder"),
    "sentitems": ("Sent Items", "IPF.Note", "Folder"),
    "calendar": ("Calendar", "IPF.Appointment", "CalendarFolder"),
}


@dataclass
class FakeMail:
    item_id: str
    folder_id: str
    mime: bytes
    sensitivity: str = "Normal"
    categories: list[str] = field(default_factory=list)


@dataclass
class FakeAttendee:
    address: str
    name: str = ""
    response: str = "NoResponseReceived"  # Accept, Decline, Tentative, Organizer, Unknown


@dataclass
class FakeEvent:
    """A single meeting, or a series (`every` > 0) with per-occurrence exceptions."""

    item_id: str
    uid: str
    subject: str
    start: datetime
    minutes: int = 60
    organizer: FakeAttendee | None = None
    required: list[FakeAttendee] = field(default_factory=list)
    optional: list[FakeAttendee] = field(default_factory=list)
    every: timedelta | None = None
    count: int = 1
    # original start -> changed fields of that occurrence ("start", "subject", "required")
    exceptions: dict[datetime, dict[str, Any]] = field(default_factory=dict)
    sensitivity: str = "Normal"
    categories: list[str] = field(default_factory=list)
    body: str = ""
    location: str = ""


@dataclass
class FakeFolder:
    folder_id: str
    name: str
    parent_id: str
    folder_class: str = "IPF.Note"
    tag: str = "Folder"
    distinguished: str = ""
    # The change log SyncFolderItems pages through: (change type, item id).
    changes: list[tuple[str, str]] = field(default_factory=list)
    epoch: int = 0  # bumped to make every earlier sync state invalid


@dataclass
class FakeMailbox:
    address: str
    folders: dict[str, FakeFolder] = field(default_factory=dict)
    mails: dict[str, FakeMail] = field(default_factory=dict)
    events: dict[str, FakeEvent] = field(default_factory=dict)
    sent: list[bytes] = field(default_factory=list)  # MIME of mail sent through CreateItem

    def folder(self, name: str) -> FakeFolder:
        for folder in self.folders.values():
            if name in (folder.distinguished, folder.name):
                return folder
        raise KeyError(name)


class FakeEws:
    """The fake server; `with FakeEws.running(tmp_path) as ews:` starts and stops it."""

    def __init__(
        self,
        workdir: Path,
        username: str = "OURCO\\svc-crmhub",
        password: str = "Fake-EWS-password-42",
    ):
        self.username, self.password = username, password
        self.mailboxes: dict[str, FakeMailbox] = {}
        self.denied: set[str] = set()  # mailboxes the service account may not impersonate
        self.requests: list[str] = []  # operation names, in order
        self.downloaded: list[str] = []  # item ids whose MimeContent was served
        self.delay = 0.0  # seconds every answer takes, for tests that need a slow server
        self.invitations: list[str] = []  # SendMeetingInvitations of each calendar CreateItem
        self.lock = threading.RLock()
        self._ids = itertools.count(1)
        self._faults: list[tuple[str, int]] = []  # (operation, BackOffMilliseconds)
        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1", "localhost")
        self.ca_file = workdir / "ews-ca.pem"
        ca.cert_pem.write_to_path(str(self.ca_file))
        self._context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(self._context)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._server.socket = self._context.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @classmethod
    @contextmanager
    def running(cls, workdir: Path, **kwargs: str) -> Iterator[FakeEws]:
        fake = cls(workdir, **kwargs)
        fake._thread.start()
        try:
            yield fake
        finally:
            fake._server.shutdown()
            fake._server.server_close()
            fake._thread.join(5)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self._server.server_address[1]}/EWS/Exchange.asmx"

    def settings(self, *mailboxes: str, **more: str) -> dict[str, str]:
        """Connector settings that reach this fake."""
        return {
            "service_endpoint": self.url,
            "username": self.username,
            "auth": "basic",
            "mailboxes": ",".join(mailboxes),
            "ca_file": str(self.ca_file),
            "timeout": "10",
            **more,
        }

    # --- the mailboxes -------------------------------------------------------------------
    def new_id(self, kind: str = "AAMkItem") -> str:
        return base64.b64encode(f"{kind}-{next(self._ids)}".encode()).decode()

    def add_mailbox(self, address: str) -> FakeMailbox:
        with self.lock:
            box = FakeMailbox(address)
            parents = {"root": "", "msgfolderroot": "root"}
            ids: dict[str, str] = {}
            for key, (name, folder_class, tag) in DISTINGUISHED.items():
                ids[key] = self.new_id("Folder")
                parent = ids.get(parents.get(key, "msgfolderroot"), "")
                box.folders[ids[key]] = FakeFolder(ids[key], name, parent, folder_class, tag, key)
            self.mailboxes[address.lower()] = box
            return box

    def add_folder(self, address: str, name: str, parent: str = "msgfolderroot") -> FakeFolder:
        with self.lock:
            box = self.mailboxes[address.lower()]
            folder_id = self.new_id("Folder")
            box.folders[folder_id] = FakeFolder(folder_id, name, box.folder(parent).folder_id)
            return box.folders[folder_id]

    def deliver(
        self,
        address: str,
        mime: bytes,
        folder: str = "inbox",
        sensitivity: str = "Normal",
        categories: list[str] | None = None,
    ) -> str:
        with self.lock:
            box = self.mailboxes[address.lower()]
            target = box.folder(folder)
            item_id = self.new_id()
            box.mails[item_id] = FakeMail(
                item_id, target.folder_id, mime, sensitivity, categories or []
            )
            target.changes.append(("Create", item_id))
            return item_id

    def move(self, address: str, item_id: str, folder: str) -> str:
        """Move a message as Exchange does: a new item id in the target folder (a Create
        there) and a Delete in the old folder."""
        with self.lock:
            box = self.mailboxes[address.lower()]
            mail = box.mails.pop(item_id)
            box.folders[mail.folder_id].changes.append(("Delete", item_id))
            target = box.folder(folder)
            new_id = self.new_id()
            box.mails[new_id] = FakeMail(
                new_id, target.folder_id, mail.mime, mail.sensitivity, mail.categories
            )
            target.changes.append(("Create", new_id))
            return new_id

    def add_event(self, address: str, event: FakeEvent) -> FakeEvent:
        with self.lock:
            box = self.mailboxes[address.lower()]
            box.events[event.item_id] = event
            box.folder("calendar").changes.append(("Create", event.item_id))
            return event

    def touch_event(self, address: str, item_id: str) -> None:
        """Record an Update of a series or meeting (after changing the FakeEvent in place)."""
        with self.lock:
            self.mailboxes[address.lower()].folder("calendar").changes.append(("Update", item_id))

    # --- faults ----------------------------------------------------------------------------
    def busy(self, operation: str = "SyncFolderItems", back_off_ms: int = 500, times: int = 1):
        """The next `times` calls of `operation` get ErrorServerBusy with BackOffMilliseconds."""
        with self.lock:
            self._faults.extend([(operation, back_off_ms)] * times)

    def invalidate_sync_states(self, address: str, folder: str = "inbox") -> None:
        """Every sync state handed out so far for the folder becomes ErrorInvalidSyncStateData."""
        with self.lock:
            self.mailboxes[address.lower()].folder(folder).epoch += 1

    def deny_impersonation(self, address: str) -> None:
        with self.lock:
            self.denied.add(address.lower())

    # --- the protocol ----------------------------------------------------------------------
    def answer(self, body: bytes, authorization: str) -> tuple[int, bytes]:
        if self.delay:
            time.sleep(self.delay)
        expected = "Basic " + base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        if authorization != expected:
            return 401, b""
        root = etree.fromstring(body)
        request = root.find(f"{{{SOAP}}}Body")[0]  # type: ignore[index]
        operation = etree.QName(request).localname
        impersonated = root.findtext(f".//{{{T}}}ExchangeImpersonation//{{{T}}}PrimarySmtpAddress")
        with self.lock:
            self.requests.append(operation)
            fault = next((f for f in self._faults if f[0] == operation), None)
            if fault is not None:
                self._faults.remove(fault)
                return 500, _busy_fault(fault[1])
            if operation == "ConvertId":  # exchangelib's version probe: any answer with a header
                return 200, _envelope(
                    "ConvertId",
                    _error("ConvertId", "ErrorInvalidIdMalformed", "Id is malformed."),
                )
            if operation == "GetUserAvailabilityRequest":  # its element is named so
                return 200, self._GetUserAvailability(request)
            box = self.mailboxes.get((impersonated or "").lower())
            if impersonated and (impersonated or "").lower() in self.denied:
                return 500, _fault(
                    "ErrorImpersonateUserDenied",
                    "The account does not have permission to impersonate the requested user.",
                )
            if box is None:
                return 500, _fault(
                    "ErrorNonExistentMailbox", "The SMTP address has no mailbox associated with it."
                )
            handler = getattr(self, f"_{operation}", None)
            if handler is None:
                return 500, _fault("ErrorInvalidRequest", f"{operation} is not faked")
            return 200, _envelope(operation, handler(box, request))

    def _folder_of(self, box: FakeMailbox, elem: Any) -> FakeFolder | None:
        if etree.QName(elem).localname == "DistinguishedFolderId":
            return next(
                (f for f in box.folders.values() if f.distinguished == elem.get("Id")), None
            )
        return box.folders.get(elem.get("Id"))

    def _GetFolder(self, box: FakeMailbox, request: Any) -> str:
        out = []
        for elem in request.find(f"{{{M}}}FolderIds"):
            folder = self._folder_of(box, elem)
            if folder is None:
                out.append(_error("GetFolder", "ErrorFolderNotFound", "The folder was not found."))
            else:
                out.append(_ok("GetFolder", f"<m:Folders>{_folder_xml(box, folder)}</m:Folders>"))
        return "".join(out)

    def _FindFolder(self, box: FakeMailbox, request: Any) -> str:
        parent = self._folder_of(box, request.find(f"{{{M}}}ParentFolderIds")[0])
        assert parent is not None
        below = [f for f in box.folders.values() if _under(box, f, parent)]
        inner = "".join(_folder_xml(box, f) for f in below)
        return _ok(
            "FindFolder",
            f'<m:RootFolder TotalItemsInView="{len(below)}" IncludesLastItemInRange="true">'
            f"<t:Folders>{inner}</t:Folders></m:RootFolder>",
        )

    def _SyncFolderItems(self, box: FakeMailbox, request: Any) -> str:
        folder = self._folder_of(box, request.find(f"{{{M}}}SyncFolderId")[0])
        assert folder is not None
        limit = int(request.findtext(f"{{{M}}}MaxChangesReturned") or 100)
        state = request.findtext(f"{{{M}}}SyncState")
        position = 0
        if state:
            mark = json.loads(base64.b64decode(state))
            if mark["epoch"] != folder.epoch or mark["folder"] != folder.folder_id:
                return _error(
                    "SyncFolderItems",
                    "ErrorInvalidSyncStateData",
                    "Synchronization state data is corrupt or otherwise invalid.",
                    "<m:SyncState/><m:IncludesLastItemInRange>true</m:IncludesLastItemInRange>",
                )
            position = mark["position"]
        page = folder.changes[position : position + limit]
        new_position = position + len(page)
        changes = []
        for change, item_id in page:
            if change == "Delete":
                changes.append(f'<t:Delete><t:ItemId Id="{item_id}" ChangeKey="CK"/></t:Delete>')
            elif item_id in box.mails or item_id in box.events:
                changes.append(f"<t:{change}>{self._summary(box, item_id)}</t:{change}>")
        new_state = base64.b64encode(
            json.dumps(
                {"folder": folder.folder_id, "epoch": folder.epoch, "position": new_position}
            ).encode()
        ).decode()
        last = "true" if new_position >= len(folder.changes) else "false"
        return _ok(
            "SyncFolderItems",
            f"<m:SyncState>{new_state}</m:SyncState>"
            f"<m:IncludesLastItemInRange>{last}</m:IncludesLastItemInRange>"
            f"<m:Changes>{''.join(changes)}</m:Changes>",
        )

    def _summary(self, box: FakeMailbox, item_id: str) -> str:
        if item_id in box.mails:
            mail = box.mails[item_id]
            return (
                f'<t:Message><t:ItemId Id="{item_id}" ChangeKey="CK"/>'
                f"<t:Sensitivity>{mail.sensitivity}</t:Sensitivity>"
                f"{_categories(mail.categories)}</t:Message>"
            )
        event = box.events[item_id]
        return (
            f'<t:CalendarItem><t:ItemId Id="{item_id}" ChangeKey="CK"/>'
            f"<t:Sensitivity>{event.sensitivity}</t:Sensitivity>{_categories(event.categories)}"
            f"<t:UID>{escape(event.uid)}</t:UID></t:CalendarItem>"
        )

    def _GetItem(self, box: FakeMailbox, request: Any) -> str:
        out = []
        wants_mime = any(
            e.get("FieldURI") == "item:MimeContent" for e in request.iter(f"{{{T}}}FieldURI")
        )
        for elem in request.find(f"{{{M}}}ItemIds"):
            item_id = elem.get("Id")
            if item_id in box.mails and wants_mime:
                self.downloaded.append(item_id)
                mime = base64.b64encode(box.mails[item_id].mime).decode()
                xml = (
                    f'<t:Message><t:ItemId Id="{item_id}" ChangeKey="CK"/>'
                    f'<t:MimeContent CharacterSet="UTF-8">{mime}</t:MimeContent></t:Message>'
                )
            elif (occurrence := self._occurrence(box, item_id)) is not None:
                xml = occurrence
            else:
                out.append(
                    _error("GetItem", "ErrorItemNotFound", "The specified object was not found.")
                )
                continue
            out.append(_ok("GetItem", f"<m:Items>{xml}</m:Items>"))
        return "".join(out)

    def _occurrences(self, box: FakeMailbox) -> Iterator[tuple[str, FakeEvent, datetime | None]]:
        """(occurrence item id, event, original start or None for a single meeting)."""
        for event in box.events.values():
            if event.every is None:
                yield event.item_id, event, None
                continue
            for n in range(event.count):
                yield f"{event.item_id}.{n}", event, event.start + n * event.every

    def _occurrence(self, box: FakeMailbox, item_id: str) -> str | None:
        for occurrence_id, event, original in self._occurrences(box):
            if occurrence_id == item_id:
                return _event_xml(occurrence_id, event, original)
        return None

    def _FindItem(self, box: FakeMailbox, request: Any) -> str:
        view = request.find(f"{{{M}}}CalendarView")
        assert view is not None, "the fake answers FindItem with a CalendarView only"
        start = datetime.fromisoformat(view.get("StartDate").replace("Z", "+00:00"))
        end = datetime.fromisoformat(view.get("EndDate").replace("Z", "+00:00"))
        found = []
        for occurrence_id, event, original in self._occurrences(box):
            begins = event.exceptions.get(original, {}).get("start") if original else None
            begins = begins or original or event.start
            if start <= begins < end:
                found.append(f'<t:CalendarItem><t:ItemId Id="{occurrence_id}" ChangeKey="CK"/>'
                             "</t:CalendarItem>")  # fmt: skip
        return _ok(
            "FindItem",
            f'<m:RootFolder TotalItemsInView="{len(found)}" IncludesLastItemInRange="true">'
            f"<t:Items>{''.join(found)}</t:Items></m:RootFolder>",
        )

    def _CreateItem(self, box: FakeMailbox, request: Any) -> str:
        if request.find(f"{{{M}}}Items/{{{T}}}CalendarItem") is not None:
            return self._create_calendar_item(box, request)
        assert request.get("MessageDisposition") == "SendAndSaveCopy"
        saved = request.find(f"{{{M}}}SavedItemFolderId")[0]
        folder = self._folder_of(box, saved)
        assert folder is not None and folder.distinguished == "sentitems"
        mime = base64.b64decode(request.findtext(f".//{{{T}}}MimeContent") or "")
        box.sent.append(mime)
        item_id = self.new_id()
        box.mails[item_id] = FakeMail(item_id, folder.folder_id, mime)
        folder.changes.append(("Create", item_id))
        return _ok("CreateItem", "<m:Items/>")

    def _create_calendar_item(self, box: FakeMailbox, request: Any) -> str:
        """`createitem-operation-calendar-item`: the appointment lands in the calendar folder
        (SavedItemFolderId, default calendar); SendMeetingInvitations is required, and this
        fake records it (`invitations`) instead of mailing anyone."""
        mode = request.get("SendMeetingInvitations")
        assert mode in ("SendToNone", "SendOnlyToAll", "SendToAllAndSaveCopy"), mode
        self.invitations.append(mode)
        item = request.find(f"{{{M}}}Items/{{{T}}}CalendarItem")
        start = _parse_when(item.findtext(f"{{{T}}}Start") or "")
        end = _parse_when(item.findtext(f"{{{T}}}End") or "")
        item_id = self.new_id()
        required = [
            FakeAttendee(
                a.findtext(f"{{{T}}}Mailbox/{{{T}}}EmailAddress") or "",
                a.findtext(f"{{{T}}}Mailbox/{{{T}}}Name") or "",
            )
            for a in item.iterfind(f"{{{T}}}RequiredAttendees/{{{T}}}Attendee")
        ]
        event = FakeEvent(
            item_id,
            item.findtext(f"{{{T}}}UID") or f"server-uid-{item_id}",
            item.findtext(f"{{{T}}}Subject") or "",
            start,
            int((end - start).total_seconds() // 60),
            organizer=FakeAttendee(box.address, response="Organizer"),
            required=required,
            body=item.findtext(f"{{{T}}}Body") or "",
            location=item.findtext(f"{{{T}}}Location") or "",
        )
        box.events[item_id] = event
        box.folder("calendar").changes.append(("Create", item_id))
        return _ok(
            "CreateItem",
            f'<m:Items><t:CalendarItem><t:ItemId Id="{item_id}" ChangeKey="CK"/>'
            "</t:CalendarItem></m:Items>",
        )

    def _GetUserAvailability(self, request: Any) -> bytes:
        """`getuseravailability-operation`, RequestedView FreeBusy: per MailboxData a
        FreeBusyResponse whose CalendarEventArray lists the busy periods in the window, in the
        request's time zone (the fake honours its Bias only: crmhub asks in UTC)."""
        bias = timedelta(minutes=int(request.findtext(f"{{{T}}}TimeZone/{{{T}}}Bias") or 0))
        window = request.find(f".//{{{T}}}TimeWindow")
        start = _parse_when(window.findtext(f"{{{T}}}StartTime") or "", bias)
        end = _parse_when(window.findtext(f"{{{T}}}EndTime") or "", bias)
        out = []
        for data in request.iterfind(f".//{{{T}}}MailboxData"):
            address = (data.findtext(f"{{{T}}}Email/{{{T}}}Address") or "").lower()
            box = self.mailboxes.get(address)
            if box is None:
                out.append(
                    '<m:FreeBusyResponse><m:ResponseMessage ResponseClass="Error">'
                    "<m:MessageText>The SMTP address has no mailbox associated with it."
                    "</m:MessageText><m:ResponseCode>ErrorMailRecipientNotFound</m:ResponseCode>"
                    "</m:ResponseMessage></m:FreeBusyResponse>"
                )
                continue
            events = []
            for _, event, original in self._occurrences(box):
                begins = event.exceptions.get(original, {}).get("start") if original else None
                begins = begins or original or event.start
                ends = begins + timedelta(minutes=event.minutes)
                if begins < end and ends > start:
                    local = (begins - bias).replace(tzinfo=None), (ends - bias).replace(tzinfo=None)
                    events.append(
                        f"<t:CalendarEvent><t:StartTime>{local[0]:%Y-%m-%dT%H:%M:%S}</t:StartTime>"
                        f"<t:EndTime>{local[1]:%Y-%m-%dT%H:%M:%S}</t:EndTime>"
                        "<t:BusyType>Busy</t:BusyType></t:CalendarEvent>"
                    )
            out.append(
                '<m:FreeBusyResponse><m:ResponseMessage ResponseClass="Success">'
                "<m:ResponseCode>NoError</m:ResponseCode></m:ResponseMessage><m:FreeBusyView>"
                "<t:FreeBusyViewType>FreeBusy</t:FreeBusyViewType>"
                f"<t:CalendarEventArray>{''.join(events)}</t:CalendarEventArray>"
                "</m:FreeBusyView></m:FreeBusyResponse>"
            )
        return (
            f'<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="{SOAP}">'
            f"<s:Header>{VERSION_HEADER}</s:Header><s:Body>"
            f'<m:GetUserAvailabilityResponse xmlns:m="{M}" xmlns:t="{T}">'
            f"<m:FreeBusyResponseArray>{''.join(out)}</m:FreeBusyResponseArray>"
            "</m:GetUserAvailabilityResponse></s:Body></s:Envelope>"
        ).encode()


def _parse_when(value: str, bias: timedelta = timedelta(0)) -> datetime:
    """An xs:dateTime as EWS sends it: with Z or an offset, or local to the request's zone
    (`bias` minutes west of UTC, as EWS counts it)."""
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC) + bias
    return parsed.astimezone(UTC)


def _under(box: FakeMailbox, folder: FakeFolder, parent: FakeFolder) -> bool:
    current = folder
    while current.parent_id:
        if current.parent_id == parent.folder_id:
            return True
        current = box.folders[current.parent_id]
    return False


def _folder_xml(box: FakeMailbox, folder: FakeFolder) -> str:
    children = sum(f.parent_id == folder.folder_id for f in box.folders.values())
    count = sum(m.folder_id == folder.folder_id for m in box.mails.values())
    if folder.distinguished == "calendar":
        count = len(box.events)
    parent = f'<t:ParentFolderId Id="{folder.parent_id}"/>' if folder.parent_id else ""
    return (
        f'<t:{folder.tag}><t:FolderId Id="{folder.folder_id}" ChangeKey="CK"/>{parent}'
        f"<t:FolderClass>{folder.folder_class}</t:FolderClass>"
        f"<t:DisplayName>{escape(folder.name)}</t:DisplayName>"
        f"<t:TotalCount>{count}</t:TotalCount><t:ChildFolderCount>{children}</t:ChildFolderCount>"
        f"<t:UnreadCount>0</t:UnreadCount></t:{folder.tag}>"
    )


def _categories(categories: list[str]) -> str:
    if not categories:
        return ""
    return (
        "<t:Categories>"
        + "".join(f"<t:String>{escape(c)}</t:String>" for c in categories)
        + ("</t:Categories>")
    )


def _when(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _person(tag: str, person: FakeAttendee, response: bool = True) -> str:
    answer = f"<t:ResponseType>{person.response}</t:ResponseType>" if response else ""
    return (
        f"<t:{tag}><t:Mailbox><t:Name>{escape(person.name)}</t:Name>"
        f"<t:EmailAddress>{escape(person.address)}</t:EmailAddress>"
        f"<t:RoutingType>SMTP</t:RoutingType></t:Mailbox>{answer}</t:{tag}>"
    )


def _event_xml(item_id: str, event: FakeEvent, original: datetime | None) -> str:
    changed = event.exceptions.get(original, {}) if original else {}
    start = changed.get("start") or original or event.start
    kind = "Single" if original is None else ("Exception" if changed else "Occurrence")
    required = changed.get("required", event.required)
    rid = f"<t:RecurrenceId>{_when(original)}</t:RecurrenceId>" if original else ""
    organizer = ""
    if event.organizer:
        organizer = (
            f"<t:Organizer><t:Mailbox><t:Name>{escape(event.organizer.name)}</t:Name>"
            f"<t:EmailAddress>{escape(event.organizer.address)}</t:EmailAddress>"
            "<t:RoutingType>SMTP</t:RoutingType></t:Mailbox></t:Organizer>"
        )
    attendees = ""
    if required:
        attendees += (
            "<t:RequiredAttendees>"
            + "".join(_person("Attendee", a) for a in required)
            + "</t:RequiredAttendees>"
        )
    if event.optional:
        attendees += (
            "<t:OptionalAttendees>"
            + "".join(_person("Attendee", a) for a in event.optional)
            + "</t:OptionalAttendees>"
        )
    return (
        f'<t:CalendarItem><t:ItemId Id="{item_id}" ChangeKey="CK"/>'
        f"<t:Subject>{escape(changed.get('subject', event.subject))}</t:Subject>"
        f"<t:Sensitivity>{event.sensitivity}</t:Sensitivity>{_categories(event.categories)}"
        f'<t:TextBody BodyType="Text">{escape(event.body)}</t:TextBody>'
        f"<t:UID>{escape(event.uid)}</t:UID>{rid}"
        f"<t:Start>{_when(start)}</t:Start>"
        f"<t:End>{_when(start + timedelta(minutes=event.minutes))}</t:End>"
        + (f"<t:OriginalStart>{_when(original)}</t:OriginalStart>" if original else "")
        + f"<t:Location>{escape(event.location)}</t:Location>"
        f"<t:CalendarItemType>{kind}</t:CalendarItemType>{organizer}{attendees}"
        "</t:CalendarItem>"
    )


def _envelope(operation: str, messages: str) -> bytes:
    return (
        f'<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="{SOAP}">'
        f"<s:Header>{VERSION_HEADER}</s:Header><s:Body>"
        f'<m:{operation}Response xmlns:m="{M}" xmlns:t="{T}"><m:ResponseMessages>{messages}'
        f"</m:ResponseMessages></m:{operation}Response></s:Body></s:Envelope>"
    ).encode()


def _ok(operation: str, inner: str) -> str:
    return (
        f'<m:{operation}ResponseMessage ResponseClass="Success">'
        f"<m:ResponseCode>NoError</m:ResponseCode>{inner}</m:{operation}ResponseMessage>"
    )


def _error(operation: str, code: str, text: str, inner: str = "") -> str:
    return (
        f'<m:{operation}ResponseMessage ResponseClass="Error">'
        f"<m:MessageText>{escape(text)}</m:MessageText><m:ResponseCode>{code}</m:ResponseCode>"
        f"<m:DescriptiveLinkKey>0</m:DescriptiveLinkKey>{inner}</m:{operation}ResponseMessage>"
    )


def _fault(code: str, text: str, message_xml: str = "") -> bytes:
    return (
        f'<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="{SOAP}"><s:Body><s:Fault>'
        f'<faultcode xmlns:a="{T}">a:{code}</faultcode>'
        f'<faultstring xml:lang="en-US">{escape(text)}</faultstring><detail>'
        f'<e:ResponseCode xmlns:e="{E}">{code}</e:ResponseCode>'
        f'<e:Message xmlns:e="{E}">{escape(text)}</e:Message>{message_xml}'
        "</detail></s:Fault></s:Body></s:Envelope>"
    ).encode()


def _busy_fault(back_off_ms: int) -> bytes:
    return _fault(
        "ErrorServerBusy",
        "The server cannot service this request right now. Try again later.",
        f'<t:MessageXml xmlns:t="{T}"><t:Value Name="BackOffMilliseconds">{back_off_ms}'
        "</t:Value></t:MessageXml>",
    )


def _handler(fake: FakeEws) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            if self.path.lower() != "/ews/exchange.asmx":
                status, answer = 404, b"Not Found"
            else:
                status, answer = fake.answer(body, self.headers.get("Authorization", ""))
            self.send_response(status)
            if status == 401:
                self.send_header("WWW-Authenticate", 'Basic realm="127.0.0.1"')
            self.send_header("Content-Type", "text/xml; charset=utf-8")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Handler


@asynccontextmanager
async def ews_source(root: Path) -> AsyncIterator[ContractSource]:
    """The contract driver of the `exchange` kind: one mailbox on a FakeEws of its own.
    Breaking it changes the service account's password: the login is refused (HTTP 401)."""
    with FakeEws.running(root) as fake:
        fake.add_mailbox("anna@ourco.example")
        numbers = itertools.count()

        async def add_items(n: int) -> None:
            for _ in range(n):
                number = next(numbers)
                fake.deliver(
                    "anna@ourco.example",
                    (
                        f"From: Kunde <kunde@firma.example>\r\nTo: anna@ourco.example\r\n"
                        f"Subject: Vertrag {number}\r\nMessage-ID: <c{number}@firma.example>\r\n"
                        f"Date: Tue, 9 Jan 2024 10:00:00 +0100\r\n\r\nText {number}\r\n"
                    ).encode(),
                )

        async def add_malformed() -> None:
            fake.deliver("anna@ourco.example", b"Subject: no sender, no date\r\n\r\nText\r\n")

        async def break_source() -> None:
            fake.password = "changed-" + fake.password

        yield ContractSource(
            "exchange",
            fake.settings("anna@ourco.example", calendar="off"),
            {"password": fake.password},
            add_items,
            add_malformed,
            break_source,
        )
