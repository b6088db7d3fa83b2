"""Microsoft 365 mailboxes and calendars over Microsoft Graph, app-only (client credentials).

One connector reads a tenant's list of mailboxes (`mailboxes`) or a group's members (`group`).
Per mailbox and folder a message delta query lists what is new, changed or gone; each page's
`@odata.nextLink` (mid-round) or `@odata.deltaLink` (round done) goes into the cursor committed
with that page's items, so a crash resumes at the page after the last stored one. Only a few
fields are asked for (`$select`); the raw MIME comes from `/messages/{id}/$value`, twenty at a
time through `$batch`, and goes through the shared mail translator. Ids are immutable ids
(`Prefer: IdType="ImmutableId"`), so a message moved between synced folders keeps its
external id, and its Message-ID makes storage recognise it anyway.

Private items are never downloaded: sensitivity Private or Personal, a category or folder named
by `private_marker`. A delta link Graph has forgotten (410 SyncStateNotFound) restarts that
folder from scratch; storage recognises every item it has, so nothing doubles. Throttling (429,
503, 504) becomes TransientError with Graph's Retry-After: the base class waits and resumes.
Meetings come from a calendarView delta over the hub's calendar window (see m365_events.py).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import getaddresses, parseaddr
from typing import Any, ClassVar
from urllib.parse import quote, urlsplit

import httpx

from connectors import m365_booking
from connectors.base import (
    SWITCH,
    Booked,
    CalendarWriter,
    ConfigurationError,
    ConnectorError,
    MailSender,
    SendResult,
    TransientError,
)
from connectors.calendar import translate_event as translate_ics
from connectors.m365_events import SERIES_UID, private_reason, translate_event
from connectors.m365_graph import (
    GraphError,
    GraphSettings,
    SyncStateGone,
    batch_body,
    check_answer,
    client_for,
    tokens_for,
)
from connectors.mail import strip_attachment_bodies, translate_in
from hub.model import Interaction, RawItem

log = logging.getLogger(__name__)

PAGE_SIZE = 100  # Prefer: odata.maxpagesize; Graph's own default for messages is 10
BATCH = 20  # Graph's limit of requests per $batch
PARALLEL = 4  # $batch requests (or single $value GETs x 5) in flight per connector
SELECT = "id,internetMessageId,sensitivity,categories,parentFolderId"
WELL_KNOWN = {"inbox", "sentitems", "drafts", "archive", "deleteditems", "junkemail", "outbox"}
WINDOW_SLACK = timedelta(days=7)  # the calendar window moves when now drifts this far
SENT_ITEMS = "Sent Items"


class M365Connector(MailSender, CalendarWriter):
    kind = "m365"
    options: ClassVar[dict[str, str]] = {
        "tenant_id": "the directory (tenant) id, or a verified domain such as ourco.example",
        "client_id": "the app registration's Application (client) ID",
        "mailboxes": "comma-separated mailbox addresses to read (or group)",
        "group": "a group's object id or mail address: its members' mailboxes are read",
        "folders": "comma-separated folders: well-known names (inbox, sentitems, archive) or "
        "display names (default inbox,sentitems)",
        "calendar": "on (default) or off: meetings from each mailbox's calendar",
        "graph_url": "Graph endpoint (default https://graph.microsoft.com; national clouds: "
        "https://graph.microsoft.us, https://microsoftgraph.chinacloudapi.cn)",
        "authority_url": "sign-in endpoint (default https://login.microsoftonline.com; "
        "https://login.microsoftonline.us, https://login.chinacloudapi.cn)",
        "ca_file": "PEM file of the CA for a TLS-inspecting proxy (default: system CAs)",
        "timeout": "seconds to wait for any answer (default 60)",
        "retries": "retries after throttling or a dropped connection (default 5)",
    }
    required: ClassVar[tuple[str, ...]] = ("tenant_id", "client_id")
    example: ClassVar[dict[str, str]] = {
        "tenant_id": "ourco.onmicrosoft.com",
        "client_id": "00000000-0000-0000-0000-000000000000",
        "mailboxes": "anna@ourco.example",
    }
    secret_options: ClassVar[dict[str, str]] = {
        "client_secret": "a client secret of the app registration (Certificates & secrets)"
    }
    batch_size: ClassVar[int] = PAGE_SIZE
    interval: ClassVar[float] = 120.0  # Graph delta tokens make a pass without changes cheap
    use_batch: bool = True  # MIME through $batch (bench/graph_sync.py measures both ways)

    @classmethod
    def validate_settings(cls, settings: Mapping[str, str]) -> None:
        super().validate_settings(settings)
        mailboxes, group = settings.get("mailboxes", ""), settings.get("group", "")
        if bool(_split(mailboxes)) == bool(group.strip()):
            raise ConfigurationError(
                "m365: set exactly one of mailboxes (--set mailboxes=anna@ourco.example,...) "
                "or group (--set group=GROUP_ID_OR_MAIL)"
            )
        for address in _split(mailboxes):
            if "@" not in address:
                raise ConfigurationError(f"m365: mailboxes: {address!r} is not a mail address")
        if str(settings.get("calendar", "on")).lower() not in SWITCH:
            raise ConfigurationError(f"m365: calendar={settings['calendar']!r}; use on or off")
        if "folders" in settings and not _split(settings["folders"]):
            raise ConfigurationError("m365: folders is empty; leave it out for inbox,sentitems")
        for key in ("graph_url", "authority_url"):
            value = settings.get(key)
            if value is not None and (
                urlsplit(value).scheme != "https" or not urlsplit(value).hostname
            ):
                raise ConfigurationError(
                    f"m365: {key}={value!r} is not an https URL (like https://graph.microsoft.com)"
                )
        cls.require_numbers(settings, "timeout")
        cls.require_numbers(settings, "retries", zero=True)

    @classmethod
    def mailbox_owner(cls, settings: Mapping[str, str]) -> str:
        """`owner`, else the mailbox when exactly one is read; each item also names its own
        mailbox (RawItem.owner), as a tenant connector reads many."""
        if owner := (settings.get("owner") or "").strip():
            return owner
        mailboxes = _split(settings.get("mailboxes", ""))
        return mailboxes[0] if len(mailboxes) == 1 else ""

    @classmethod
    def senders(cls, settings: Mapping[str, str]) -> tuple[str, ...]:
        """The listed mailboxes: each owner sends as their own. A `group`'s members are known
        only by asking Graph, so with a group only the `owner` setting sends."""
        return tuple(_split(settings.get("mailboxes", ""))) or super().senders(settings)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        s = self.settings
        self.graph = GraphSettings(
            tenant_id=s["tenant_id"].strip(),
            client_id=s["client_id"].strip(),
            client_secret=self.secrets.get("client_secret", ""),
            graph_url=(s.get("graph_url") or "https://graph.microsoft.com").rstrip("/"),
            authority_url=(s.get("authority_url") or "https://login.microsoftonline.com").rstrip(
                "/"
            ),
            ca_file=s.get("ca_file") or "",
            timeout=float(s.get("timeout") or 60),
        )
        self.tokens = tokens_for(self.name, self.graph)

    # --- requests -------------------------------------------------------------------------

    async def _request(
        self,
        client: httpx.AsyncClient,
        method: str,
        url: str,
        what: str,
        mailbox: str = "",
        **kwargs: Any,
    ) -> httpx.Response:
        if not self.graph.client_secret:
            raise ConfigurationError(
                f"{self.name}: no client_secret stored; add the connector again with "
                "--secret client_secret=ENV_VAR"
            )
        if not url.startswith("http"):
            url = self.graph.api + url
        headers = {
            "Prefer": f'odata.maxpagesize={PAGE_SIZE}, IdType="ImmutableId", '
            'outlook.timezone="UTC"',
            **kwargs.pop("headers", {}),
        }
        try:
            for fresh in (False, True):  # a token revoked early (401): one new token, once
                headers["Authorization"] = f"Bearer {await self.tokens.get(fresh=fresh)}"
                response = await client.request(method, url, headers=headers, **kwargs)
                if response.status_code != 401:
                    break
        except httpx.ConnectError as e:
            if "CERTIFICATE_VERIFY_FAILED" in str(e):
                raise ConnectorError(
                    f"{self.name}: the certificate of {urlsplit(url).hostname} is not trusted "
                    f"({e}); behind a TLS-inspecting proxy set ca_file to its CA's PEM file"
                ) from e
            raise TransientError(f"cannot reach {urlsplit(url).hostname}: {e}") from e
        except httpx.TransportError as e:
            raise TransientError(f"connection to Graph lost: {e!r}") from e
        check_answer(self.name, response, what, mailbox, self.graph)
        return response

    async def _json(
        self, client: httpx.AsyncClient, url: str, what: str, mailbox: str = ""
    ) -> dict[str, Any]:
        response = await self._request(client, "GET", url, what, mailbox)
        doc = response.json()
        if not isinstance(doc, dict):
            raise ConnectorError(f"{self.name}: Graph answered {url} with {str(doc)[:80]!r}")
        return doc

    async def _mailboxes(self, client: httpx.AsyncClient) -> list[str]:
        """The configured mailboxes, or the members (with a mailbox) of the group."""
        listed = _split(self.settings.get("mailboxes", ""))
        if listed:
            return [m.lower() for m in listed]
        group = self.settings["group"].strip()
        if "@" in group:
            found = await self._json(
                client, f"/groups?$filter=mail eq '{quote(group)}'&$select=id", "group", group
            )
            if not found.get("value"):
                raise GraphError(f"{self.name}: no group with the mail address {group!r}")
            group = str(found["value"][0]["id"])
        url: str | None = (
            f"/groups/{quote(group)}/members/microsoft.graph.user?$select=mail,userPrincipalName"
        )
        members: list[str] = []
        while url:
            page = await self._json(client, url, "group", group)
            members += [str(m["mail"]).lower() for m in page.get("value", []) if m.get("mail")]
            url = page.get("@odata.nextLink")
        return sorted(set(members))

    # --- fetching -------------------------------------------------------------------------

    async def _fetch(
        self, cursor: dict[str, Any]
    ) -> AsyncIterator[tuple[list[RawItem], dict[str, Any]]]:
        state: dict[str, Any] = json.loads(json.dumps(cursor))  # a deep copy of plain JSON
        boxes: dict[str, Any] = state.setdefault("mailboxes", {})
        folders = _split(self.settings.get("folders", "inbox,sentitems"))
        calendar = SWITCH[str(self.settings.get("calendar", "on")).lower()]
        async with client_for(self.graph) as client:
            for mailbox in await self._mailboxes(client):
                box = boxes.setdefault(mailbox, {})
                box.setdefault("folders", {})
                for folder in folders:
                    async for raws in self._folder(client, mailbox, folder, box):
                        yield raws, json.loads(json.dumps(state))
                if calendar:
                    async for raws in self._calendar(client, mailbox, box):
                        yield raws, json.loads(json.dumps(state))

    async def _folder_ref(
        self, client: httpx.AsyncClient, mailbox: str, folder: str
    ) -> tuple[str, str]:
        """The folder's path segment and display name: a well-known name as it is, a display
        name looked up (top-level folders)."""
        if folder.lower() in WELL_KNOWN:
            return folder.lower(), folder
        found = await self._json(
            client,
            f"/users/{quote(mailbox)}/mailFolders?$filter=displayName eq "
            f"'{quote(folder)}'&$select=id,displayName",
            "mailbox",
            mailbox,
        )
        if not found.get("value"):
            raise ConnectorError(f"{self.name}: {mailbox} has no folder {folder!r}")
        return str(found["value"][0]["id"]), folder

    async def _folder(
        self, client: httpx.AsyncClient, mailbox: str, folder: str, box: dict[str, Any]
    ) -> AsyncIterator[list[RawItem]]:
        links: dict[str, str] = box["folders"]
        restarted = False
        private_folder = self.private_folder([folder])
        ref = ""
        while True:
            link = links.get(folder)
            if not link:
                ref = ref or (await self._folder_ref(client, mailbox, folder))[0]
                link = (
                    f"/users/{quote(mailbox)}/mailFolders/{quote(ref)}/messages/delta"
                    f"?$select={SELECT}"
                )
            try:
                page = await self._json(client, link, "messages", mailbox)
            except SyncStateGone as e:
                if restarted or folder not in links:
                    raise ConnectorError(
                        f"{self.name}: Graph keeps refusing the delta of {mailbox}/{folder} ({e})"
                    ) from e
                log.warning(
                    "%s: delta link of %s/%s expired; reading the folder again, "
                    "recognising known mail",
                    self.name,
                    mailbox,
                    folder,
                )
                links.pop(folder)
                restarted = True
                continue
            raws = await self._messages(client, mailbox, page.get("value", []), private_folder)
            following = page.get("@odata.nextLink")
            links[folder] = str(following or page.get("@odata.deltaLink") or "")
            yield raws
            if not following:
                return

    async def _messages(
        self, client: httpx.AsyncClient, mailbox: str, entries: list[Any], private_folder: str
    ) -> list[RawItem]:
        raws: dict[str, RawItem] = {}
        wanted: list[str] = []
        for entry in entries:
            if not isinstance(entry, dict) or "@removed" in entry or not entry.get("id"):
                continue  # deleted, or moved out: a move shows up in the folder it went to
            ident = str(entry["id"])
            why = private_folder or private_reason(entry, self.private_markers)
            if why:
                raws[ident] = RawItem(ident, b"", private=why, owner=mailbox)
            else:
                wanted.append(ident)
                raws[ident] = RawItem(ident, b"", owner=mailbox)  # placeholder, keeps order
        bodies = await self._bodies(client, mailbox, wanted)
        out: list[RawItem] = []
        max_bytes = self.context.max_message_bytes
        for ident, raw in raws.items():
            if raw.private:
                out.append(raw)
            elif (data := bodies.get(ident)) is not None:  # None: deleted since the delta
                if len(data) > max_bytes:
                    data = strip_attachment_bodies(data)
                out.append(RawItem(ident, data, owner=mailbox))
        return out

    async def _bodies(
        self, client: httpx.AsyncClient, mailbox: str, ids: list[str]
    ) -> dict[str, bytes]:
        """The MIME of each message, fetched `PARALLEL` requests at a time."""
        limit = asyncio.Semaphore(PARALLEL if self.use_batch else PARALLEL * 5)
        bodies: dict[str, bytes] = {}

        async def single(ident: str) -> None:
            async with limit:
                url = f"/users/{quote(mailbox)}/messages/{quote(ident)}/$value"
                try:
                    response = await self._request(client, "GET", url, "messages", mailbox)
                except GraphError as e:
                    if e.status == 404:
                        return
                    raise
                bodies[ident] = response.content

        async def batch(chunk: list[str]) -> None:
            async with limit:
                requests = [
                    {
                        "id": str(n),
                        "method": "GET",
                        "url": f"/users/{quote(mailbox)}/messages/{quote(ident)}/$value",
                    }
                    for n, ident in enumerate(chunk)
                ]
                response = await self._request(
                    client, "POST", "/$batch", "messages", mailbox, json={"requests": requests}
                )
            for answer in response.json().get("responses", []):
                ident = chunk[int(answer["id"])]
                status = int(answer.get("status", 0))
                if status == 404:
                    continue
                if status >= 300:
                    body = answer.get("body")
                    fake = httpx.Response(
                        status,
                        headers=answer.get("headers") or {},
                        json=body if isinstance(body, dict) else {},
                    )
                    check_answer(self.name, fake, "messages", mailbox, self.graph)
                bodies[ident] = batch_body(answer.get("body", ""))

        if self.use_batch:
            chunks = [ids[i : i + BATCH] for i in range(0, len(ids), BATCH)]
            await _gather([batch(c) for c in chunks])
        else:
            await _gather([single(i) for i in ids])
        return bodies

    async def _calendar(
        self, client: httpx.AsyncClient, mailbox: str, box: dict[str, Any]
    ) -> AsyncIterator[list[RawItem]]:
        now = datetime.now(UTC)
        mark = box.get("calendar") or {}
        centre = datetime.fromisoformat(mark["centre"]) if mark.get("centre") else None
        if centre is None or abs(now - centre) > WINDOW_SLACK:
            mark = {"centre": now.isoformat(), "link": ""}  # a new window; known ones dedupe
            centre = now
        days = timedelta(days=self.context.calendar_window_days)
        masters: dict[str, str] = {}
        restarted = False
        while True:
            link = mark["link"] or (
                f"/users/{quote(mailbox)}/calendarView/delta?startDateTime="
                f"{_iso(centre - days)}&endDateTime={_iso(centre + days)}"
            )
            try:
                page = await self._json(client, link, "calendar", mailbox)
            except SyncStateGone as e:
                if restarted or not mark["link"]:
                    raise ConnectorError(
                        f"{self.name}: Graph keeps refusing the calendar delta of {mailbox} ({e})"
                    ) from e
                mark["link"], restarted = "", True
                continue
            raws = []
            for event in page.get("value", []):
                if not isinstance(event, dict) or "@removed" in event or not event.get("id"):
                    continue
                raws.append(await self._event(client, mailbox, event, masters))
            following = page.get("@odata.nextLink")
            mark["link"] = str(following or page.get("@odata.deltaLink") or "")
            box["calendar"] = mark
            yield raws
            if not following:
                return

    async def _event(
        self,
        client: httpx.AsyncClient,
        mailbox: str,
        event: dict[str, Any],
        masters: dict[str, str],
    ) -> RawItem:
        ident = f"event:{event['id']}"
        why = private_reason(event, self.private_markers)
        if why:
            return RawItem(ident, b"", "application/json", private=why, owner=mailbox)
        master = event.get("seriesMasterId")
        if master and event.get("type") in ("occurrence", "exception"):
            if master not in masters:
                found = await self._json(
                    client,
                    f"/users/{quote(mailbox)}/events/{quote(str(master))}?$select=iCalUId",
                    "calendar",
                    mailbox,
                )
                masters[master] = str(found.get("iCalUId") or "")
            event = {**event, SERIES_UID: masters[master]}
        return RawItem(ident, json.dumps(event).encode(), "application/json", owner=mailbox)

    def translate(self, raw: RawItem) -> Interaction:
        if raw.content_type == "application/json":
            return translate_event(raw.data)
        if raw.content_type == "text/calendar":  # a meeting booked through crmhub (hub.booking)
            return translate_ics(self.context, raw.data, raw.external_id)
        return translate_in(self.context, raw.data)

    # --- booking (CalendarWriter) ---------------------------------------------------------

    async def _book(self, event: bytes, organizer: str) -> Booked:
        """POST /users/{organizer}/events with the attendees: Exchange Online invites them
        from the organizer's mailbox, under the iCalUId it answers with (see m365_booking)."""
        mailbox = self._own_mailbox(organizer)
        async with client_for(self.graph) as client:
            response = await self._request(
                client,
                "POST",
                f"/users/{quote(mailbox)}/events",
                "book",
                mailbox,
                json=m365_booking.event_json(event),
            )
        uid = m365_booking.created_uid(self.name, response.json())
        return Booked(f"{mailbox}/Calendar", uid, invited_by_server=True)

    async def _free_busy(
        self, organizer: str, start: datetime, end: datetime
    ) -> list[tuple[datetime, datetime]] | None:
        mailbox = self._own_mailbox(organizer)
        async with client_for(self.graph) as client:
            response = await self._request(
                client,
                "POST",
                f"/users/{quote(mailbox)}/calendar/getSchedule",
                "calendar",
                mailbox,
                json=m365_booking.schedule_request(mailbox, start, end),
            )
        return m365_booking.busy_of(response.json(), mailbox)

    def _own_mailbox(self, address: str) -> str:
        listed = {m.lower(): m for m in _split(self.settings.get("mailboxes", ""))}
        if listed and address.lower() not in listed:
            raise ConfigurationError(
                f"{self.name}: {address} is not one of the mailboxes {', '.join(listed)}"
            )
        return listed.get(address.lower(), address)

    # --- sending and checking -------------------------------------------------------------

    async def _send(self, message: EmailMessage) -> SendResult:
        sender = parseaddr(str(message.get("From", "")))[1].lower()
        listed = [m.lower() for m in _split(self.settings.get("mailboxes", ""))]
        if not sender or (listed and sender not in listed):
            raise ConfigurationError(
                f"{self.name}: cannot send as {sender or 'nobody'!r}: the From address must be "
                f"one of this connector's mailboxes ({', '.join(listed) or 'the group members'})"
            )
        recipients = [
            address
            for _, address in getaddresses(
                [str(v) for h in ("To", "Cc", "Bcc") for v in message.get_all(h) or []]
            )
            if address
        ]
        async with client_for(self.graph) as client:
            await self._request(
                client,
                "POST",
                f"/users/{quote(sender)}/sendMail",
                "send",
                sender,
                content=base64.b64encode(message.as_bytes()),
                headers={"Content-Type": "text/plain"},
            )
        return SendResult(recipients, {}, sent_folder=SENT_ITEMS)

    async def _check(self) -> list[str]:
        await self.tokens.get()
        lines = [
            f"{self.name}: signed in to tenant {self.graph.tenant_id} as app "
            f"{self.graph.client_id} ({self.graph.graph_url})"
        ]
        folders = _split(self.settings.get("folders", "inbox,sentitems"))
        calendar = SWITCH[str(self.settings.get("calendar", "on")).lower()]
        async with client_for(self.graph) as client:
            mailboxes = await self._mailboxes(client)
            if not mailboxes:
                raise ConnectorError(
                    f"{self.name}: group {self.settings['group']!r} has no members with a mailbox"
                )
            for mailbox in mailboxes:
                lines.append(f"  {mailbox}:")
                for folder in folders:
                    ref, shown = await self._folder_ref(client, mailbox, folder)
                    info = await self._json(
                        client,
                        f"/users/{quote(mailbox)}/mailFolders/{quote(ref)}"
                        "?$select=displayName,totalItemCount",
                        "mailbox",
                        mailbox,
                    )
                    private = (
                        " (private_marker: never stored)" if self.private_folder([shown]) else ""
                    )
                    lines.append(
                        f"    {info.get('displayName', shown)}: "
                        f"{info.get('totalItemCount', '?')} messages{private}"
                    )
                if calendar:
                    found = await self._json(
                        client,
                        f"/users/{quote(mailbox)}/calendar?$select=name",
                        "calendar",
                        mailbox,
                    )
                    lines.append(f"    calendar {found.get('name', '')!r}: readable")
        lines.append("  sending (Mail.Send) is checked when a mail is sent")
        return lines


def _split(value: str | None) -> list[str]:
    return [part.strip() for part in str(value or "").split(",") if part.strip()]


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def _gather(work: list[Any]) -> None:
    """Run all; the first failure cancels the rest and is raised (a TransientError restarts
    the page from its cursor)."""
    try:
        async with asyncio.TaskGroup() as group:
            for job in work:
                group.create_task(job)
    except ExceptionGroup as e:
        raise e.exceptions[0] from None
