"""A local stand-in for Microsoft Graph and the Microsoft identity platform, over HTTPS.

No Graph tenant can run in CI, so the `m365` connector's tests talk to this fake. It answers with
the wire formats the Microsoft Learn Graph reference documents, and only those:
- token endpoint and OpenID discovery: "Microsoft identity platform and the OAuth 2.0 client
  credentials flow" (learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow)
  and "OpenID Connect on the Microsoft identity platform" (.../v2-protocols-oidc); error bodies
  `{"error", "error_description": "AADSTS90002: ..."}` as in "Microsoft Entra authentication
  and authorization error codes" (.../reference-error-codes).
- `GET /users/{id}/mailFolders/{id}/messages/delta`: "message: delta"
  (learn.microsoft.com/graph/api/message-delta) and "Get incremental changes to messages in a
  folder" (learn.microsoft.com/graph/delta-query-messages): pages with `@odata.nextLink`, a
  last page with `@odata.deltaLink`, removed items as `{"id", "@removed": {"reason"}}`,
  `Prefer: odata.maxpagesize`; an expired state answers 410 with code SyncStateNotFound
  ("Use delta query to track changes in Microsoft Graph data", learn.microsoft.com/graph/
  delta-query-overview).
- `GET /users/{id}/messages/{id}/$value`: "Get MIME content of a message"
  (learn.microsoft.com/graph/outlook-get-mime-message).
- `GET /users/{id}/calendarView/delta?startDateTime&endDateTime`: "event: delta"
  (learn.microsoft.com/graph/api/event-delta) and "Get incremental changes to events in a
  calendar view" (learn.microsoft.com/graph/delta-query-events): occurrences and exceptions of
  a series with `type`, `seriesMasterId`, `originalStart`; `GET /users/{id}/events/{id}`.
- `POST /$batch`: "Combine multiple HTTP requests using JSON batching"
  (learn.microsoft.com/graph/json-batching): at most 20 requests, non-JSON bodies base64.
- `POST /users/{id}/sendMail` with base64 MIME as text/plain, 202 Accepted, a copy in Sent
  Items: "user: sendMail" (learn.microsoft.com/graph/api/user-sendmail).
- `POST /users/{id}/events`: "Create event" (learn.microsoft.com/graph/api/user-post-events),
  201 with the event, its server-made `iCalUId` and its attendees (response `none`); "when an
  event is sent, the server sends invitations to all the attendees", which the fake records
  (`invitations`) instead of mailing; `POST /users/{id}/calendar/getSchedule`: "calendar:
  getSchedule" (learn.microsoft.com/graph/api/calendar-getschedule), busy `scheduleItems` per
  schedule.
- `GET /groups/{id}/members/microsoft.graph.user`: "List group members"
  (learn.microsoft.com/graph/api/group-list-members).
- 429 with Retry-After: "Microsoft Graph throttling guidance" (learn.microsoft.com/graph/
  throttling); error bodies `{"error": {"code", "message"}}` with ErrorAccessDenied,
  ErrorInvalidUser: "Microsoft Graph error responses and resource types"
  (learn.microsoft.com/graph/errors).
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import re
import ssl
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import trustme

from tests.connector_contract import ContractSource

ALL_ROLES = frozenset(
    {"Mail.Read", "Mail.Send", "Calendars.Read", "Calendars.ReadWrite", "GroupMember.Read.All"}
)
Answer = tuple[int, dict[str, str], bytes]


def mail(
    n: int,
    *,
    sender: str = "kunde@firma.example",
    to: str = "anna@ourco.example",
    subject: str = "Anfrage",
    extra: str = "",
    body: str = "",
) -> bytes:
    """A small RFC 5322 message with Message-ID <m{n}@firma.example>."""
    return (
        f"From: Kunde {n} <{sender}>\r\nTo: {to}\r\nSubject: {subject} {n}\r\n"
        f"Message-ID: <m{n}@firma.example>\r\nDate: Mon, 8 Jan 2024 09:{n % 60:02d}:00 +0100\r\n"
        f"{extra}\r\n{body or f'Text {n}'}\r\n"
    ).encode()


@dataclass
class Message:
    id: str
    mime: bytes
    seq: int
    sensitivity: str = "normal"
    categories: list[str] = field(default_factory=list)


@dataclass
class Folder:
    id: str
    name: str
    items: dict[str, Message] = field(default_factory=dict)
    removed: dict[str, int] = field(default_factory=dict)  # id -> seq of the removal
    generation: int = 0  # bumped to expire every delta link of the folder


@dataclass
class Mailbox:
    address: str
    folders: dict[str, Folder] = field(default_factory=dict)
    events: dict[str, tuple[dict[str, Any], int]] = field(default_factory=dict)
    masters: dict[str, dict[str, Any]] = field(default_factory=dict)
    calendar_generation: int = 0
    sent: list[bytes] = field(default_factory=list)


@dataclass
class Fault:
    pattern: str
    status: int
    times: int
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass(frozen=True)
class Invitation:
    """A meeting request Exchange Online sends when an event with attendees is created."""

    sender: str  # the organizer's mailbox
    attendees: list[str]
    ical_uid: str
    event_id: str


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.0000000Z")


def _error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "innerError": {"date": "2024-01-08"}}}


class GraphState:
    """The tenant as the fake sees it; tests change it between syncs (thread-safe)."""

    def __init__(self, tenant_id: str, client_id: str, secret: str) -> None:
        self.tenant_id, self.client_id, self.secret = tenant_id, client_id, secret
        self.consented = True
        self.roles: set[str] = set(ALL_ROLES)
        self.mailboxes: dict[str, Mailbox] = {}
        self.groups: dict[str, tuple[str, list[str]]] = {}
        self.faults: list[Fault] = []
        self.log: list[tuple[float, str, str]] = []  # (time, method, path?query)
        self.max_page = 1000  # the server's own cap on a page, below any Prefer
        self.delay = 0.0  # seconds every answer takes (to catch a sync in the middle)
        self.lock = threading.RLock()
        self._seq = itertools.count(1)
        self._ids = itertools.count(1)
        self._tokens: dict[str, frozenset[str]] = {}
        self._rounds: dict[tuple[Any, ...], list[tuple[int, dict[str, Any]]]] = {}
        self.log_requests = True
        self.created: list[dict[str, Any]] = []  # bodies of POST /users/{id}/events
        self.invitations: list[Invitation] = []  # what Exchange Online would have sent
        self.base = ""

    # --- tenant content -------------------------------------------------------------------
    def add_mailbox(self, address: str) -> Mailbox:
        with self.lock:
            box = Mailbox(address.lower())
            for wk, name in (
                ("inbox", "Inbox"),
                ("sentitems", "Sent Items"),
                ("archive", "Archive"),
            ):
                box.folders[wk] = Folder(f"AAMk{wk}{next(self._ids)}", name)
            self.mailboxes[box.address] = box
            return box

    def add_folder(self, address: str, name: str) -> None:
        with self.lock:
            self.mailboxes[address].folders[name.lower()] = Folder(f"AAMkf{next(self._ids)}", name)

    def add_message(
        self,
        address: str,
        mime: bytes,
        folder: str = "inbox",
        *,
        sensitivity: str = "normal",
        categories: list[str] | None = None,
    ) -> str:
        with self.lock:
            ident = f"AAkALgImmutable{next(self._ids):06d}="
            seq = next(self._seq)
            message = Message(ident, mime, seq, sensitivity, list(categories or []))
            self.mailboxes[address].folders[folder].items[ident] = message
            return ident

    def move(self, address: str, ident: str, source: str, target: str) -> None:
        """Move with the immutable id kept (Prefer: IdType="ImmutableId")."""
        with self.lock:
            box = self.mailboxes[address]
            message = box.folders[source].items.pop(ident)
            box.folders[source].removed[ident] = next(self._seq)
            message.seq = next(self._seq)
            box.folders[target].items[ident] = message

    def delete(self, address: str, ident: str, folder: str) -> None:
        with self.lock:
            self.mailboxes[address].folders[folder].items.pop(ident)
            self.mailboxes[address].folders[folder].removed[ident] = next(self._seq)

    def add_event(self, address: str, event: dict[str, Any]) -> None:
        with self.lock:
            self.mailboxes[address].events[event["id"]] = (event, next(self._seq))

    def add_series_master(self, address: str, master: dict[str, Any]) -> None:
        with self.lock:
            self.mailboxes[address].masters[master["id"]] = master

    def answer(self, address: str, event_id: str, attendee: str, response: str) -> None:
        """`attendee` answers the event in `address`'s calendar (accepted, declined,
        tentativelyAccepted), as Exchange records a reply: the event changes, so the calendar
        delta reports it again."""
        with self.lock:
            event, _ = self.mailboxes[address].events[event_id]
            for entry in event["attendees"]:
                if entry["emailAddress"]["address"].lower() == attendee.lower():
                    entry["status"] = {"response": response, "time": _now()}
            self.mailboxes[address].events[event_id] = (event, next(self._seq))

    def expire(self, address: str, folder: str | None = None) -> None:
        """Forget every delta link of a folder (or of the calendar): the next use answers 410."""
        with self.lock:
            box = self.mailboxes[address]
            if folder is None:
                box.calendar_generation += 1
            else:
                box.folders[folder].generation += 1

    def fail(
        self,
        pattern: str,
        status: int,
        *,
        times: int = 1,
        code: str = "",
        retry_after: int | None = None,
    ) -> None:
        """The next `times` requests whose path contains `pattern` answer `status`."""
        headers = {} if retry_after is None else {"Retry-After": str(retry_after)}
        body = _error(
            code
            or {429: "TooManyRequests", 503: "ServiceUnavailable", 504: "GatewayTimeout"}.get(
                status, "x"
            ),
            "injected",
        )
        with self.lock:
            self.faults.append(Fault(pattern, status, times, headers, body))

    def revoke_tokens(self) -> None:
        """Every access token issued so far answers 401 from now on (permissions changed)."""
        with self.lock:
            self._tokens.clear()

    def requests(self, pattern: str) -> list[tuple[float, str, str]]:
        with self.lock:
            return [entry for entry in self.log if pattern in entry[2]]

    # --- HTTP -----------------------------------------------------------------------------
    def handle(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Answer:
        parts = urlsplit(target)
        path, query = unquote(parts.path), parse_qs(parts.query)
        with self.lock:
            if self.log_requests:
                self.log.append((time.monotonic(), method, target))
            for fault in self.faults:
                if fault.times > 0 and fault.pattern in target:
                    fault.times -= 1
                    return fault.status, fault.headers, json.dumps(fault.body).encode()
        if path.startswith(f"/{self.tenant_id}/") or not path.startswith("/v1.0/"):
            return self._identity(method, path, body)
        roles = self._tokens.get(headers.get("authorization", "").removeprefix("Bearer "))
        if roles is None:
            return _json(401, _error("InvalidAuthenticationToken", "Access token is empty."))
        route = path.removeprefix("/v1.0")
        if route == "/$batch" and method == "POST":
            return self._batch(json.loads(body), headers)
        return self._graph(method, route, query, headers, body, roles)

    def _identity(self, method: str, path: str, body: bytes) -> Answer:
        tenant = path.strip("/").split("/")[0]
        if tenant != self.tenant_id:
            return _json(
                400,
                {
                    "error": "invalid_tenant",
                    "error_description": f"AADSTS90002: Tenant '{tenant}' not found. Check to make "
                    "sure you have the correct tenant ID and are signing into the correct cloud.",
                },
            )
        if path.endswith("/.well-known/openid-configuration"):
            root = f"{self.base}/{tenant}"
            return _json(
                200,
                {
                    "authorization_endpoint": f"{root}/oauth2/v2.0/authorize",
                    "token_endpoint": f"{root}/oauth2/v2.0/token",
                    "issuer": f"{self.base}/{tenant}/v2.0",
                },
            )
        if path.endswith("/oauth2/v2.0/token") and method == "POST":
            form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
            if form.get("client_id") != self.client_id:
                return _aad(
                    400,
                    "unauthorized_client",
                    f"AADSTS700016: Application with "
                    f"identifier '{form.get('client_id')}' was not found in the directory.",
                )
            if form.get("client_secret") != self.secret:
                return _aad(401, "invalid_client", "AADSTS7000215: Invalid client secret provided.")
            if not self.consented:
                return _aad(
                    400,
                    "invalid_client",
                    "AADSTS7000229: The client application "
                    f"{self.client_id} is missing service principal in the tenant.",
                )
            token = f"fake-{next(self._ids)}"
            with self.lock:
                self._tokens[token] = frozenset(self.roles)
            return _json(200, {"token_type": "Bearer", "expires_in": 3599, "access_token": token})
        return _json(404, {"error": "not_found"})

    def _graph(
        self,
        method: str,
        route: str,
        query: dict[str, list[str]],
        headers: dict[str, str],
        body: bytes,
        roles: frozenset[str],
    ) -> Answer:
        denied = _json(
            403, _error("ErrorAccessDenied", "Access is denied. Check credentials and try again.")
        )
        if route.startswith("/groups"):
            if "GroupMember.Read.All" not in roles:
                return _json(
                    403,
                    _error(
                        "Authorization_RequestDenied",
                        "Insufficient privileges to complete the operation.",
                    ),
                )
            return self._groups(route, query)
        found = re.match(r"^/users/([^/]+)(/.*)?$", route)
        if not found:
            return _json(400, _error("BadRequest", f"Unsupported path {route}"))
        address, rest = found.group(1).lower(), found.group(2) or ""
        wants = (
            "Mail.Send"
            if rest == "/sendMail"
            else ("Calendars.Read" if rest.startswith(("/calendar", "/events")) else "Mail.Read")
        )
        if method == "POST" and rest == "/events":
            wants = "Calendars.ReadWrite"
        if wants not in roles:
            return denied
        box = self.mailboxes.get(address)
        if box is None:
            return _json(
                404, _error("ErrorInvalidUser", f"The requested user '{address}' is invalid.")
            )
        page = _page_size(headers, self.max_page)
        with self.lock:
            if m := re.match(r"^/mailFolders/([^/]+)/messages/delta$", rest):
                return self._message_delta(box, m.group(1), query, page)
            if m := re.match(r"^/mailFolders/([^/]+)$", rest):
                folder = self._folder(box, m.group(1))
                if folder is None:
                    return _json(
                        404,
                        _error(
                            "ErrorItemNotFound", "The specified object was not found in the store."
                        ),
                    )
                return _json(
                    200,
                    {
                        "id": folder.id,
                        "displayName": folder.name,
                        "totalItemCount": len(folder.items),
                    },
                )
            if rest == "/mailFolders":
                wanted = re.findall(r"displayName eq '([^']*)'", query.get("$filter", [""])[0])
                hits = [f for f in box.folders.values() if not wanted or f.name == wanted[0]]
                return _json(200, {"value": [{"id": f.id, "displayName": f.name} for f in hits]})
            if m := re.match(r"^/messages/([^/]+)/\$value$", rest):
                for folder in box.folders.values():
                    if m.group(1) in folder.items:
                        return 200, {"Content-Type": "text/plain"}, folder.items[m.group(1)].mime
                return _json(
                    404,
                    _error("ErrorItemNotFound", "The specified object was not found in the store."),
                )
            if rest == "/calendarView/delta":
                return self._event_delta(box, query, page)
            if rest == "/calendar":
                return _json(200, {"id": "AAMkcal", "name": "Calendar"})
            if rest == "/events" and method == "POST":
                return self._create_event(box, json.loads(body))
            if rest == "/calendar/getSchedule" and method == "POST":
                return self._schedule(json.loads(body))
            if m := re.match(r"^/events/([^/]+)$", rest):
                master = box.masters.get(m.group(1))
                if master is None:
                    return _json(
                        404,
                        _error(
                            "ErrorItemNotFound", "The specified object was not found in the store."
                        ),
                    )
                return _json(200, master)
            if rest == "/sendMail" and method == "POST":
                if headers.get("content-type", "").split(";")[0] != "text/plain":
                    return _json(
                        400,
                        _error(
                            "ErrorMimeContentInvalidBase64String",
                            "Invalid base64 string for MIME content.",
                        ),
                    )
                mime = base64.b64decode(body, validate=True)
                box.sent.append(mime)
                self.add_message(address, mime, "sentitems")
                return 202, {}, b""
        return _json(400, _error("BadRequest", f"Unsupported path {route}"))

    def _folder(self, box: Mailbox, ref: str) -> Folder | None:
        if ref.lower() in box.folders:
            return box.folders[ref.lower()]
        return next((f for f in box.folders.values() if f.id == ref), None)

    def _link(self, route: str, kind: str, state: dict[str, Any]) -> str:
        token = base64.urlsafe_b64encode(json.dumps(state).encode()).decode()
        return f"{self.base}/v1.0{route}?${kind}={token}"

    def _state(self, query: dict[str, list[str]]) -> dict[str, Any] | None:
        token = (query.get("$skiptoken") or query.get("$deltatoken") or [""])[0]
        return json.loads(base64.urlsafe_b64decode(token)) if token else None

    def _message_delta(
        self, box: Mailbox, ref: str, query: dict[str, list[str]], page: int
    ) -> Answer:
        folder = self._folder(box, ref)
        if folder is None:
            return _json(
                404, _error("ErrorItemNotFound", "The specified object was not found in the store.")
            )
        state = self._state(query)
        if state is None:
            selected = (query.get("$select") or [""])[0].split(",")
            state = {
                "since": 0,
                "upto": -1,
                "skip": 0,
                "gen": folder.generation,
                "select": selected,
            }
        if state["gen"] != folder.generation:
            return _json(
                410, _error("SyncStateNotFound", "The sync state generation is not found.")
            )
        if state["upto"] < 0:  # a new round: it covers what exists now
            state["upto"] = next(self._seq)
        since, upto = state["since"], state["upto"]
        key = (folder.id, since, upto, tuple(state["select"]))
        rows = self._rounds.get(key)
        if rows is None:  # a round's listing, kept while its pages are read (a snapshot)
            rows = [
                (m.seq, _message_row(m, folder, state["select"]))
                for m in folder.items.values()
                if since < m.seq <= upto
            ]
            if since:
                rows += [
                    (s, {"id": i, "@removed": {"reason": "deleted"}})
                    for i, s in folder.removed.items()
                    if since < s <= upto
                ]
            rows.sort(key=_first)
            self._rounds = {**dict(list(self._rounds.items())[-15:]), key: rows}
        chunk = rows[state["skip"] : state["skip"] + page]
        route = f"/users/{box.address}/mailFolders/{ref}/messages/delta"
        doc: dict[str, Any] = {"@odata.context": "...", "value": [r for _, r in chunk]}
        if state["skip"] + page < len(rows):
            doc["@odata.nextLink"] = self._link(
                route, "skiptoken", {**state, "skip": state["skip"] + page}
            )
        else:
            doc["@odata.deltaLink"] = self._link(
                route, "deltatoken", {**state, "since": upto, "upto": -1, "skip": 0}
            )
        return _json(200, doc)

    def _event_delta(self, box: Mailbox, query: dict[str, list[str]], page: int) -> Answer:
        state = self._state(query)
        if state is None:
            if not query.get("startDateTime") or not query.get("endDateTime"):
                return _json(
                    400,
                    _error("ErrorInvalidParameter", "startDateTime and endDateTime are required."),
                )
            state = {"since": 0, "upto": -1, "skip": 0, "gen": box.calendar_generation}
        if state["gen"] != box.calendar_generation:
            return _json(
                410, _error("SyncStateNotFound", "The sync state generation is not found.")
            )
        if state["upto"] < 0:
            state["upto"] = next(self._seq)
        since, upto = state["since"], state["upto"]
        rows = sorted(((s, e) for e, s in box.events.values() if since < s <= upto), key=_first)
        chunk = rows[state["skip"] : state["skip"] + page]
        route = f"/users/{box.address}/calendarView/delta"
        doc: dict[str, Any] = {"value": [e for _, e in chunk]}
        if state["skip"] + page < len(rows):
            doc["@odata.nextLink"] = self._link(
                route, "skiptoken", {**state, "skip": state["skip"] + page}
            )
        else:
            doc["@odata.deltaLink"] = self._link(
                route, "deltatoken", {**state, "since": state["upto"], "upto": -1, "skip": 0}
            )
        return _json(200, doc)

    def _create_event(self, box: Mailbox, doc: dict[str, Any]) -> Answer:
        """ "Create event" (learn.microsoft.com/graph/api/user-post-events): 201 with the event,
        its `id` and `iCalUId` made by the server (a caller's UID is not taken), its attendees
        with response `none`. Exchange Online would mail each attendee the meeting request
        from the organizer's mailbox; the fake records it (`invitations`) and what it was
        asked (`created`)."""
        for key in ("start", "end"):
            if not isinstance(doc.get(key), dict) or not doc[key].get("dateTime"):
                return _json(400, _error("ErrorInvalidRequest", f"{key} is required."))
        attendees = [
            {
                "type": str(entry.get("type") or "required").lower(),
                "status": {"response": "none", "time": "0001-01-01T00:00:00Z"},
                "emailAddress": entry["emailAddress"],
            }
            for entry in doc.get("attendees") or []
        ]
        n = next(self._ids)
        event = {
            **doc,
            "id": f"AAMkevent{n:06d}=",
            "iCalUId": f"040000008200E00074C5B7101A82E0080000000000000000000000000000{n:06d}",
            "type": "singleInstance",
            "isOrganizer": True,
            "responseStatus": {"response": "organizer", "time": "0001-01-01T00:00:00Z"},
            "organizer": {"emailAddress": {"address": box.address, "name": ""}},
            "attendees": attendees,
            "bodyPreview": str((doc.get("body") or {}).get("content", ""))[:255],
        }
        self.created.append(doc)
        if attendees:
            self.invitations.append(
                Invitation(
                    box.address,
                    [a["emailAddress"]["address"] for a in attendees],
                    event["iCalUId"],
                    event["id"],
                )
            )
        self.add_event(box.address, event)
        return _json(201, event)

    def _schedule(self, doc: dict[str, Any]) -> Answer:
        """ "calendar: getSchedule" (learn.microsoft.com/graph/api/calendar-getschedule): per
        schedule its busy `scheduleItems` in the window, times in the zone asked (UTC only
        here), or an `error` for an address without a mailbox."""
        if doc.get("startTime", {}).get("timeZone") != "UTC":
            return _json(400, _error("ErrorInvalidRequest", "the fake answers in UTC only"))
        start = _utc(doc["startTime"]["dateTime"])
        end = _utc(doc["endTime"]["dateTime"])
        out = []
        for address in doc.get("schedules") or []:
            box = self.mailboxes.get(str(address).lower())
            if box is None:
                out.append(
                    {
                        "scheduleId": address,
                        "error": {
                            "message": "The SMTP address has no mailbox associated with it.",
                            "responseCode": "ErrorMailRecipientNotFound",
                        },
                    }
                )
                continue
            items = []
            for event, _ in box.events.values():
                begins, ends = _utc(event["start"]["dateTime"]), _utc(event["end"]["dateTime"])
                if begins < end and ends > start:
                    items.append(
                        {
                            "isPrivate": False,
                            "status": event.get("showAs") or "busy",
                            "subject": event.get("subject", ""),
                            "start": {"dateTime": event["start"]["dateTime"], "timeZone": "UTC"},
                            "end": {"dateTime": event["end"]["dateTime"], "timeZone": "UTC"},
                        }
                    )
            out.append({"scheduleId": address, "availabilityView": "", "scheduleItems": items})
        return _json(200, {"value": out})

    def _groups(self, route: str, query: dict[str, list[str]]) -> Answer:
        if route == "/groups":
            wanted = re.findall(r"mail eq '([^']*)'", query.get("$filter", [""])[0])
            hits = [gid for gid, (m, _) in self.groups.items() if wanted and m == wanted[0]]
            return _json(200, {"value": [{"id": gid} for gid in hits]})
        found = re.match(r"^/groups/([^/]+)/members(/microsoft\.graph\.user)?$", route)
        if not found or found.group(1) not in self.groups:
            return _json(
                404, _error("Request_ResourceNotFound", f"Resource '{route}' does not exist.")
            )
        members = self.groups[found.group(1)][1]
        return _json(
            200,
            {
                "value": [
                    {
                        "@odata.type": "#microsoft.graph.user",
                        "id": f"u{i}",
                        "mail": m,
                        "userPrincipalName": m,
                    }
                    for i, m in enumerate(members)
                ]
            },
        )

    def _batch(self, doc: dict[str, Any], headers: dict[str, str]) -> Answer:
        requests = doc.get("requests", [])
        if len(requests) > 20:
            return _json(
                400, _error("BadRequest", "Number of batch requests exceeds the limit of 20.")
            )
        answers = []
        for request in requests:
            status, sub_headers, body = self.handle(
                request.get("method", "GET"), "/v1.0" + request["url"], headers, b""
            )
            if sub_headers.get("Content-Type", "").startswith("application/json"):
                content: Any = json.loads(body)
            else:
                content = base64.b64encode(body).decode()
            answers.append(
                {"id": request["id"], "status": status, "headers": sub_headers, "body": content}
            )
        return _json(200, {"responses": answers})


def _message_row(message: Message, folder: Folder, selected: list[str]) -> dict[str, Any]:
    full = {
        "@odata.type": "#microsoft.graph.message",
        "id": message.id,
        "internetMessageId": (re.search(rb"Message-ID: (<[^>]+>)", message.mime) or [b"", b""])[
            1
        ].decode(),
        "sensitivity": message.sensitivity,
        "categories": message.categories,
        "parentFolderId": folder.id,
        "subject": "(not selected)",
    }
    return {k: v for k, v in full.items() if k in selected or k in ("@odata.type", "id")}


def _utc(value: str) -> datetime:
    """A Graph dateTime (seven fractional digits at most) read as UTC."""
    return datetime.fromisoformat(value[:19]).replace(tzinfo=UTC)


def _first(row: tuple[int, Any]) -> int:
    return row[0]


def _page_size(headers: dict[str, str], cap: int) -> int:
    found = re.search(r"odata\.maxpagesize=(\d+)", headers.get("prefer", ""))
    return min(int(found.group(1)) if found else 10, cap)


def _json(status: int, doc: dict[str, Any]) -> Answer:
    return status, {"Content-Type": "application/json"}, json.dumps(doc).encode()


def _aad(status: int, error: str, description: str) -> Answer:
    return _json(
        status,
        {
            "error": error,
            "error_description": description,
            "error_codes": [int(re.findall(r"AADSTS(\d+)", description)[0])],
        },
    )


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as Graph
    state: GraphState

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        if self.state.delay:
            time.sleep(self.state.delay)
        status, out_headers, out = self.state.handle(self.command, self.path, headers, body)
        self.send_response(status)
        for key, value in out_headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    do_GET = do_POST = _serve


@dataclass
class GraphFake:
    state: GraphState
    url: str  # https://127.0.0.1:PORT, both graph_url and authority_url
    ca_file: Path

    def settings(self, **more: str) -> dict[str, str]:
        """Connector settings for this fake (mailboxes etc. go into `more`)."""
        return {
            "tenant_id": self.state.tenant_id,
            "client_id": self.state.client_id,
            "graph_url": self.url,
            "authority_url": self.url,
            "ca_file": str(self.ca_file),
            **more,
        }

    @property
    def secrets(self) -> dict[str, str]:
        return {"client_secret": self.state.secret}


@contextlib.contextmanager
def start_graph_fake(
    directory: Path, tenant_id: str = "contoso-tenant-0001"
) -> Iterator[GraphFake]:
    """A threaded HTTPS server on 127.0.0.1 (a free port), certificate from a fresh test CA."""
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    cert.configure_cert(context)
    ca_file = directory / "graph-fake-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    state = GraphState(tenant_id, "11111111-2222-3333-4444-555555555555", "fake-client-secret")
    handler = type("Handler", (_Handler,), {"state": state})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    server.socket = context.wrap_socket(
        server.socket, server_side=True, do_handshake_on_connect=False
    )
    state.base = f"https://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield GraphFake(state, state.base, ca_file)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@contextlib.asynccontextmanager
async def graph_source(directory: Path) -> AsyncIterator[ContractSource]:
    """The connector contract's driver for `m365` (tests/connector_contract.py): one mailbox's
    inbox on a fake of its own."""
    with start_graph_fake(directory) as fake:
        address = "contract@ourco.example"
        fake.state.add_mailbox(address)
        numbers = itertools.count(1)

        async def add_items(n: int) -> None:
            for _ in range(n):
                fake.state.add_message(address, mail(next(numbers), to=address))

        async def add_malformed() -> None:
            fake.state.add_message(address, b"this is no mail at all\r\n")

        async def break_source() -> None:
            fake.state.roles = set()  # the admin withdrew the consented permissions
            fake.state.revoke_tokens()

        yield ContractSource(
            "m365",
            fake.settings(mailboxes=address, folders="inbox", calendar="off"),
            fake.secrets,
            add_items,
            add_malformed,
            break_source,
        )
