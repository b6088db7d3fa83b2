"""Sources of the file connector kinds on disk, grown item by item: for the file connector
tests and the connector contract test (tests/integration/test_connector_contract.py)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from connectors.asterisk_cdr import COLUMNS

ENVELOPE = b"From MAILER-DAEMON Mon Jan  8 09:00:00 2024\n"


def message(n: int, *, date_header: bool = True) -> bytes:
    """A small mail whose body has a line starting with `From ` (escaped in mbox)."""
    lines = [
        f"From: Kunde {n} <kunde{n}@elbe-logistik.de>",
        "To: Anna <anna@ourco.example>",
        f"Subject: Anfrage {n}",
        f"Message-ID: <n{n}@elbe-logistik.de>",
    ]
    if date_header:
        lines.append(f"Date: Mon, 8 Jan 2024 09:{n:02d}:00 +0100")
    return ("\n".join(lines) + f"\n\nText {n}\nFrom the warehouse, greetings.\n").encode()


MALFORMED_MAIL = b"\x00\x01garbage without headers\n"


def mail_key(n: int) -> str:
    return f"mid:<n{n}@elbe-logistik.de>"


def cdr_row(n: int, *, src: str = "01712233445", dst: str = "201", billsec: int = 180) -> str:
    """A Master.csv line as Asterisk writes it: text quoted, the two counters bare."""
    values = {
        "accountcode": "",
        "src": src,
        "dst": dst,
        "dcontext": "from-trunk",
        "clid": f'"Piet" <{src}>',
        "channel": "PJSIP/t-1",
        "dstchannel": f"PJSIP/{dst}-1",
        "lastapp": "Dial",
        "lastdata": f"PJSIP/{dst},30",
        "start": f"2024-01-09 14:{n:02d}:00",
        "answer": f"2024-01-09 14:{n:02d}:05",
        "end": f"2024-01-09 14:{n + 3:02d}:05",
        "duration": str(billsec + 5),
        "billsec": str(billsec),
        "disposition": "ANSWERED",
        "amaflags": "DOCUMENTATION",
        "uniqueid": f"1704808800.{n}",
        "userfield": "",
    }
    numeric = {"duration", "billsec"}
    return (
        ",".join(
            values[c] if c in numeric else '"' + values[c].replace('"', '""') + '"' for c in COLUMNS
        )
        + "\n"
    )


def vevent(n: int, *, extra: str = "", start: str | None = None) -> str:
    dtstart = (
        f"DTSTART:{start}\r\n" if start is not None else f"DTSTART:202401{10 + n:02d}T090000Z\r\n"
    )
    return (
        "BEGIN:VEVENT\r\n"
        f"UID:event-{n}@ourco.example\r\n"
        "DTSTAMP:20240101T080000Z\r\n"
        f"{dtstart}"
        f"SUMMARY:Termin {n}\r\n"
        "ORGANIZER;CN=Anna:mailto:anna@ourco.example\r\n"
        f"ATTENDEE;CN=Kunde {n}:mailto:kunde{n}@elbe-logistik.de\r\n"
        f"{extra}"
        "END:VEVENT\r\n"
    )


def calendar(*events: str) -> bytes:
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//ourco//test//EN\r\n"
        + "".join(events)
        + "END:VCALENDAR\r\n"
    ).encode()


def reply_mail(
    sender: str, attendee: str, partstat: str, sequence: int, n: int, *, uid: str
) -> str:
    """An attendee's reply to meeting `uid` as Outlook and Thunderbird send one: text plus
    the iMIP REPLY calendar part, answering for `attendee`, sent by `sender`."""
    return (
        f"From: {sender}\r\nTo: anna@ourco.example\r\nSubject: Accepted: Angebot\r\n"
        f"Date: Tue, 09 Jan 2024 10:00:0{n} +0000\r\nMessage-ID: <reply-{n}@elbe-logistik.de>\r\n"
        'MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary="b"\r\n\r\n'
        "--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nI will be there.\r\n"
        "--b\r\nContent-Type: text/calendar; charset=utf-8; method=REPLY\r\n\r\n"
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nMETHOD:REPLY\r\n"
        f"BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20240109T100000Z\r\n"
        f"SEQUENCE:{sequence}\r\nDTSTART:20240111T090000Z\r\n"
        f"ATTENDEE;PARTSTAT={partstat}:mailto:{attendee}\r\n"
        "END:VEVENT\r\nEND:VCALENDAR\r\n--b--\r\n"
    )


class FileSource:
    """A source of one connector kind on disk that tests can grow item by item."""

    kind: ClassVar[str]
    grows: ClassVar[bool] = True

    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def path(self) -> Path:
        raise NotImplementedError

    def add(self, n: int) -> None:
        raise NotImplementedError

    def add_malformed(self) -> None:
        raise NotImplementedError

    def key(self, n: int) -> str:
        return mail_key(n)


class MboxSource(FileSource):
    kind = "mbox"

    @property
    def path(self) -> Path:
        return self.root / "inbox.mbox"

    def _append(self, data: bytes) -> None:
        escaped = b"\n".join(
            b">" + line if line.lstrip(b">").startswith(b"From ") else line
            for line in data.split(b"\n")
        )
        with self.path.open("ab") as handle:
            handle.write(ENVELOPE + escaped + b"\n")

    def add(self, n: int) -> None:
        self._append(message(n))

    def add_malformed(self) -> None:
        self._append(MALFORMED_MAIL)


class EmlSource(FileSource):
    kind = "eml"

    @property
    def path(self) -> Path:
        return self.root / "eml"

    def add(self, n: int) -> None:
        folder = self.path / ("2024" if n % 2 else "")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"mail-{n}.eml").write_bytes(message(n))

    def add_malformed(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        (self.path / "broken.eml").write_bytes(MALFORMED_MAIL)


class MaildirSource(FileSource):
    kind = "maildir"

    @property
    def path(self) -> Path:
        return self.root / "Maildir"

    def _deliver(self, name: str, data: bytes) -> None:
        for sub in ("cur", "new", "tmp"):
            (self.path / sub).mkdir(parents=True, exist_ok=True)
        (self.path / "new" / name).write_bytes(data)

    def add(self, n: int) -> None:
        self._deliver(f"17047000{n:02d}.M{n}P1.host", message(n))

    def add_malformed(self) -> None:
        self._deliver("1704709999.M99P1.host", MALFORMED_MAIL)


class IcsSource(FileSource):
    """A calendar is exported whole: a change means reading the file again (dedupe follows)."""

    kind = "ics"
    grows = False

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.events: list[str] = []

    @property
    def path(self) -> Path:
        return self.root / "calendar.ics"

    def add(self, n: int) -> None:
        self.events.append(vevent(n))
        self.path.write_bytes(calendar(*self.events))

    def add_malformed(self) -> None:
        self.events.append(
            "BEGIN:VEVENT\r\nUID:no-start@ourco.example\r\nSUMMARY:kaputt\r\nEND:VEVENT\r\n"
        )
        self.path.write_bytes(calendar(*self.events))

    def key(self, n: int) -> str:
        return f"ics:event-{n}@ourco.example"


class CdrSource(FileSource):
    kind = "asterisk-cdr"

    @property
    def path(self) -> Path:
        return self.root / "Master.csv"

    def _append(self, line: str) -> None:
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(line)

    def add(self, n: int) -> None:
        self._append(cdr_row(n))

    def add_malformed(self) -> None:
        self._append('"only","three","columns"\n')

    def key(self, n: int) -> str:
        return f"asterisk:1704808800.{n}:201"


SOURCES: list[type[FileSource]] = [MboxSource, MaildirSource, EmlSource, IcsSource, CdrSource]
