"""A real Radicale CalDAV server as a child process, for the integration tier and the bench.

CalDAV servers differ exactly where sync breaks (sync tokens, ETags, what a REPORT answers), so
the caldav tests run Radicale itself (from PyPI, in the test extras) on a free loopback port,
with an htpasswd file of plain passwords, `owner_only` rights (a user sees only their own
collections) and a throw-away storage folder. Setup helpers talk plain WebDAV with httpx, so
the tests do not depend on the caldav library the connector uses.

Import the fixtures into a test module (`from tests.radicale import radicale, caldav_user`):
`radicale` is one server for the session, `caldav_user` a fresh user with one calendar per
test. A missing Radicale fails the tests instead of skipping them.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from tests.connector_contract import ContractSource

HOST = "127.0.0.1"
START_TIMEOUT = 15.0
INSTALL_HINT = 'Radicale is required for the caldav tests: pip install -e ".[test]"'
_users = itertools.count(1)


class RadicaleError(RuntimeError):
    """Radicale could not be started, or a setup request failed; the message says which."""


@dataclass(frozen=True)
class CalDavUser:
    """A login on the test server and the URL of its calendar home."""

    server: Radicale
    name: str
    password: str

    @property
    def home(self) -> str:
        return f"{self.server.url}/{quote(self.name)}/"

    def calendar_url(self, calendar: str) -> str:
        return f"{self.home}{quote(calendar)}/"

    def client(self) -> httpx.Client:
        return httpx.Client(auth=(self.name, self.password), timeout=30.0)

    def make_calendar(self, calendar: str, display_name: str | None = None) -> str:
        """MKCALENDAR (RFC 4791 5.3.1); returns the calendar's URL."""
        body = (
            '<?xml version="1.0" encoding="utf-8"?>'
            '<C:mkcalendar xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">'
            f"<D:set><D:prop><D:displayname>{display_name or calendar}</D:displayname>"
            "<C:supported-calendar-component-set><C:comp name='VEVENT'/>"
            "</C:supported-calendar-component-set></D:prop></D:set></C:mkcalendar>"
        )
        url = self.calendar_url(calendar)
        with self.client() as http:
            answer = http.request("MKCALENDAR", url, content=body)
        if answer.status_code != 201:
            raise RadicaleError(f"MKCALENDAR {url}: {answer.status_code} {answer.text[:200]}")
        return url

    def put(self, calendar: str, name: str, ical: str | bytes) -> str:
        """PUT one calendar object resource; returns its URL."""
        url = f"{self.calendar_url(calendar)}{quote(name)}"
        data = ical.encode() if isinstance(ical, str) else ical
        with self.client() as http:
            answer = http.put(url, content=data, headers={"Content-Type": "text/calendar"})
        if answer.status_code not in (201, 204):
            raise RadicaleError(f"PUT {url}: {answer.status_code} {answer.text[:200]}")
        return url

    def delete(self, calendar: str, name: str) -> None:
        url = f"{self.calendar_url(calendar)}{quote(name)}"
        with self.client() as http:
            answer = http.delete(url)
        if answer.status_code not in (200, 204):
            raise RadicaleError(f"DELETE {url}: {answer.status_code}")

    def get(self, calendar: str, name: str) -> bytes:
        url = f"{self.calendar_url(calendar)}{quote(name)}"
        with self.client() as http:
            answer = http.get(url)
        if answer.status_code != 200:
            raise RadicaleError(f"GET {url}: {answer.status_code}")
        return answer.content


class Radicale:
    """One running server: `add_user` writes the htpasswd file (Radicale re-reads it when it
    changes), `stop` ends the child process."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.htpasswd = root / "htpasswd"
        self.htpasswd.write_text("")
        self.port = _free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = [
            sys.executable, "-m", "radicale",
            "--server-hosts", f"{HOST}:{self.port}",
            "--auth-type", "htpasswd",
            "--auth-htpasswd-filename", str(self.htpasswd),
            "--auth-htpasswd-encryption", "plain",
            "--rights-type", "owner_only",
            "--storage-filesystem-folder", str(self.root / "collections"),
            "--logging-level", "warning",
        ]  # fmt: skip
        try:
            with (self.root / "radicale.log").open("wb") as log:
                self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        except OSError as e:
            raise RadicaleError(f"cannot start Radicale: {e}; {INSTALL_HINT}") from e
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RadicaleError(f"Radicale exited at start: {self.log_tail()}; {INSTALL_HINT}")
            with contextlib.suppress(OSError), socket.create_connection((HOST, self.port), 0.2):
                return
            time.sleep(0.05)
        self.stop()
        raise RadicaleError(f"Radicale did not listen within {START_TIMEOUT:g} s")

    def log_tail(self) -> str:
        return (self.root / "radicale.log").read_text(errors="replace")[-2000:]

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def add_user(self, name: str | None = None, password: str | None = None) -> CalDavUser:
        """A new login (or a new password for an existing one)."""
        name = name or f"user{next(_users)}-{os.getpid()}"
        password = password or f"pw-{name}"
        lines = [
            line
            for line in self.htpasswd.read_text().splitlines()
            if line and line.split(":", 1)[0] != name
        ]
        self.htpasswd.write_text("\n".join([*lines, f"{name}:{password}"]) + "\n")
        return CalDavUser(self, name, password)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def start_radicale() -> Iterator[Radicale]:
    """A Radicale of its own in a temporary directory, stopped and removed on exit."""
    with tempfile.TemporaryDirectory(prefix="crmhub-radicale-") as root:
        server = Radicale(Path(root))
        server.start()
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture(scope="session")
def radicale() -> Iterator[Radicale]:
    try:
        with start_radicale() as server:
            yield server
    except RadicaleError as e:
        pytest.fail(str(e), pytrace=False)


@pytest.fixture
def caldav_user(radicale: Radicale) -> CalDavUser:
    """A fresh user with one calendar named `work` (display name "Work")."""
    user = radicale.add_user()
    user.make_calendar("work", "Work")
    return user


EVENT = """BEGIN:VCALENDAR\r
VERSION:2.0\r
PRODID:-//crmhub tests//EN\r
BEGIN:VEVENT\r
UID:{uid}\r
DTSTAMP:20240101T000000Z\r
DTSTART:{start}\r
DTEND:{end}\r
SUMMARY:{summary}\r
ORGANIZER;CN=Anna:mailto:anna@ourco.example\r
ATTENDEE;CN=Kunde;PARTSTAT=ACCEPTED:mailto:{attendee}\r
{extra}END:VEVENT\r
END:VCALENDAR\r
"""


def event(
    uid: str,
    start: str = "20261210T100000Z",
    end: str = "20261210T110000Z",
    summary: str = "Termin",
    attendee: str = "kunde@firma.example",
    extra: str = "",
) -> str:
    """One VEVENT resource; `extra` is more content lines, each ending in CRLF."""
    return EVENT.format(
        uid=uid, start=start, end=end, summary=summary, attendee=attendee, extra=extra
    )


# Radicale refuses what vobject cannot read; a SEQUENCE that is no number it stores, and the
# shared translator quarantines (connectors/calendar.py `_sequence`).
MALFORMED_EVENT = event("contract-malformed@ourco.example", extra="SEQUENCE:abc\r\n")


@contextlib.asynccontextmanager
async def radicale_source(root: Path) -> AsyncIterator[ContractSource]:
    """The contract driver (tests/connector_contract.py) for `caldav`: a Radicale of its own
    (a driver gets a directory, not the session's fixtures; starting one takes about a second),
    one user and calendar. Breaking it changes the password: the login is refused."""
    with contextlib.ExitStack() as stack:
        server = await asyncio.to_thread(stack.enter_context, start_radicale())
        user = server.add_user("anna@ourco.example")
        await asyncio.to_thread(user.make_calendar, "work", "Work")
        numbers = itertools.count()

        async def add_items(n: int) -> None:
            for _ in range(n):
                k = next(numbers)
                body = event(f"contract-{k}@ourco.example", attendee=f"kunde{k}@firma.example")
                await asyncio.to_thread(user.put, "work", f"contract-{k}.ics", body)

        async def add_malformed() -> None:
            await asyncio.to_thread(user.put, "work", "malformed.ics", MALFORMED_EVENT)

        async def break_source() -> None:
            server.add_user(user.name, user.password + "-changed")

        yield ContractSource(
            "caldav",
            {"url": f"{server.url}/", "username": user.name},
            {"password": user.password},
            add_items,
            add_malformed,
            break_source,
        )
