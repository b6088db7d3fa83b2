"""A local stand-in for Twilio's REST API (2010-04-01), over plain HTTP on loopback.

The `twilio` connector's tests point its `api_url` here. It answers with the wire formats
Twilio documents, and only those:
- list resources `Calls.json`, `Messages.json`, `Recordings.json` as "Twilio's response:
  list paging information" (twilio.com/docs/usage/twilios-response): the records under the
  resource's key (`calls`, `messages`, `recordings`) with `page`, `page_size`, `uri`,
  `first_page_uri`, `previous_page_uri` and `next_page_uri` (an absolute path with `Page` and
  `PageToken`, null on the last page); newest first;
- filters `StartTime>` (Call resource, "Read multiple Call resources",
  twilio.com/docs/voice/api/call-resource), `DateSent>` (Message resource,
  twilio.com/docs/messaging/api/message-resource), `DateCreated>` (Recording resource,
  twilio.com/docs/voice/api/recording), each read by its date (YYYY-MM-DD);
- single resources `Calls/{Sid}.json`, `Messages/{Sid}.json`, the account `{AccountSid}.json`
  and a recording's media `Recordings/{Sid}.mp3` (audio/mpeg);
- times in RFC 2822 ("Tue, 31 Aug 2010 20:36:28 +0000"), durations as strings of seconds;
- HTTP Basic auth with the account SID and auth token; errors as `{"code", "message",
  "more_info", "status"}` (20003 Authenticate, 20404 not found, 20429 Too Many Requests with
  Retry-After: twilio.com/docs/errors and "429 Too Many Requests",
  twilio.com/docs/usage/rest-api-best-practices).
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import re
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from tests.connector_contract import ContractSource

ACCOUNT = "AC" + "f" * 32
TOKEN = "fake-auth-token-1234567890abcdef"
PUBLIC_URL = "https://crm.example.com"
AUDIO = b"ID3\x03\x00fake mp3 frames " * 64


def rfc2822(at: datetime) -> str:
    return format_datetime(at.astimezone(UTC)).replace("-0000", "+0000")


def call(
    sid: str,
    start: datetime,
    caller: str = "+4917612345678",
    callee: str = "+4951112345600",
    *,
    status: str = "completed",
    direction: str = "inbound",
    duration: int | None = 60,
    parent: str | None = None,
    caller_name: str | None = None,
    updated: datetime | None = None,
) -> dict[str, Any]:
    """A Call resource as Twilio answers it (the fields the connector reads, and a few more)."""
    over = status in ("completed", "busy", "no-answer", "failed", "canceled")
    return {
        "sid": sid,
        "account_sid": ACCOUNT,
        "parent_call_sid": parent,
        "date_created": rfc2822(start),
        "date_updated": rfc2822(updated or start + timedelta(seconds=duration or 0)),
        "to": callee,
        "to_formatted": callee,
        "from": caller,
        "from_formatted": caller,
        "status": status,
        "start_time": rfc2822(start),
        "end_time": rfc2822(start + timedelta(seconds=duration or 0)) if over else None,
        "duration": str(duration) if over and duration is not None else None,
        "direction": direction,
        "caller_name": caller_name,
        "price": None,
        "api_version": "2010-04-01",
        "uri": f"/2010-04-01/Accounts/{ACCOUNT}/Calls/{sid}.json",
    }


def message(
    sid: str,
    sent: datetime,
    sender: str = "+4917612345678",
    to: str = "+4951112345600",
    *,
    body: str = "Hallo",
    status: str = "received",
    direction: str = "inbound",
    num_media: int = 0,
) -> dict[str, Any]:
    return {
        "sid": sid,
        "account_sid": ACCOUNT,
        "date_created": rfc2822(sent),
        "date_updated": rfc2822(sent),
        "date_sent": rfc2822(sent),
        "to": to,
        "from": sender,
        "body": body,
        "status": status,
        "direction": direction,
        "num_segments": "1",
        "num_media": str(num_media),
        "error_code": None,
        "uri": f"/2010-04-01/Accounts/{ACCOUNT}/Messages/{sid}.json",
    }


def recording(sid: str, call_sid: str, created: datetime) -> dict[str, Any]:
    return {
        "sid": sid,
        "account_sid": ACCOUNT,
        "call_sid": call_sid,
        "date_created": rfc2822(created),
        "date_updated": rfc2822(created),
        "start_time": rfc2822(created),
        "duration": "42",
        "status": "completed",
        "channels": 1,
        "source": "DialVerb",
        "media_url": f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT}/Recordings/{sid}",
        "uri": f"/2010-04-01/Accounts/{ACCOUNT}/Recordings/{sid}.json",
    }


def transcription(
    sid: str, recording_sid: str, text: str, status: str = "completed"
) -> dict[str, Any]:
    """A Transcription resource as Twilio's docs show it (twilio.com/docs/voice/api/recording-
    transcription): listed below its recording, `Recordings/{Sid}/Transcriptions.json`."""
    return {
        "sid": sid,
        "account_sid": ACCOUNT,
        "recording_sid": recording_sid,
        "status": status,
        "transcription_text": text if status == "completed" else None,
        "type": "fast",
        "duration": "42",
        "date_created": rfc2822(datetime(2026, 12, 1, tzinfo=UTC)),
        "date_updated": rfc2822(datetime(2026, 12, 1, tzinfo=UTC)),
        "uri": f"/2010-04-01/Accounts/{ACCOUNT}/Transcriptions/{sid}.json",
    }


@dataclass
class FakeTwilioState:
    calls: dict[str, dict[str, Any]] = field(default_factory=dict)
    messages: dict[str, dict[str, Any]] = field(default_factory=dict)
    recordings: dict[str, dict[str, Any]] = field(default_factory=dict)
    transcriptions: dict[str, dict[str, Any]] = field(default_factory=dict)
    page_size: int = 2  # so that a handful of records spans pages
    throttle: int = 0  # how many of the next requests answer 429
    retry_after: str = "1"
    broken: bool = False  # every request answers 401, as after the token was rotated
    requests: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, *records: dict[str, Any]) -> None:
        with self.lock:
            for r in records:
                table = {
                    "CA": self.calls,
                    "SM": self.messages,
                    "MM": self.messages,
                    "TR": self.transcriptions,
                }
                table.get(r["sid"][:2], self.recordings)[r["sid"]] = r


LISTS = {
    "Calls": ("calls", "StartTime>", "start_time"),
    "Messages": ("messages", "DateSent>", "date_sent"),
    "Recordings": ("recordings", "DateCreated>", "date_created"),
}
_PATH = re.compile(
    rf"^/2010-04-01/Accounts/{ACCOUNT}(?:/(\w+)(?:/(\w+)(?:/(Transcriptions))?)?)?\.(json|mp3)$"
)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        state = self.server.state
        with state.lock:
            state.requests.append(self.path)
            status, headers, body = self._answer(state)
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _answer(self, state: FakeTwilioState) -> tuple[int, dict[str, str], bytes]:
        if state.throttle:
            state.throttle -= 1
            return _error(429, 20429, "Too Many Requests", {"Retry-After": state.retry_after})
        expected = base64.b64encode(f"{ACCOUNT}:{TOKEN}".encode()).decode()
        if state.broken or self.headers.get("Authorization") != f"Basic {expected}":
            return _error(401, 20003, "Authenticate")
        parts = urlsplit(self.path)
        match = _PATH.match(parts.path)
        if match is None:
            return _error(404, 20404, f"The requested resource {parts.path} was not found")
        resource, sid, below, ext = match.groups()
        if below:
            if resource != "Recordings" or sid not in state.recordings:
                return _error(404, 20404, f"The requested resource {parts.path} was not found")
            found = [t for t in state.transcriptions.values() if t["recording_sid"] == sid]
            return _json({"transcriptions": found, "next_page_uri": None, "page": 0})
        if resource is None:
            return _json({"sid": ACCOUNT, "friendly_name": "Fake Account", "status": "active"})
        if ext == "mp3":
            if resource == "Recordings" and sid in state.recordings:
                return 200, {"Content-Type": "audio/mpeg"}, AUDIO
            return _error(404, 20404, f"The requested resource {parts.path} was not found")
        table = {
            "Calls": state.calls,
            "Messages": state.messages,
            "Recordings": state.recordings,
        }.get(resource)
        if table is None:
            return _error(404, 20404, f"The requested resource {parts.path} was not found")
        if sid is not None:
            if sid not in table:
                return _error(404, 20404, f"The requested resource {parts.path} was not found")
            return _json(table[sid])
        return _json(_page(state, resource, table, parse_qs(parts.query)))


def _page(
    state: FakeTwilioState, resource: str, table: dict[str, Any], query: dict[str, list[str]]
) -> dict[str, Any]:
    key, since_param, time_field = LISTS[resource]
    since = query.get(since_param, [""])[0][:10]
    records = [r for r in table.values() if r.get(time_field)]
    if since:
        day = datetime.fromisoformat(since).date()
        records = [r for r in records if _at(r[time_field]).date() >= day]
    records.sort(key=lambda r: (_at(r[time_field]), r["sid"]), reverse=True)
    size = min(int(query.get("PageSize", ["50"])[0]), state.page_size)
    page = int(query.get("Page", ["0"])[0])
    chunk = records[page * size : (page + 1) * size]
    base = f"/2010-04-01/Accounts/{ACCOUNT}/{resource}.json"
    kept = {k: v[0] for k, v in query.items() if k not in ("Page", "PageToken")}

    def uri(n: int) -> str:
        token = {"PageToken": f"PA{chunk[-1]['sid']}"} if n > page and chunk else {}
        return f"{base}?{urlencode({**kept, 'Page': n, **token})}"

    more = (page + 1) * size < len(records)
    return {
        key: chunk,
        "page": page,
        "page_size": size,
        "start": page * size,
        "end": page * size + max(len(chunk) - 1, 0),
        "uri": f"{base}?{urlencode({**kept, 'Page': page})}",
        "first_page_uri": uri(0),
        "previous_page_uri": uri(page - 1) if page else None,
        "next_page_uri": uri(page + 1) if more else None,
    }


def _at(value: str) -> datetime:
    from email.utils import parsedate_to_datetime

    return parsedate_to_datetime(value)


def _json(doc: Any) -> tuple[int, dict[str, str], bytes]:
    return 200, {"Content-Type": "application/json"}, json.dumps(doc).encode()


def _error(
    status: int, code: int, text: str, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    doc = {
        "code": code,
        "message": text,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }
    return status, {"Content-Type": "application/json", **(headers or {})}, json.dumps(doc).encode()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: FakeTwilioState


@dataclass
class FakeTwilio:
    url: str
    state: FakeTwilioState

    def settings(self, **more: str) -> dict[str, str]:
        return {"account_sid": ACCOUNT, "public_url": PUBLIC_URL, "api_url": self.url, **more}

    @property
    def secrets(self) -> dict[str, str]:
        return {"auth_token": TOKEN}


@contextlib.contextmanager
def start_twilio_fake() -> Iterator[FakeTwilio]:
    server = _Server(("127.0.0.1", 0), _Handler)
    server.state = FakeTwilioState()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield FakeTwilio(f"http://127.0.0.1:{server.server_address[1]}", server.state)
    finally:
        server.shutdown()
        server.server_close()


@contextlib.asynccontextmanager
async def twilio_source(directory: Path) -> AsyncIterator[ContractSource]:
    """The connector contract's driver for `twilio` (tests/connector_contract.py): calls on a
    fake of its own, a minute apart; the malformed one has a status Twilio does not have."""
    with start_twilio_fake() as fake:
        numbers = itertools.count(1)
        base = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)

        async def add_items(n: int) -> None:
            for _ in range(n):
                i = next(numbers)
                sid = f"CA{i:032x}"
                fake.state.add(call(sid, base + timedelta(minutes=i), f"+49176123456{i:02d}"))

        async def add_malformed() -> None:
            i = next(numbers)
            bad = call(f"CA{i:032x}", base + timedelta(minutes=i), status="exploded")
            fake.state.add(bad)

        async def break_source() -> None:
            fake.state.broken = True

        yield ContractSource(
            "twilio", fake.settings(), fake.secrets, add_items, add_malformed, break_source
        )
