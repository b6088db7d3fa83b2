"""Attribution quality through the real pipeline, and attribute() throughput, in one run.

    .venv/bin/python bench/matching.py [--items 6000] [--pipeline-contacts 2000]
                                       [--contacts 100000]

Quality. Generates a directory (ten contacts per account, some contacts on gmail, every 20th
account with an internationalised domain, every 100th listing gmail.com by mistake) and a
corpus of mails, meetings and calls whose right accounts are known from how each case was
built, never from running the matcher. It covers every rule and trap of the attribution policy:
contact address (case, +tag, gmail dots, googlemail, an encoded display name with a comma),
contact phone in national formats, account domain, subdomains and IDNA, look-alike domains,
free mail (also where an account lists it), internal-only items, bulk mail (each bulk header;
`Auto-Submitted: no` is not bulk), replies from unknown addresses in a thread and a chain,
replies stored before their root, a direct match over the thread, a reply to bulk mail, several
customers on one item, Bcc, meeting organizers and attendees, inbound, outbound, anonymous,
local and internal calls, and names or addresses in a display name (plain and RFC 2047 encoded)
that look like a customer's. Items that are not logged (bulk, internal-only) expect no account.

The corpus is written as the files crmhub reads (an mbox, an .ics calendar, an Asterisk
Master.csv and the directory CSV) into a temp dir and loaded as `crmhub` loads it: a fresh
SQLite database configured through CRMHUB_* variables, import_directory, add_connector and
sync_all. The stored attributions are read back, each stored item is found again by its
Message-ID, UID or CDR uniqueid, and the script prints micro precision and recall over (item,
account) pairs (targets 0.995 and 0.98), per-trap counts of wrong and missed pairs, and examples.
The pipeline's directory is the first `--pipeline-contacts` contacts of the throughput
directory (a smaller directory is a prefix of a larger one): import_directory costs about 3 ms
per contact on SQLite, so importing 100,000 would take minutes.

Throughput. attribute() alone on one core with `--contacts` contacts in an in-memory
IdentityIndex, over a second corpus of the same generator drawn from all of them (as the
connectors translate its files), first with the normalisers' caches empty, then warm, against a
bare dictionary lookup of the same addresses in the same run (target >= 50,000 items/s).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import random
import re
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, formataddr
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import select

from config.settings import load_settings
from connectors.base import ConnectorContext
from connectors.registry import connector_class
from hub.admin import add_connector, import_directory
from hub.bootstrap import Hub, build_hub
from hub.model import Account, Channel, Contact, Interaction, Translated
from hub.pipeline import SyncReport, sync_all
from matching.engine import attribute
from matching.identities import (
    _normalize_host,
    normalize_domain,
    normalize_email,
    normalize_phone,
)
from matching.index import IdentityIndex
from storage.tables import AccountRow, AttributionRow, InteractionRow, QuarantineRow

INTERNAL = "ourco.example"
STAFF = f"anna@{INTERNAL}"
COLLEAGUE = f"tom@{INTERNAL}"
WHEN = datetime(2024, 1, 8, 8, tzinfo=UTC)
MID_HOST = "bench.crmhub.example"
PER_ACCOUNT = 10
_FROM_LINE = re.compile(rb"^(>*From )", re.MULTILINE)


@dataclass(frozen=True)
class Firm:
    id: int
    name: str
    domains: tuple[str, ...]  # as the directory file writes them: [0] main, [1] group, ...

    @property
    def idn(self) -> str | None:
        return next((d for d in self.domains if not d.isascii()), None)


@dataclass(frozen=True)
class Person:
    id: int
    name: str
    firm: Firm
    email: str  # as the directory file writes it
    subscriber: str  # Berlin number without area code: +49 30 <subscriber>

    @property
    def e164(self) -> str:
        return f"+4930{self.subscriber}"

    @property
    def on_free_mail(self) -> bool:
        return self.email.endswith("@gmail.com")


def directory(contacts: int) -> tuple[list[Firm], list[Person]]:
    """Ten contacts per account; every 50th contact writes from gmail, every 20th account has
    an internationalised domain too, and every 100th lists gmail.com (a CRM data mistake)."""
    firms = []
    for i in range(max(1, -(-contacts // PER_ACCOUNT))):
        domains = [f"firma{i}.example", f"firma{i}-gruppe.example"]
        if i % 20 == 0:
            domains.append(f"müller-{i}.example")
        if i % 100 == 0:
            domains.append("gmail.com")
        firms.append(Firm(i + 1, f"Firma {i} GmbH", tuple(domains)))
    people = []
    for c in range(contacts):
        firm = firms[c // PER_ACCOUNT]
        email = f"p{c}.privat@gmail.com" if c % 50 == 0 else f"p{c}.nachname@{firm.domains[0]}"
        people.append(Person(c + 1, f"Person {c}", firm, email, str(1_000_000 + c)))
    return firms, people


def write_directory(path: Path, firms: list[Firm], people: list[Person]) -> None:
    """The CSV of DESIGN.md: account-only rows with the domains, then one row per contact."""
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["account", "domains", "contact", "emails", "phones", "owner"])
        for firm in firms:
            writer.writerow([firm.name, ";".join(firm.domains), "", "", "", ""])
        for p in people:
            phone = f"+49 30 {p.subscriber}" if p.id % 2 else f"030 {p.subscriber}"
            writer.writerow([p.firm.name, "", p.name, p.email, phone, ""])


def index_of(firms: list[Firm], people: list[Person]) -> IdentityIndex:
    """The same directory as an in-memory index, for attribute() alone."""
    accounts = [
        Account(f.name, tuple(filter(None, map(normalize_domain, f.domains))), id=f.id)
        for f in firms
    ]
    contacts = []
    for p in people:
        key = normalize_email(p.email)
        assert key is not None
        contacts.append(Contact(p.name, p.firm.id, (key,), (p.e164,), id=p.id))
    return IdentityIndex.build(accounts, contacts, internal_domains=[INTERNAL], region="DE")


@dataclass(frozen=True)
class Mail:
    message_id: str
    sender: str
    to: tuple[str, ...]
    cc: tuple[str, ...] = ()
    bcc: tuple[str, ...] = ()
    name: str = ""  # the sender's display name
    headers: tuple[tuple[str, str], ...] = ()
    in_reply_to: str = ""
    references: tuple[str, ...] = ()


@dataclass(frozen=True)
class Meeting:
    uid: str
    organizer: str
    attendees: tuple[str, ...]


@dataclass(frozen=True)
class Call:
    uniqueid: str
    src: str
    dst: str
    name: str = ""


@dataclass(frozen=True)
class Case:
    """One item and the account names it belongs to, known from how it was made."""

    trap: str
    channel: Channel
    key: str  # Message-ID, UID or CDR uniqueid: how the stored item is found again
    accounts: frozenset[str]


@dataclass
class Corpus:
    rng: random.Random
    people: list[Person]
    cases: list[Case] = field(default_factory=list)
    mails: list[Mail] = field(default_factory=list)
    late_mails: list[Mail] = field(default_factory=list)  # end of the mbox: after their replies
    meetings: list[Meeting] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)
    idn_firms: list[Firm] = field(default_factory=list)

    def person(self, *, other_than: Person | None = None) -> Person:
        while True:
            p = self.people[self.rng.randrange(len(self.people))]
            if other_than is None or p.firm.id != other_than.firm.id:
                return p

    def free_mail_person(self) -> Person:
        return self.people[50 * self.rng.randrange(1 + (len(self.people) - 1) // 50)]

    def firm_with_idn(self) -> Firm:
        if not self.idn_firms:
            self.idn_firms = sorted({p.firm for p in self.people if p.firm.idn}, key=lambda f: f.id)
        return self.idn_firms[self.rng.randrange(len(self.idn_firms))]

    def mail(self, trap: str, n: int, expected: Iterable[Person | Firm], **kw: Any) -> str:
        """Record a mail with Message-ID <n.trap@...>; returns that Message-ID."""
        mid = f"<{n}.{trap.replace(' ', '-')}@{MID_HOST}>"
        late = kw.pop("late", False)
        (self.late_mails if late else self.mails).append(Mail(mid, **kw))
        self.cases.append(Case(trap, Channel.EMAIL, mid, _names(expected)))
        return mid

    def meeting(
        self, trap: str, n: int, expected: Iterable[Person | Firm], organizer: str, *to: str
    ) -> None:
        uid = f"{n}.{trap.replace(' ', '-')}@{MID_HOST}"
        self.meetings.append(Meeting(uid, organizer, to))
        self.cases.append(Case(trap, Channel.MEETING, uid, _names(expected)))

    def call(
        self, trap: str, n: int, expected: Iterable[Person | Firm], src: str, dst: str, name: str
    ) -> None:
        uniqueid = f"{int(WHEN.timestamp()) + n}.{n}"
        self.calls.append(Call(uniqueid, src, dst, name))
        self.cases.append(Case(trap, Channel.CALL, uniqueid, _names(expected)))


def _names(expected: Iterable[Person | Firm]) -> frozenset[str]:
    return frozenset(e.firm.name if isinstance(e, Person) else e.name for e in expected)


def _contact_email(c: Corpus, n: int) -> None:
    p = c.person()
    local, _, domain = p.email.partition("@")
    if p.on_free_mail:
        key = local.replace(".", "")
        written = f"{key[:1]}.{key[1:]}@googlemail.com" if n % 2 else f"{local.upper()}@Gmail.com"
    else:
        written = (f"{local.upper()}+angebot@{domain.upper()}", f"{local.title()}@{domain}")[n % 2]
    name = p.name if n % 4 < 2 else f"Müller, {p.name}"  # encoded, with a comma inside
    c.mail("contact-email", n, [p], sender=written, to=(STAFF,), name=name)


def _free_mail_contact(c: Corpus, n: int) -> None:
    p = c.free_mail_person()
    c.mail("free-mail contact", n, [p], sender=p.email, to=(STAFF,))


def _account_domain(c: Corpus, n: int) -> None:
    p = c.person()
    c.mail("account-domain", n, [p], sender=f"neu{n}@{p.firm.domains[1]}", to=(STAFF,))


def _subdomain(c: Corpus, n: int) -> None:
    p = c.person()
    c.mail("subdomain", n, [p], sender=f"x{n}@eu.sales.{p.firm.domains[0]}", to=(STAFF,))


def _idna_domain(c: Corpus, n: int) -> None:
    firm = c.firm_with_idn()
    ascii_domain = normalize_domain(firm.idn or "")
    c.mail("idna domain", n, [firm], sender=f"info{n}@{ascii_domain}", to=(STAFF,))


def _look_alike(c: Corpus, n: int) -> None:
    domain = c.person().firm.domains[0]
    sender = f"x{n}@not{domain}" if n % 2 else f"x{n}@{domain}.example.com"
    c.mail("look-alike", n, [], sender=sender, to=(STAFF,))


def _free_mail_unknown(c: Corpus, n: int) -> None:
    c.mail("free-mail unknown", n, [], sender=f"jemand{n}@gmail.com", to=(STAFF,))


def _internal(c: Corpus, n: int) -> None:
    c.mail("internal", n, [], sender=STAFF, to=(COLLEAGUE,), cc=(f"lager@de.{INTERNAL}",))


BULK_HEADERS = (
    ("List-Unsubscribe", "<mailto:unsubscribe@lists.example>"),
    ("List-Id", "Kunden-News <news.lists.example>"),
    ("Precedence", "bulk"),
    ("Precedence", "list"),
    ("Precedence", "junk"),
    ("Auto-Submitted", "auto-generated"),
    ("Auto-Submitted", "auto-replied"),
)


def _bulk(c: Corpus, n: int) -> None:
    p = c.person()
    header = BULK_HEADERS[n % len(BULK_HEADERS)]
    c.mail("bulk", n, [], sender=f"news@{p.firm.domains[0]}", to=(STAFF,), headers=(header,))


def _auto_submitted_no(c: Corpus, n: int) -> None:
    p = c.person()
    headers = (("Auto-Submitted", "no"),)
    c.mail("auto-submitted no", n, [p], sender=p.email, to=(STAFF,), headers=headers)


def _outbound(c: Corpus, n: int) -> None:
    p = c.person()
    c.mail("outbound", n, [p], sender=STAFF, to=(p.email,), cc=(COLLEAGUE,))


def _bcc(c: Corpus, n: int) -> None:
    p = c.person()
    c.mail("bcc", n, [p], sender=STAFF, to=(COLLEAGUE,), bcc=(p.email,))


def _several(c: Corpus, n: int) -> None:
    p, q = c.person(), c.person()
    c.mail("several", n, [p, q], sender=STAFF, to=(p.email,), cc=(q.email,))


def _thread(c: Corpus, n: int) -> None:
    """Parent from a contact, a reply from an unknown address, a reply to that reply."""
    p = c.person()
    parent = c.mail("thread parent", n, [p], sender=p.email, to=(STAFF,))
    reply = c.mail(
        "thread reply",
        n,
        [p],
        sender=f"privat{n}@web.de",
        to=(STAFF,),
        in_reply_to=parent,
        references=(parent,),
    )
    c.mail(
        "thread chain",
        n,
        [p],
        sender=f"assistenz{n}@t-online.de",
        to=(STAFF,),
        in_reply_to=reply,
        references=(reply,),
    )


def _reply_before_parent(c: Corpus, n: int) -> None:
    """A reply and a reply to it come first in the mbox, their root only at the end (a later
    batch): both must follow once it is stored. The second names only the first, as clients
    that shorten References do."""
    p = c.person()
    parent = c.mail("late parent", n, [p], sender=p.email, to=(STAFF,), late=True)
    reply = c.mail(
        "reply before parent",
        n,
        [p],
        sender=f"mobil{n}@web.de",
        to=(STAFF,),
        in_reply_to=parent,
        references=(parent,),
    )
    c.mail(
        "late chain",
        n,
        [p],
        sender=f"buero{n}@gmx.de",
        to=(STAFF,),
        in_reply_to=reply,
        references=(reply,),
    )


def _direct_over_thread(c: Corpus, n: int) -> None:
    p = c.person()
    q = c.person(other_than=p)
    parent = c.mail("direct parent", n, [p], sender=p.email, to=(STAFF,))
    c.mail(
        "direct over thread",
        n,
        [q],
        sender=q.email,
        to=(STAFF,),
        in_reply_to=parent,
        references=(parent,),
    )


def _reply_to_bulk(c: Corpus, n: int) -> None:
    p = c.person()
    parent = c.mail(
        "bulk parent",
        n,
        [],
        sender=f"newsletter@{p.firm.domains[0]}",
        to=(STAFF,),
        headers=(BULK_HEADERS[1],),
    )
    c.mail(
        "reply to bulk",
        n,
        [],
        sender=f"leser{n}@web.de",
        to=(STAFF,),
        in_reply_to=parent,
        references=(parent,),
    )


def _name_only(c: Corpus, n: int) -> None:
    p = c.person()
    c.mail("name only", n, [], sender=f"z{n}@gmail.com", to=(STAFF,), name=p.name)


def _address_in_name(c: Corpus, n: int) -> None:
    p = c.person()
    c.mail("address in name", n, [], sender=f"y{n}@gmail.com", to=(STAFF,), name=p.email)


def _encoded_address_in_name(c: Corpus, n: int) -> None:
    """As above, but the name has an umlaut, so it is written as an RFC 2047 encoded word."""
    p = c.person()
    name = f"Jörg Müller <{p.email}>"
    c.mail("encoded address in name", n, [], sender=f"w{n}@gmail.com", to=(STAFF,), name=name)


def _meeting_attendee(c: Corpus, n: int) -> None:
    p = c.person()
    c.meeting("meeting attendee", n, [p], STAFF, COLLEAGUE, p.email.upper())


def _meeting_organizer(c: Corpus, n: int) -> None:
    p = c.person()
    c.meeting("meeting organizer", n, [p], p.email, STAFF)


def _meeting_several(c: Corpus, n: int) -> None:
    p = c.person()
    q = c.person(other_than=p)
    c.meeting("meeting several", n, [p, q], STAFF, p.email, f"neu{n}@{q.firm.domains[1]}")


def _meeting_idn(c: Corpus, n: int) -> None:
    firm = c.firm_with_idn()
    c.meeting("meeting idna", n, [firm], STAFF, f"kontakt{n}@{(firm.idn or '').upper()}")


def _meeting_internal(c: Corpus, n: int) -> None:
    c.meeting("meeting internal", n, [], STAFF, COLLEAGUE)


def _contact_phone(c: Corpus, n: int) -> None:
    p = c.person()
    s = p.subscriber
    written = (f"030 {s}", f"+49 (0)30 {s}", f"0049 30 {s}", f"030/{s[:3]}-{s[3:]}", p.e164)
    c.call("contact-phone", n, [p], written[n % len(written)], "201", p.name)


def _outbound_call(c: Corpus, n: int) -> None:
    p = c.person()
    c.call("outbound call", n, [p], "201", f"030{p.subscriber}", "Anna")


def _anonymous_call(c: Corpus, n: int) -> None:
    c.call("anonymous call", n, [], ("anonymous", "")[n % 2], "201", "")


def _local_number(c: Corpus, n: int) -> None:
    p = c.person()
    c.call("local number", n, [], p.subscriber, "201", "")


def _internal_call(c: Corpus, n: int) -> None:
    c.call("internal call", n, [], "201", "202", "Anna")


KINDS = (
    _contact_email,
    _free_mail_contact,
    _account_domain,
    _subdomain,
    _idna_domain,
    _look_alike,
    _free_mail_unknown,
    _internal,
    _bulk,
    _auto_submitted_no,
    _outbound,
    _bcc,
    _several,
    _thread,
    _reply_before_parent,
    _direct_over_thread,
    _reply_to_bulk,
    _name_only,
    _address_in_name,
    _encoded_address_in_name,
    _meeting_attendee,
    _meeting_organizer,
    _meeting_several,
    _meeting_idn,
    _meeting_internal,
    _contact_phone,
    _contact_phone,
    _outbound_call,
    _anonymous_call,
    _local_number,
    _internal_call,
)


def corpus(items: int, people: list[Person], rng: random.Random) -> Corpus:
    built = Corpus(rng, people)
    n = 0
    while len(built.cases) < items:
        KINDS[n % len(KINDS)](built, n)
        n += 1
    return built


def write_mbox(path: Path, mails: list[Mail]) -> None:
    """RFC 5322 messages in an mboxrd file (From_ lines in bodies escaped)."""
    with path.open("wb") as out:
        for n, m in enumerate(mails):
            when = WHEN + timedelta(seconds=n)
            lines = [
                f"From: {formataddr((m.name, m.sender))}",
                f"To: {', '.join(m.to)}",
                *([f"Cc: {', '.join(m.cc)}"] if m.cc else []),
                *([f"Bcc: {', '.join(m.bcc)}"] if m.bcc else []),
                f"Subject: Angebot {n} für Ersatzteile",
                f"Date: {format_datetime(when)}",
                f"Message-ID: {m.message_id}",
                *([f"In-Reply-To: {m.in_reply_to}"] if m.in_reply_to else []),
                *([f"References: {' '.join(m.references)}"] if m.references else []),
                *(f"{name}: {value}" for name, value in m.headers),
                "MIME-Version: 1.0",
                "Content-Type: text/plain; charset=utf-8",
                "Content-Transfer-Encoding: 8bit",
                "",
                f"Guten Tag,\n\nanbei die Unterlagen zu Vorgang {n}.\n"
                "From now on: Grüße aus der Fertigung.\n",
            ]
            message = "\n".join(lines).encode("utf-8")
            out.write(f"From {m.sender} {when:%a %b %d %H:%M:%S %Y}\n".encode())
            out.write(_FROM_LINE.sub(rb">\1", message) + b"\n")


def write_ics(path: Path, meetings: list[Meeting]) -> None:
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//crmhub//bench//EN"]
    for n, m in enumerate(meetings):
        start = WHEN + timedelta(hours=n)
        lines += [
            "BEGIN:VEVENT",
            f"UID:{m.uid}",
            f"DTSTAMP:{WHEN:%Y%m%dT%H%M%SZ}",
            f"DTSTART:{start:%Y%m%dT%H%M%SZ}",
            f"DTEND:{start + timedelta(minutes=45):%Y%m%dT%H%M%SZ}",
            f"SUMMARY:Abstimmung {n}",
            f'ORGANIZER;CN="{m.organizer.partition("@")[0]}":mailto:{m.organizer}',
            *(f"ATTENDEE;ROLE=REQ-PARTICIPANT;PARTSTAT=ACCEPTED:mailto:{a}" for a in m.attendees),
            "END:VEVENT",
        ]
    lines.append("END:VCALENDAR")
    path.write_bytes("".join(_fold(line) + "\r\n" for line in lines).encode("utf-8"))


def _fold(line: str) -> str:
    """RFC 5545 folding at 75 octets (never inside a UTF-8 sequence)."""
    parts: list[str] = []
    current = b""
    for char in line:
        encoded = char.encode("utf-8")
        if len(current) + len(encoded) > (75 if not parts else 74):
            parts.append(current.decode("utf-8"))
            current = b""
        current += encoded
    parts.append(current.decode("utf-8"))
    return "\r\n ".join(parts)


def write_cdr(path: Path, calls: list[Call]) -> None:
    """Asterisk Master.csv: the 18 standard columns of connectors.asterisk_cdr, no header."""
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out, quoting=csv.QUOTE_NONNUMERIC, lineterminator="\n")
        for n, call in enumerate(calls):
            start = WHEN + timedelta(minutes=n)
            inbound = not (call.src.isdigit() and len(call.src) <= 4)
            writer.writerow(
                [
                    "",
                    call.src,
                    call.dst,
                    "from-trunk" if inbound else "from-internal",
                    f'"{call.name}" <{call.src}>',
                    f"PJSIP/trunk-{n:08x}" if inbound else f"PJSIP/{call.src}-{n:08x}",
                    f"PJSIP/{call.dst}-{n:08x}" if inbound else f"PJSIP/trunk-{n:08x}",
                    "Dial",
                    f"PJSIP/{call.dst},30",
                    f"{start:%Y-%m-%d %H:%M:%S}",
                    f"{start + timedelta(seconds=5):%Y-%m-%d %H:%M:%S}",
                    f"{start + timedelta(seconds=125):%Y-%m-%d %H:%M:%S}",
                    125,
                    120,
                    "ANSWERED",
                    "DOCUMENTATION",
                    call.uniqueid,
                    "",
                ]
            )


@dataclass(frozen=True)
class Sources:
    """The item files of one corpus, and the connector kind and name that read each."""

    mbox: Path
    ics: Path
    cdr: Path

    def connectors(self) -> list[tuple[str, str, Path]]:
        return [
            ("mbox", "bench-mail", self.mbox),
            ("ics", "bench-calendar", self.ics),
            ("asterisk-cdr", "bench-calls", self.cdr),
        ]


def write_sources(folder: Path, built: Corpus) -> Sources:
    folder.mkdir(parents=True, exist_ok=True)
    sources = Sources(folder / "mail.mbox", folder / "calendar.ics", folder / "Master.csv")
    write_mbox(sources.mbox, built.mails + built.late_mails)
    write_ics(sources.ics, built.meetings)
    write_cdr(sources.cdr, built.calls)
    return sources


@dataclass
class PipelineRun:
    import_seconds: float
    imported_rows: int
    rejected_rows: list[str]
    sync_seconds: float
    reports: list[SyncReport]
    stored: dict[tuple[Channel, str], frozenset[str]]  # (channel, case key) -> account names
    unkeyed: int  # stored items no case key could be read from
    quarantined: list[str]


def item_key(channel: Channel, message_id: str | None, dedupe_key: str, extra: Any) -> str:
    """The case key of a stored item, read the way each connector built it."""
    if channel is Channel.EMAIL:
        return message_id or ""
    if channel is Channel.MEETING:  # ics: "ics:" + UID (+ "|" + RECURRENCE-ID)
        return dedupe_key.removeprefix("ics:").partition("|")[0]
    if channel is Channel.CALL:  # asterisk-cdr: extra["uniqueid"]
        return str((extra or {}).get("uniqueid", ""))
    return ""


async def stored_attributions(hub: Hub) -> tuple[dict[tuple[Channel, str], frozenset[str]], int]:
    async with hub.sessions() as session:
        items = await session.execute(
            select(
                InteractionRow.id,
                InteractionRow.channel,
                InteractionRow.message_id,
                InteractionRow.dedupe_key,
                InteractionRow.extra,
            )
        )
        keys: dict[int, tuple[Channel, str]] = {}
        for id_, channel, message_id, dedupe_key, extra in items:
            kind = Channel(channel)
            keys[id_] = (kind, item_key(kind, message_id, dedupe_key, extra))
        links = await session.execute(
            select(AttributionRow.interaction_id, AccountRow.name)
            .join(InteractionRow, InteractionRow.id == AttributionRow.interaction_id)
            .join(AccountRow, AccountRow.id == AttributionRow.account_id)
            .where(AttributionRow.removed.is_(False))
        )
        accounts: dict[int, set[str]] = defaultdict(set)
        for interaction_id, name in links:
            accounts[interaction_id].add(name)
    stored = {key: frozenset(accounts[id_]) for id_, key in keys.items() if key[1]}
    return stored, sum(1 for key in keys.values() if not key[1])


async def translated(sources: Sources) -> list[Interaction]:
    """The files as each connector translates them, nothing matched or stored."""
    context = ConnectorContext(region="DE", internal_domains=(INTERNAL,))
    out = []
    for kind, name, path in sources.connectors():
        connector = connector_class(kind)(name, {"path": str(path)}, None, context)
        async for raws, _cursor in connector.raw_batches({}):
            out += [
                t.interaction for t in connector.translate_all(raws) if isinstance(t, Translated)
            ]
    return out


async def run_pipeline(work: Path, directory_csv: Path, sources: Sources) -> PipelineRun:
    """Fresh SQLite hub in `work`, configured through the environment as `crmhub` is."""
    os.environ["CRMHUB_DATABASE_URL"] = f"sqlite:///{work / 'crmhub.db'}"
    os.environ["CRMHUB_INTERNAL_DOMAINS"] = INTERNAL
    os.environ["CRMHUB_DEFAULT_REGION"] = "DE"
    hub = build_hub(load_settings())
    try:
        started = time.perf_counter()
        imported = await import_directory(hub, directory_csv)
        import_seconds = time.perf_counter() - started
        for kind, name, path in sources.connectors():
            await add_connector(hub, kind, name, {"path": str(path)}, {})
        started = time.perf_counter()
        reports = await sync_all(hub)
        sync_seconds = time.perf_counter() - started
        stored, unkeyed = await stored_attributions(hub)
        async with hub.sessions() as session:
            quarantined = [
                f"{q.connector} {q.external_id}: {q.reason}"
                for q in (await session.execute(select(QuarantineRow))).scalars()
            ]
    finally:
        await hub.close()
    return PipelineRun(
        import_seconds,
        imported.rows,
        [str(e) for e in imported.errors],
        sync_seconds,
        reports,
        stored,
        unkeyed,
        quarantined,
    )


@dataclass
class Score:
    true_pos: int = 0
    false_pos: int = 0
    false_neg: int = 0
    items: Counter[str] = field(default_factory=Counter)
    wrong_items: Counter[str] = field(default_factory=Counter)
    wrong_pairs: Counter[str] = field(default_factory=Counter)
    missed_pairs: Counter[str] = field(default_factory=Counter)
    not_stored: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))

    @property
    def precision(self) -> float:
        return self.true_pos / max(1, self.true_pos + self.false_pos)

    @property
    def recall(self) -> float:
        return self.true_pos / max(1, self.true_pos + self.false_neg)


def score(cases: list[Case], stored: dict[tuple[Channel, str], frozenset[str]]) -> Score:
    """Micro precision and recall over (item, account) pairs; a case not stored found none."""
    s = Score()
    for case in cases:
        s.items[case.trap] += 1
        found = stored.get((case.channel, case.key))
        if found is None:
            s.not_stored[case.trap] += 1
        got = found or frozenset()
        wrong, missed = got - case.accounts, case.accounts - got
        s.true_pos += len(got & case.accounts)
        s.false_pos += len(wrong)
        s.false_neg += len(missed)
        s.wrong_pairs[case.trap] += len(wrong)
        s.missed_pairs[case.trap] += len(missed)
        if wrong or missed:
            s.wrong_items[case.trap] += 1
            if len(s.examples[case.trap]) < 2:
                s.examples[case.trap].append(
                    f"{case.key}: expected {sorted(case.accounts)}, stored {sorted(got)}"
                )
    return s


def print_quality(built: Corpus, run: PipelineRun, s: Score, pipeline_contacts: int) -> None:
    by_channel = Counter(case.channel.value for case in built.cases)
    pairs = sum(len(case.accounts) for case in built.cases)
    print(
        f"corpus: {len(built.cases):,} items ({by_channel['email']:,} mails, "
        f"{by_channel['meeting']:,} meetings, {by_channel['call']:,} calls), {pairs:,} "
        f"(item, account) pairs to find, {len(s.items)} traps"
    )
    print(
        f"directory: {run.imported_rows:,} CSV rows ({pipeline_contacts:,} contacts) imported by "
        f"import_directory in {run.import_seconds:.1f} s, {len(run.rejected_rows)} rejected"
    )
    for line in run.rejected_rows[:5]:
        print(f"  rejected: {line}")
    fetched = sum(r.fetched for r in run.reports)
    print(
        f"pipeline (sync_all over mbox, ics, asterisk-cdr into SQLite): {run.sync_seconds:.2f} s "
        f"wall, {fetched / run.sync_seconds:,.0f} items/s"
    )
    for r in run.reports:
        print(
            f"  {r.connector}: fetched {r.fetched}, new {r.new}, duplicates {r.duplicates}, "
            f"matched {r.matched}, unmatched {r.unmatched}, quarantined {r.quarantined}, "
            f"errors {r.errors}" + (f" ({r.error})" if r.error else "")
        )
    for line in run.quarantined[:5]:
        print(f"  quarantined: {line}")
    keys = {(case.channel, case.key) for case in built.cases}
    print(
        f"stored: {len(run.stored) + run.unkeyed:,} items, {len(keys & run.stored.keys()):,} of "
        f"{len(keys):,} cases found back, {len(run.stored.keys() - keys) + run.unkeyed} stored "
        "items match no case"
    )
    print(f"precision {s.precision:.4f} (target >= 0.995), recall {s.recall:.4f} (target >= 0.98)")
    print(f"  {'trap':<24} items wrong false+ false- (wrong: items whose accounts differ)")
    for trap in sorted(s.items):
        lost = f", {s.not_stored[trap]} not stored" if s.not_stored[trap] else ""
        print(
            f"  {trap:<24} {s.items[trap]:>5} {s.wrong_items[trap]:>5} "
            f"{s.wrong_pairs[trap]:>6} {s.missed_pairs[trap]:>6}{lost}"
        )
        for example in s.examples.get(trap, []):
            print(f"      e.g. {example}")


def print_throughput(interactions: list[Interaction], index: IdentityIndex) -> None:
    """attribute() alone, cold and warm, against bare dict lookups of the same addresses."""
    threads: dict[str, frozenset[int]] = {}
    for interaction in interactions:
        decision = attribute(interaction, index, threads)
        got = frozenset(a.account_id for a in decision.attributions)
        if interaction.message_id and got and not decision.not_logged:
            threads[interaction.message_id] = got
    for cache in (normalize_email, normalize_phone, _normalize_host):
        cache.cache_clear()  # cold: every address is new to the normalisers
    started = time.perf_counter()
    for interaction in interactions:
        attribute(interaction, index, threads)
    seconds = time.perf_counter() - started
    started = time.perf_counter()
    for interaction in interactions:
        attribute(interaction, index, threads)
    warm = time.perf_counter() - started
    keys = [p.address.lower() for i in interactions for p in i.participants]
    started = time.perf_counter()
    for key in keys:
        index.emails.get(key)
    floor = time.perf_counter() - started
    print(
        f"attribute(): {len(interactions) / seconds:,.0f} items/s on one core with every "
        f"address new (target >= 50,000); {len(interactions) / warm:,.0f} items/s when the "
        "addresses were seen before, as in a mailbox"
    )
    print(
        f"bare dict lookups of the same addresses: {len(interactions) / floor:,.0f} items/s; "
        f"attribute() / bare = {seconds / floor:.1f}x (cold), {warm / floor:.1f}x (warm)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--items", type=int, default=6_000, help="items in each corpus")
    parser.add_argument(
        "--pipeline-contacts",
        type=int,
        default=2_000,
        help="contacts imported for the pipeline run (at most --contacts)",
    )
    parser.add_argument(
        "--contacts", type=int, default=100_000, help="contacts in the throughput index"
    )
    args = parser.parse_args()
    firms, people = directory(args.contacts)
    pipeline_contacts = min(args.pipeline_contacts, args.contacts)
    used_people = people[:pipeline_contacts]
    used_firms = firms[: -(-pipeline_contacts // PER_ACCOUNT)]
    built = corpus(args.items, used_people, random.Random(5))
    everyone = corpus(args.items, people, random.Random(6))
    with tempfile.TemporaryDirectory(prefix="crmhub-bench-matching-") as tmp:
        work = Path(tmp)
        directory_csv = work / "directory.csv"
        write_directory(directory_csv, used_firms, used_people)
        sources = write_sources(work / "pipeline", built)
        run = asyncio.run(run_pipeline(work, directory_csv, sources))
        interactions = asyncio.run(translated(write_sources(work / "throughput", everyone)))
    print_quality(built, run, score(built.cases, run.stored), pipeline_contacts)

    started = time.perf_counter()
    index = index_of(firms, people)
    print(
        f"throughput directory: {len(firms):,} accounts, {len(people):,} contacts, in-memory "
        f"index built in {time.perf_counter() - started:.2f} s; {len(interactions):,} items of "
        "the same generator over all of them, as the connectors translate them"
    )
    print_throughput(interactions, index)


if __name__ == "__main__":
    main()
