"""The data set of bench/reads.py: a customer directory file, and connectors that make up items.

A company of fifty salespeople over two years. Items reach the database the way a sync brings
them: each connector here is a plugin kind (`bench.readsdata:BenchMail`, DESIGN.md "a dotted path
loads a third-party connector") whose fetch step makes up raw items in the source's own format
(RFC 822 mail, Asterisk CDR lines, iCalendar events) and whose translation is the project's own
(connectors.mail, AsteriskCdrConnector, IcsConnector). Matching, storing, review cases and
cursors are hub.pipeline's sync; the directory goes through `crmhub directory import`'s code.

Shape at SIZE items (the same per account at every size, so that the growth from 100k to 1M
measures the size of the tables, not bigger accounts):
- SIZE/100 accounts with 10 contacts each (10,000 and 100,000 at 1M; 1,000 and 10,000 at 100k),
  each contact with one address and one phone number;
- account 0 is the big one: 10,000 items (a tenth of SIZE below 100k), four of its contacts
  hold a fifth of them each (2,000: enough for page 21 of a contact's timeline);
- every other account about 40-145 items (median 88 at 100k, 94 at 1M); mail 70 %, calls 20 %,
  meetings 10 %, spread evenly over the two years before END; a third of the accounts write
  English, the rest German (with umlauts in names, subjects and bodies);
- unmatched: 1.8 % mail from unknown company domains, 1.2 % from free-mail senders (half of
  them using a contact's name: review cases "unknown-sender" and "name-lookalike"), 1 % calls
  from unknown numbers; a tenth of all mail is in the bench user's own mailbox (`SALES`);
- words: German and English subjects and bodies; each of COMMON is in about 20 % of the items
  (a quarter of mails and meetings; calls carry no text), each of RARE in exactly 5 attributed
  mails spread over the two years. Both stand in the subject or the first line of the body
  (so in the snippet as well).
"""

from __future__ import annotations

import base64
import csv
import functools
import io
import random
from array import array
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

from sqlalchemy import select

from config.settings import Settings
from connectors.asterisk_cdr import AsteriskCdrConnector
from connectors.base import HUB_OPTIONS, ConfigurationError, Connector, FileConnector
from connectors.ics import IcsConnector
from connectors.mail import translate_in
from hub.admin import add_connector, import_directory
from hub.bootstrap import build_hub
from hub.model import Interaction, RawItem
from hub.pipeline import SyncReport, sync_connector
from storage.tables import ConnectorRow
from storage.tokens import create_token
from storage.users import add_user, user_by_email

DATASET_VERSION = 1  # raise whenever what this module generates changes: caches are keyed by it
SEED = 18
END = datetime(2025, 6, 30, 18, 0, tzinfo=UTC)
SPAN = timedelta(days=730)
OUR_DOMAIN = "ourco.example"
SALES = f"sales@{OUR_DOMAIN}"  # the bench user: owns the mailbox "mail-sales"
ADMIN = f"admin@{OUR_DOMAIN}"
PASSWORD = "bench password 18"  # of both bench users
SECRET_KEY = "bench-reads-secret-key-0123456789"
TEAM = f"team@{OUR_DOMAIN}"  # owns the shared mailbox of the other 49 salespeople
STAFF = 50
CONTACTS_PER_ACCOUNT = 10
BIG_ITEMS = 10_000
HEAVY_CONTACTS = 4  # of the big account, a fifth of its items each
COMMON = ("Liefertermin", "invoice", "Ersatzteile")
RARE = ("Zollfreigabe", "Kalibrierschein", "Akkreditiv", "escrow")
RARE_ITEMS = 5
AREAS = ("221", "30", "89", "40", "69", "711")
FREE_MAIL = ("gmail.com", "web.de", "gmx.de")

# Item kinds in the plan.
ATTRIBUTED = -1  # until the plan decides the channel
MAIL, CALL, MEETING, STRAY_MAIL, FREE_SENDER, STRAY_CALL = range(6)
# Parts: which connector fetches an item.
PARTS = ("sales", "team", "pbx", "calendar")
SALES_PART, TEAM_PART, PBX_PART, CALENDAR_PART = range(4)

FIRST = (
    "Jürgen Jörg Sören Björn Günther Anna Maria Sophie Lena Katrin Thomas Stefan Andreas "
    "Michael Sabine Claudia Petra Uwe Ralf Jens Olivia Emma Jack Oliver Grace Chloe Liam Noah "
    "Zoë Renée"
).split()
LAST = (
    "Müller Schäfer Böhm Weiß Schmidt Schneider Fischer Meyer Wagner Becker Hoffmann Koch "
    "Richter Klein Wolf Schröder Neumann Schwarz Zimmermann Braun Krüger Hofmann Hartmann "
    "Lange Smith Jones Taylor Brown Walker Green"
).split()
FIRMS = (
    "Maschinenbau Anlagentechnik Logistik Elektrotechnik Kunststofftechnik Metallbau "
    "Feinmechanik Automation Engineering Systems"
).split()
LEGAL = ("GmbH", "AG", "GmbH & Co. KG", "Ltd", "SE")

SUBJECTS = {
    "de": (
        "Angebot {order}",
        "Bestellung {order}",
        "Rückfrage zur Bestellung {order}",
        "Termin zur Inbetriebnahme",
        "Unterlagen Projekt {order}",
        "Preisanfrage {order}",
        "Reklamation zu Auftrag {order}",
        "Protokoll unserer Besprechung",
    ),
    "en": (
        "Quote {order}",
        "Order {order}",
        "Question about order {order}",
        "Commissioning date",
        "Project documents {order}",
        "Price request {order}",
        "Complaint about order {order}",
        "Minutes of our meeting",
    ),
}
MEETINGS = {
    "de": ("Projektbesprechung", "Jahresgespräch", "Technische Abstimmung", "Werksbesuch"),
    "en": ("Project review", "Annual review", "Technical alignment", "Plant visit"),
}
SENTENCES = {
    "de": (
        "vielen Dank für Ihre Nachricht von gestern.",
        "anbei finden Sie die überarbeiteten Unterlagen zur Anlage.",
        "wir haben die Zeichnungen geprüft und zwei Punkte markiert.",
        "die Übergabe der Maschine ist für Ende des Monats geplant.",
        "können wir uns am Donnerstag kurz telefonisch abstimmen?",
        "die Größe der Charge bleibt wie besprochen.",
        "unser Techniker kommt am Montag zur Inbetriebnahme.",
        "bitte prüfen Sie die Mengen in der Bestellung.",
        "der Preis gilt bis zum Ende des Quartals.",
        "für Rückfragen stehe ich Ihnen gern zur Verfügung.",
    ),
    "en": (
        "thanks for your message from yesterday.",
        "please find attached the revised documents for the plant.",
        "we reviewed the drawings and marked two points.",
        "the handover of the machine is planned for the end of the month.",
        "could we have a short call on Thursday?",
        "the batch size stays as discussed.",
        "our technician will come on Monday for commissioning.",
        "please check the quantities in the order.",
        "the price is valid until the end of the quarter.",
        "let me know if you have any questions.",
    ),
}
ABOUT = {
    "de": "es geht um {word} für Auftrag {order}.",
    "en": "this is about {word} for order {order}.",
}
GREETING = {"de": "Guten Tag {name},", "en": "Dear {name},"}
CLOSING = {"de": "Mit freundlichen Grüßen", "en": "Kind regards"}


def _check_vocabulary() -> None:
    """A probe word must be found only where it was put: no filler may contain one."""
    filler = " ".join(
        [
            *(s for v in SUBJECTS.values() for s in v),
            *(s for v in MEETINGS.values() for s in v),
            *(s for v in SENTENCES.values() for s in v),
            *ABOUT.values(),
            *GREETING.values(),
            *CLOSING.values(),
            *FIRST,
            *LAST,
            *FIRMS,
            *LEGAL,
        ]
    ).lower()
    for word in (*COMMON, *RARE):
        assert word.lower() not in filler, word
        assert all(word.lower() not in w.lower() for w in (*COMMON, *RARE) if w != word), word


_check_vocabulary()


def ascii_fold(text: str) -> str:
    table = {"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss", "ë": "e", "é": "e"}
    return "".join(table.get(ch, ch) for ch in text.lower())


@dataclass(frozen=True)
class Shape:
    size: int

    @property
    def accounts(self) -> int:
        return max(10, self.size // 100)

    @property
    def contacts(self) -> int:
        return self.accounts * CONTACTS_PER_ACCOUNT

    @property
    def big_items(self) -> int:
        return min(BIG_ITEMS, self.size // 10)


def account_name(a: int) -> str:
    return f"{LAST[a % len(LAST)]} {FIRMS[a % len(FIRMS)]} {a:05d} {LEGAL[a % len(LEGAL)]}"


def account_domain(a: int) -> str:
    return f"kunde{a}.example"


def contact_name(c: int) -> str:
    return f"{FIRST[c % len(FIRST)]} {LAST[(c // len(FIRST)) % len(LAST)]}"


def contact_email(c: int) -> str:
    first, last = contact_name(c).split(" ")
    return f"{ascii_fold(first)}.{ascii_fold(last)}@{account_domain(c // CONTACTS_PER_ACCOUNT)}"


def contact_phone(c: int) -> tuple[str, str]:
    """(area code, subscriber number): unique per contact, a possible German number."""
    return AREAS[c % len(AREAS)], str(5_000_000 + c // len(AREAS))


def unknown_phone(k: int) -> tuple[str, str]:
    """A number that is nobody's in the directory (8xxxxxx; contacts have 5xxxxxx)."""
    return AREAS[k % len(AREAS)], str(8_000_000 + k)


def staff(k: int) -> tuple[str, str]:
    """(name, address) of salesperson k; 0 is the bench user."""
    if k == 0:
        return "Sam Sales", SALES
    return f"Sales Person {k}", f"sales{k}@{OUR_DOMAIN}"


def write_directory(shape: Shape, path: Path) -> int:
    """The directory CSV (`crmhub directory import` format); returns the number of rows."""
    with path.open("w", encoding="utf-8", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(("account", "domains", "contact", "emails", "phones", "owner"))
        rows = 0
        for c in range(shape.contacts):
            a = c // CONTACTS_PER_ACCOUNT
            area, number = contact_phone(c)
            owner = SALES if a % 10 == 0 else staff(1 + a % (STAFF - 1))[1]
            out.writerow(
                (
                    account_name(a),
                    account_domain(a),
                    contact_name(c),
                    contact_email(c),
                    f"+49 {area} {number}",
                    owner,
                )
            )
            rows += 1
    return rows


class Plan:
    """Which item is what: kind, part (connector), account and contact, in time order.

    Built once per process from SEED (a second or two at 1M) and kept in compact arrays; the
    connectors then make up each item's text from its own seeded generator.
    """

    def __init__(self, size: int) -> None:
        self.shape = Shape(size)
        rng = random.Random(SEED * 1_000_003 + size)
        stray_mail, free_sender, stray_call = size * 18 // 1000, size * 12 // 1000, size // 100
        attributed = size - stray_mail - free_sender - stray_call
        kinds = [ATTRIBUTED] * attributed + [STRAY_MAIL] * stray_mail
        kinds += [FREE_SENDER] * free_sender + [STRAY_CALL] * stray_call
        rng.shuffle(kinds)
        self.counts = self._account_counts(rng, attributed)
        owners = [a for a, n in enumerate(self.counts) for _ in range(n)]
        rng.shuffle(owners)
        self.kind = array("b", kinds)
        self.account = array("i", [-1] * size)
        self.contact = array("i", [-1] * size)
        self.part = array("b", [0] * size)
        heavy = [0.2] * HEAVY_CONTACTS
        rest = CONTACTS_PER_ACCOUNT - HEAVY_CONTACTS
        big_weights = heavy + [(1 - sum(heavy)) / rest] * rest
        positions = iter(owners)
        for n, kind in enumerate(kinds):
            if kind == ATTRIBUTED:
                a = next(positions)
                if a == 0:
                    which = rng.choices(range(CONTACTS_PER_ACCOUNT), big_weights)[0]
                else:
                    which = rng.randrange(CONTACTS_PER_ACCOUNT)
                self.account[n], self.contact[n] = a, a * CONTACTS_PER_ACCOUNT + which
                roll = rng.random()
                kind = MAIL if roll < 0.70 else CALL if roll < 0.89 else MEETING
                self.kind[n] = kind
            if kind in (MAIL, STRAY_MAIL, FREE_SENDER):
                self.part[n] = SALES_PART if rng.random() < 0.10 else TEAM_PART
            elif kind in (CALL, STRAY_CALL):
                self.part[n] = PBX_PART
            else:
                self.part[n] = CALENDAR_PART
        self.rare = self._rare_items()

    def _account_counts(self, rng: random.Random, attributed: int) -> list[int]:
        shape = self.shape
        weights = [rng.randint(50, 150) for _ in range(shape.accounts - 1)]
        left = attributed - shape.big_items
        total = sum(weights)
        counts = [shape.big_items] + [w * left // total for w in weights]
        for a in range(attributed - sum(counts)):
            counts[1 + a % (len(counts) - 1)] += 1
        return counts

    def _rare_items(self) -> dict[int, str]:
        """Each RARE word in RARE_ITEMS attributed mails, from the oldest to the newest."""
        mails = [n for n in range(len(self.kind)) if self.kind[n] == MAIL]
        found: dict[int, str] = {}
        for w, word in enumerate(RARE):
            for k in range(RARE_ITEMS):
                at = (k + (w + 1) / (len(RARE) + 1)) / RARE_ITEMS
                found[mails[int(at * (len(mails) - 1))]] = word
        return found

    def time(self, n: int) -> datetime:
        """Evenly spaced, in item order; seconds only, as most sources give them."""
        step = SPAN / len(self.kind)
        return (END - SPAN + step * n).replace(microsecond=0)

    def items_of(self, part: int) -> list[int]:
        return [n for n in range(len(self.part)) if self.part[n] == part]

    # What bench/reads.py asks for: rows to rotate over.

    def typical_accounts(self, count: int) -> list[int]:
        """Accounts with about the median number of items (the same at every size)."""
        median = sorted(self.counts[1:])[len(self.counts) // 2]
        near = [a for a in range(1, len(self.counts)) if abs(self.counts[a] - median) <= 5]
        return near[:count]

    def heavy_contacts(self) -> list[int]:
        return list(range(HEAVY_CONTACTS))

    def known_callers(self, count: int) -> list[int]:
        """Contacts of typical accounts: each has about ten items."""
        return [a * CONTACTS_PER_ACCOUNT + 3 for a in self.typical_accounts(count)]


@functools.lru_cache(maxsize=2)
def plan_of(size: int) -> Plan:
    return Plan(size)


def _words(rng: random.Random, lang: str, order: int, rare: str | None) -> tuple[str, str]:
    """(text for the subject, first line of the body): the probe words this item carries."""
    subject_words: list[str] = []
    body_words: list[str] = []
    for word in COMMON:
        if rng.random() < 0.25:
            (subject_words if rng.random() < 0.5 else body_words).append(word)
    if rare:
        body_words.append(rare)
    about = " ".join(ABOUT[lang].format(word=w, order=order) for w in body_words)
    return " – ".join(subject_words), about[:1].upper() + about[1:]


def _body(rng: random.Random, lang: str, greeting_name: str, about: str, signature: str) -> str:
    lines = [GREETING[lang].format(name=greeting_name), ""]
    if about:
        lines.append(about)
    sentences = rng.sample(SENTENCES[lang], rng.randint(3, 5))
    lines.extend(s[0].upper() + s[1:] for s in sentences)
    lines += ["", CLOSING[lang], signature]
    return "\n".join(lines)


def _encoded(text: str) -> str:
    """A header value as mail clients write it: RFC 2047 when not ASCII (one encoded word:
    the standard library's Header.encode was two thirds of making a mail)."""
    if text.isascii():
        return text
    return f"=?utf-8?b?{base64.b64encode(text.encode()).decode()}?="


def _mailbox(name: str, address: str) -> str:
    return f"{_encoded(name)} <{address}>"


def _lang(account: int) -> str:
    return "en" if account % 3 == 0 else "de"


class _Generated(Connector):
    """What every bench connector shares: its settings, and batches of the items of its part.

    Comes first in the bases, so that its settings and `_read` replace those of the real
    connector whose translation the subclass keeps.
    """

    options: ClassVar[dict[str, str]] = {
        "size": "number of items of the whole data set",
        "part": "which of the data set's sources this connector is: " + ", ".join(PARTS),
    }
    required: ClassVar[tuple[str, ...]] = ("size", "part")
    parts: ClassVar[tuple[int, ...]] = ()

    @classmethod
    def validate_settings(cls, settings: Mapping[str, str]) -> None:
        super().validate_settings(settings)
        if settings["part"] not in [PARTS[p] for p in cls.parts]:
            raise ConfigurationError(f"{cls.kind}: part={settings['part']!r} is not mine")
        if not str(settings["size"]).isdigit():
            raise ConfigurationError(f"{cls.kind}: size={settings['size']!r} is not a number")

    def _read(self, cursor: dict[str, Any]) -> Iterator[tuple[list[RawItem], dict[str, Any]]]:
        plan = plan_of(int(self.settings["size"]))
        items = plan.items_of(PARTS.index(self.settings["part"]))
        at = int(cursor.get("next", 0))
        while at < len(items):
            chunk = items[at : at + self.batch_size]
            at += len(chunk)
            yield [self.make(plan, n) for n in chunk], {"next": at}

    def make(self, plan: Plan, n: int) -> RawItem:
        raise NotImplementedError


class BenchMail(_Generated, FileConnector):
    """A mailbox: `part=sales` is the bench user's own, `part=team` everybody else's."""

    kind = "bench-mail"
    parts = (SALES_PART, TEAM_PART)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._last: dict[int, str] = {}  # contact -> Message-ID of their latest mail

    def make(self, plan: Plan, n: int) -> RawItem:
        rng = random.Random(n * 7919 + SEED)
        kind, a, c = plan.kind[n], plan.account[n], plan.contact[n]
        k = 0 if plan.part[n] == SALES_PART else 1 + rng.randrange(STAFF - 1)
        our_name, our_address = staff(k)
        order = 40_000 + rng.randrange(60_000)
        if kind == MAIL:
            lang = _lang(a)
            them = (contact_name(c), contact_email(c))
            area, number = contact_phone(c)
            signature = f"{them[0]}\n{account_name(a)}\nTel. +49 {area} {number}"
        else:
            lang = "de" if n % 2 else "en"
            pool = max(20, plan.shape.size // 2000)
            s = rng.randrange(pool)
            first, last = FIRST[s % len(FIRST)], LAST[(s // len(FIRST)) % len(LAST)]
            if kind == FREE_SENDER:
                domain = FREE_MAIL[s % len(FREE_MAIL)]
                name = contact_name(s * 7 % plan.shape.contacts) if s % 2 else f"{first} {last}"
                them = (name, f"{ascii_fold(first)}.{ascii_fold(last)}{s}@{domain}")
            else:
                them = (f"{first} {last}", f"{ascii_fold(first)}@neu{s}.example")
            signature = them[0]
        words, about = _words(rng, lang, order, plan.rare.get(n))
        subject = rng.choice(SUBJECTS[lang]).format(order=order)
        if words:
            subject = f"{subject} – {words}"
        message_id = f"m{n}.v{DATASET_VERSION}@bench.example"
        parent = self._last.get(c) if kind == MAIL else None
        inbound = kind != MAIL or rng.random() < 0.55
        if parent and rng.random() < 0.3:
            subject = ("AW: " if lang == "de" else "Re: ") + subject
        else:
            parent = None
        if kind == MAIL:
            self._last[c] = message_id
        sender, recipient = (them, (our_name, our_address))
        if not inbound:
            sender, recipient = recipient, sender
        body = _body(rng, lang, recipient[0], about, sender[0] if not inbound else signature)
        head = [
            f"From: {_mailbox(*sender)}",
            f"To: {_mailbox(*recipient)}",
        ]
        if kind == MAIL and rng.random() < 0.15:
            colleague = a * CONTACTS_PER_ACCOUNT + rng.randrange(CONTACTS_PER_ACCOUNT)
            if colleague != c:
                cc = (contact_name(colleague), contact_email(colleague))
                head.append(f"Cc: {_mailbox(*cc)}")
        head += [
            f"Subject: {_encoded(subject)}",
            f"Date: {format_datetime(plan.time(n))}",
            f"Message-ID: <{message_id}>",
        ]
        if parent:
            head += [f"In-Reply-To: <{parent}>", f"References: <{parent}>"]
        head += [
            "MIME-Version: 1.0",
            "Content-Type: text/plain; charset=utf-8",
            "Content-Transfer-Encoding: 8bit",
        ]
        data = ("\r\n".join(head) + "\r\n\r\n" + body.replace("\n", "\r\n") + "\r\n").encode()
        return RawItem(f"mail:{n}", data)

    def translate(self, raw: RawItem) -> Interaction:
        return translate_in(self.context, raw.data)


class BenchCalls(_Generated, AsteriskCdrConnector):
    """The PBX: Asterisk CDR lines, translated by the real CDR connector."""

    kind = "bench-calls"
    parts = (PBX_PART,)

    def make(self, plan: Plan, n: int) -> RawItem:
        rng = random.Random(n * 7919 + SEED)
        extension = f"2{rng.randrange(STAFF):03d}"
        if plan.kind[n] == CALL:
            c = plan.contact[n]
            area, number = contact_phone(c)
            name = contact_name(c)
        else:
            area, number = unknown_phone(rng.randrange(max(20, plan.shape.size // 200)))
            name = ""
        spelled = rng.choice((f"0{area} {number}", f"+49{area}{number}", f"0{area}{number}"))
        inbound = plan.kind[n] == STRAY_CALL or rng.random() < 0.6
        src, dst = (spelled, extension) if inbound else (extension, spelled)
        clid = f'"{name}" <{src}>' if inbound and name else src
        start = plan.time(n).astimezone(ZoneInfo(self.context.timezone))
        answered = rng.random() < 0.85
        billsec = rng.randint(20, 900) if answered else 0
        end = start + timedelta(seconds=billsec + 8)
        stamp = "%Y-%m-%d %H:%M:%S"
        row = (
            "",
            src,
            dst,
            "from-external" if inbound else "from-internal",
            clid,
            f"SIP/trunk-{n:08x}",
            f"SIP/{dst}-{n:08x}",
            "Dial",
            f"SIP/{dst},30",
            start.strftime(stamp),
            (start + timedelta(seconds=8)).strftime(stamp) if answered else "",
            end.strftime(stamp),
            str(billsec + 8),
            str(billsec),
            "ANSWERED" if answered else "NO ANSWER",
            "DOCUMENTATION",
            f"{int(start.timestamp())}.{n}",
            "",
        )
        line = io.StringIO()
        csv.writer(line, lineterminator="\n").writerow(row)
        return RawItem(f"call:{n}", line.getvalue().encode(), "text/csv")


def _ics_text(value: str) -> str:
    return value.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,").replace("\n", "\\n")


class BenchMeetings(_Generated, IcsConnector):
    """A team calendar: single events, translated by the real iCalendar connector."""

    kind = "bench-meetings"
    parts = (CALENDAR_PART,)

    def make(self, plan: Plan, n: int) -> RawItem:
        rng = random.Random(n * 7919 + SEED)
        a, c = plan.account[n], plan.contact[n]
        lang = _lang(a)
        order = 40_000 + rng.randrange(60_000)
        words, about = _words(rng, lang, order, None)
        summary = rng.choice(MEETINGS[lang]) + (f" – {words}" if words else "")
        k = 0 if rng.random() < 0.10 else 1 + rng.randrange(STAFF - 1)
        organizer = staff(k)
        attendees = {c} | {
            a * CONTACTS_PER_ACCOUNT + rng.randrange(CONTACTS_PER_ACCOUNT)
            for _ in range(rng.randrange(3))
        }
        sentences = [s[0].upper() + s[1:] for s in rng.sample(SENTENCES[lang], 2)]
        description = " ".join([about, *sentences] if about else sentences)
        start = plan.time(n)
        fmt = "%Y%m%dT%H%M%SZ"
        uid = f"meeting-{n}.v{DATASET_VERSION}@bench.example"
        lines = [
            "BEGIN:VEVENT",
            f"UID:{uid}",
            f"DTSTAMP:{start.strftime(fmt)}",
            f"DTSTART:{start.strftime(fmt)}",
            f"DTEND:{(start + timedelta(minutes=rng.choice((30, 60, 90)))).strftime(fmt)}",
            f"SUMMARY:{_ics_text(summary)}",
            f'ORGANIZER;CN="{organizer[0]}":mailto:{organizer[1]}',
            *(
                f'ATTENDEE;CN="{contact_name(x)}":mailto:{contact_email(x)}'
                for x in sorted(attendees)
            ),
            f"DESCRIPTION:{_ics_text(description)}",
            f"LOCATION:{_ics_text(account_name(a))}",
            "END:VEVENT",
        ]
        return RawItem(uid, ("\r\n".join(lines) + "\r\n").encode(), "text/calendar")


# name -> (class, part, the owner of the source: "" for nobody's)
CONNECTORS: dict[str, tuple[type[Connector], str, str]] = {
    "mail-sales": (BenchMail, "sales", SALES),
    "mail-team": (BenchMail, "team", TEAM),
    "pbx": (BenchCalls, "pbx", ""),
    "calendar": (BenchMeetings, "calendar", ""),
}


def settings_for(url: str) -> Settings:
    """The settings of every process of the bench: the loader here and `crmhub serve`."""
    return Settings.model_validate(
        {
            "database_url": url,
            "internal_domains": [OUR_DOMAIN],
            "default_region": "DE",
            "timezone": "Europe/Berlin",
            "secret_key": SECRET_KEY,
        }
    )


# (connector, fetched, its items); ("directory", rows, rows) once the directory is in
Progress = Callable[[str, int, int], None]


async def load(url: str, size: int, workdir: Path, progress: Progress) -> list[SyncReport]:
    """Directory, users and connectors, then one sync of each connector: the way an operator
    fills crmhub. Every step may run again on a half-built database (an interrupted build):
    the directory import updates, users and connectors are added once, syncs resume from
    their committed cursors."""
    hub = build_hub(settings_for(url), migrate=True)
    try:
        directory = workdir / f"directory-{size}.csv"
        rows = write_directory(Shape(size), directory)
        imported = await import_directory(hub, directory)
        if imported.errors:
            raise RuntimeError(f"directory rows rejected: {imported.errors[:3]}")
        progress("directory", rows, rows)
        async with hub.sessions() as session, session.begin():
            for email, role in ((ADMIN, "admin"), (SALES, "sales")):
                if await user_by_email(session, email) is None:
                    await add_user(session, email, role, PASSWORD, actor="bench")
            known = set((await session.execute(select(ConnectorRow.name))).scalars())
        for name, (cls, part, owner) in CONNECTORS.items():
            if name not in known:
                values = {"size": str(size), "part": part, **({"owner": owner} if owner else {})}
                await add_connector(hub, f"{cls.__module__}:{cls.__name__}", name, values, {})
        plan = plan_of(size)
        index = await hub.identity_index()
        reports = []
        for name, (_, part, _) in CONNECTORS.items():
            total = len(plan.items_of(PARTS.index(part)))
            report = await sync_connector(
                hub, name, index, functools.partial(_relay, progress, total)
            )
            if report.errors:
                raise RuntimeError(f"sync of {name} failed: {report.error}")
            reports.append(report)
        return reports
    finally:
        await hub.close()


def _relay(progress: Progress, total: int, connector: str, fetched: int) -> None:
    progress(connector, fetched, total)


async def tokens(url: str) -> dict[str, str]:
    """A fresh API token of each bench user, by address."""
    hub = build_hub(settings_for(url), migrate=False)
    try:
        async with hub.sessions() as session, session.begin():
            found = {}
            for email in (ADMIN, SALES):
                user = await user_by_email(session, email)
                if user is None:
                    raise RuntimeError(f"{email} is missing: rebuild the data set")
                found[email] = await create_token(session, user, actor="bench")
            return found
    finally:
        await hub.close()


assert set(HUB_OPTIONS).isdisjoint(_Generated.options)
