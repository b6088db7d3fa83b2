"""Deterministic German/English B2B demo data, written as the files crmhub's file connectors read.

A demo should feel like a real Mittelstand sales team's year (umlauts, mixed phone formats, mail
threads, newsletters, calls) and also hold the awkward cases connectors meet in the wild, so the
first run exercises quarantine and the unmatched inbox too. Everything comes from one seeded
`random.Random` and fixed tables (sets serve membership only, never iteration), so the same seed
and `now` give byte-identical files. Standard library only, so it runs before anything is set up.
"""

from __future__ import annotations

import base64
import csv
import quopri
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from email.charset import QP, Charset
from email.header import Header
from email.utils import format_datetime, formataddr
from html import escape
from pathlib import Path
from urllib.parse import quote

INTERNAL_DOMAIN = "nordwind-systeme.example"
FREE_MAIL = ("gmail.com", "web.de", "gmx.de")
DEFAULT_NOW = datetime(2026, 11, 1, tzinfo=UTC)  # fixed, so that `now=None` stays reproducible
_STAFF = (
    "Anna Becker",
    "Jan Petersen",
    "Katharina Groß",
    "Jörn Sievers",
    "Emily Carter",
    "Lars Hansen",
)  # extensions 201..206
_FIRST = {
    "de": "Jürgen Anna Thomas Sabine Michael Claudia Stefan Katrin Andreas Birgit Frank "
    "Petra Markus Susanne Jörg Ute Matthias Heike Uwe Björn Lena Tobias Sören Günther "
    "Hans-Peter",
    "en": "James Olivia William Emma Oliver Sophie Harry Charlotte George Amelia Thomas "
    "Grace Daniel Chloe Michael Emily David Hannah Robert Lucy Sean Megan",
}
_LAST = {
    "de": "Müller Schmidt Schneider Fischer Weber Meyer Wagner Becker Schulz Hoffmann Schäfer "
    "Koch Bauer Richter Klein Wolf Schröder Neumann Zimmermann Krüger Köhler Jäger Groß Voß",
    "en": "Smith Jones Taylor Brown Williams Wilson Johnson Davies Evans Roberts Walker "
    "Wright Robinson Thompson Hughes Green Hall O'Brien Clarke Patel Murphy",
}
_STEMS = {
    "de": "Elbe Weser Alster Rhein Isar Harz Taunus Nordsee Ostsee Spree Main Neckar Eifel "
    "Allgäu Havel Mosel Sauerland Bodensee Hanse Lüneburger Ruhr Werra Altmark Vogtland Oder "
    "Fehmarn Ems Saale Fulda Lahn Schwarzwald Heide",
    "en": "Thames Pennine Harbour Northgate Clyde Mersey Avon Summit Redwood Granite Kestrel "
    "Bluewater Lakeside Ironbridge Westfield Highland Cobalt Meridian Sterling Oakridge "
    "Falcon",
}
_INDUSTRY = {
    "de": "Logistik Maschinenbau Software Großhandel Elektrotechnik Verpackung Stahlbau "
    "Medizintechnik Lebensmittel Kunststofftechnik Antriebstechnik Baustoffe Automation",
    "en": "Logistics Engineering Software Components Packaging Foods Energy Analytics "
    "Freight Systems Robotics Materials",
}
_LEGAL = {"de": ("GmbH", "GmbH", "AG", "GmbH & Co. KG", "KG"), "en": ("Ltd", "Ltd", "Inc", "plc")}
_ITEMS = {
    "de": (
        "Förderbänder",
        "Steuerungsmodule",
        "Dichtungssätze",
        "Sensoren Typ B",
        "Palettenregale",
        "Softwarelizenzen",
        "Schaltschränke",
        "Getriebemotoren",
    ),
    "en": (
        "conveyor belts",
        "control units",
        "sensor kits",
        "spare parts",
        "pallet racks",
        "software licences",
        "drive motors",
    ),
}
_MONTHS = {
    "de": "Januar Februar März April Mai Juni Juli August September Oktober November "
    "Dezember".split(),
    "en": "January February March April May June July August "
    "September October November December".split(),
}
# "subject|first line|more lines": the first line continues the greeting, the rest are sampled.
_TOPICS = {
    "de": (
        "Angebot {n} – {item}|anbei erhalten Sie unser Angebot Nr. {n} über {qty} Stück {item}.|Die "
        "Preise gelten bis zum {date}, zzgl. MwSt.|Die Lieferzeit beträgt ca. {weeks} Wochen.",
        "Lieferung KW {kw}: {item}|die Lieferung der {item} ist für KW {kw} eingeplant.|Bitte "
        "bestätigen Sie uns die Anlieferung an Tor 3.|Der Lieferschein geht Ihnen separat zu.",
        "Rechnung {n}|anbei die Rechnung Nr. {n} über {amount} EUR.|Zahlungsziel: 30 Tage netto.|"
        "Bitte geben Sie bei Zahlung die Rechnungsnummer an.",
        "Termin Projektbesprechung am {date}|wie besprochen schlage ich den {date} um {hour}:00 Uhr "
        "vor.|Themen: Projektstand, offene Punkte, nächste Schritte.|Gern auch per Teams.",
        "Reklamation Auftrag {n} (Position {part})|leider mussten wir bei Auftrag {n} einen Mangel "
        "feststellen.|Betroffen sind {qty} Stück {item}.|Wir bitten um kurzfristigen Ersatz.",
        "Wartungsvertrag {year} – Verlängerung|unser Wartungsvertrag läuft zum Jahresende aus.|Für "
        "{year} bieten wir die Verlängerung zu gleichen Konditionen an.|Reaktionszeit: 4 Stunden.",
        "Bestellung {n}: Ersatzteile für Förderanlage|hiermit bestellen wir gemäß Angebot {n}:|{qty} "
        "x {item}, Liefertermin KW {kw}.|Bitte senden Sie uns eine Auftragsbestätigung.",
        "Frage zur Schnittstelle / Datenimport|beim Import der Stammdaten erhalten wir einen Fehler.|"
        "Betroffen sind ca. {qty} Datensätze aus dem Großhandelskatalog.|Bitte prüfen Sie das.",
    ),
    "en": (
        "Quote {n} for {item}|Please find our quote no. {n} for {qty} units of {item}.|Prices are "
        "valid until {date}, excluding VAT.|Lead time is about {weeks} weeks from order.",
        "Delivery schedule week {kw}|The {item} are scheduled for delivery in week {kw}.|Could you "
        "confirm the unloading slot?|The delivery note will follow by email.",
        "Invoice {n}|Attached is invoice no. {n} for EUR {amount}.|Payment terms: 30 days net.|Please "
        "quote the invoice number with your payment.",
        "Meeting notes {date}|Here are my notes from our meeting on {date}.|1) Rollout of {item} "
        "starts in week {kw}.|From our side, the next step is a revised quote.",
        "Support ticket #{n}: {item} (urgent)|We have an issue with the {item} delivered last month.|"
        "{qty} units are affected.|Could someone call me back today?",
        "Contract renewal {year}|Our service contract ends this year.|For {year} we offer the renewal "
        "on unchanged terms.|Response time stays at 4 business hours.",
    ),
}
_GREET = {
    "de": (
        "Hallo {first},",
        "Guten Tag {name},",
        "Moin {first},",
        "Sehr geehrte Damen und Herren,",
    ),
    "en": ("Hi {first},", "Dear {name},"),
}
_FILLER = {
    "de": (
        "Bei Rückfragen stehe ich Ihnen gern zur Verfügung.",
        "Vielen Dank vorab für die schnelle Rückmeldung!",
    ),
    "en": ("Let me know if you have any questions.", "From our side, all is on track."),
}
_CLOSE = {
    "de": ("Viele Grüße", "Mit freundlichen Grüßen", "Beste Grüße"),
    "en": ("Best regards", "Kind regards", "Thanks,"),
}
_REPLY = {
    "de": (
        "vielen Dank, das passt so für uns.",
        "kurze Rückfrage: Gilt das auch für Position 3?",
        "anbei die gewünschten Unterlagen.",
        "das ist noch offen.",
    ),
    "en": (
        "Thanks, that works for us.",
        "Quick question: does this include item 3?",
        "Please find the documents attached.",
        "Still open, I will follow up.",
    ),
}
_INTERNAL = (
    "Forecast Q{q}",
    "Urlaubsplanung {month}",
    "Vorbereitung Termin {company}",
    "Übergabe Kunde {company}",
    "Preisliste {year} – Entwurf",
)
_STRANGER = {
    "de": ("Anfrage über Ihre Website", "Bewerbung als Vertriebsmitarbeiterin"),
    "en": ("Enquiry via your website", "Question about your products"),
}
_MEETINGS = {
    "de": (
        "Projektbesprechung {company}",
        "Kick-off Rollout; {company}",
        "Jahresgespräch {company}: Konditionen, Rahmenvertrag",
    ),
    "en": ("Quarterly review – {company}", "Kick-off: {company}, phase 2"),
}
_AGENDA = {
    "de": "Agenda:\n1. Rückblick auf das letzte Quartal\n2. Offene Punkte; Lieferzeiten, "
    "Preise\n3. Nächste Schritte",
    "en": "Agenda:\n1. Review of last quarter\n2. Open issues; lead times, pricing\n3. Next steps",
}
# How attendees answered an invitation (RFC 5545 PARTSTAT), most of them yes.
_ANSWERS = ("ACCEPTED", "ACCEPTED", "ACCEPTED", "TENTATIVE", "DECLINED", "NEEDS-ACTION")
_LOCATIONS = ("Besprechungsraum Elbe, Nordwind Hamburg", "Microsoft Teams", "{company}, Werk 2")
_DE_AREAS = ("30", "40", "89", "69", "221", "211", "711", "421", "511", "351")
_DE_MOBILE = ("151", "160", "170", "171", "172", "176", "179")
_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")  # asctime, locale-free
_TRANSLIT = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss", "'": "", "&": " "})
_UTF8_Q = Charset("utf-8")
_UTF8_Q.header_encoding = QP  # plain "utf-8" yields base64 words; the demo wants both kinds
_Heads = list[tuple[str, str]]
_Person = tuple[str, str]  # (display name, address)


@dataclass(frozen=True)
class DemoFiles:
    directory_csv: Path
    mbox: Path
    ics: Path
    cdr: Path
    internal_domain: str
    counts: dict[str, int]  # accounts, contacts, mails (malformed included), malformed_mails, ...


@dataclass
class _Account:
    name: str
    lang: str
    domains: list[str]
    owner: tuple[str, str, str]  # staff member: (name, email, extension)
    contacts: list[_Contact] = field(default_factory=list)


@dataclass
class _Contact:
    name: str
    emails: list[str]
    phones: list[tuple[str, str, str]]  # (country code, area, subscriber): dialable in the CDR
    shown: list[str]  # the same numbers as people type them into a directory
    account: _Account = field(repr=False)


def _slug(text: str) -> str:
    return "-".join(text.lower().translate(_TRANSLIT).split())


def _offset(local: datetime) -> timedelta:
    """Europe/Berlin by the EU rule, so the output never depends on the host's tz database."""

    def last_sunday(month: int) -> datetime:
        day = datetime(local.year, month, 31, 2 if month == 3 else 3)
        return day - timedelta(days=(day.weekday() + 1) % 7)

    return timedelta(hours=2 if last_sunday(3) <= local < last_sunday(10) else 1)


def _aware(local: datetime) -> datetime:
    return local.replace(tzinfo=timezone(_offset(local)))


def _local(moment: datetime) -> datetime:
    guess = moment.astimezone(UTC).replace(tzinfo=None) + timedelta(hours=1)
    return guess + _offset(guess) - timedelta(hours=1)


def _flat(heads: _Heads, body: bytes) -> bytes:
    text = "".join(f"{name}: {value}\n" for name, value in heads)
    return text.encode("ascii") + b"\n" + body + (b"" if body.endswith(b"\n") else b"\n")


def _fold(line: str) -> bytes:
    """RFC 5545 folding at 75 octets, never inside a UTF-8 sequence."""
    raw, chunks, limit = line.encode(), [], 75
    while len(raw) > limit:
        cut = limit
        while raw[cut] & 0xC0 == 0x80:
            cut -= 1
        chunks.append(raw[:cut])
        raw, limit = raw[cut:], 74
    return b"\r\n ".join([*chunks, raw]) + b"\r\n"


def _ics_text(value: str) -> str:
    return value.replace("\\", "\\\\").replace(";", r"\;").replace(",", r"\,").replace("\n", r"\n")


def _csv_quote(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'


class _Generator:
    def __init__(self, seed: int, now: datetime) -> None:
        self.rng = random.Random(seed)
        self.now, self.today = now, _local(now)
        self.year_ago = self.today - timedelta(days=365)
        self.staff = [
            (n, f"{_slug(n).replace('-', '.')}@{INTERNAL_DOMAIN}", str(201 + i))
            for i, n in enumerate(_STAFF)
        ]
        self.emails: set[str] = set()
        self.numbers: set[str] = set()
        self.mails: list[tuple[datetime, int, str, bytes]] = []
        self.accounts = self._accounts()
        self.contacts = [c for a in self.accounts for c in a.contacts]
        self.served = [a for a in self.accounts if a.contacts]

    def _accounts(self) -> list[_Account]:
        rng = self.rng
        specs = [
            (lang, stem)
            for lang, n in (("de", 30), ("en", 20))
            for stem in rng.sample(_STEMS[lang].split(), n)
        ]
        rng.shuffle(specs)
        two_domains, empty = rng.sample(range(50), 8), rng.sample(range(50), 3)
        accounts = []
        for i, (lang, stem) in enumerate(specs):
            industry = rng.choice(_INDUSTRY[lang].split())
            domains = [f"{_slug(stem + ' ' + industry)}.example"]
            if i in two_domains:
                domains.append(f"{_slug(stem)}-{'gruppe' if lang == 'de' else 'group'}.example")
            name = f"{stem} {industry} {rng.choice(_LEGAL[lang])}"
            accounts.append(_Account(name, lang, domains, rng.choice(self.staff)))
        sizes = [0 if i in empty else 2 for i in range(50)]
        for _ in range(200 - sum(sizes)):
            sizes[rng.choice([i for i in range(50) if i not in empty])] += 1
        for account, size in zip(accounts, sizes, strict=True):
            for _ in range(size):
                account.contacts.append(self._contact(account))
        for contact in rng.sample([c for a in accounts for c in a.contacts], 10):
            first, last = (_slug(p) for p in contact.name.split())
            contact.emails = [
                self._unique(f"{first}.{last}{rng.randint(1, 99)}", rng.choice(FREE_MAIL))
            ]
        return accounts

    def _unique(self, local: str, domain: str) -> str:
        email, n = f"{local}@{domain}", 1
        while email in self.emails:
            n += 1
            email = f"{local}{n}@{domain}"
        self.emails.add(email)
        return email

    def _contact(self, account: _Account) -> _Contact:
        rng, lang = self.rng, account.lang
        taken = [c.name for c in account.contacts]
        while (
            name := f"{rng.choice(_FIRST[lang].split())} {rng.choice(_LAST[lang].split())}"
        ) in taken:
            pass
        first, last = (_slug(p) for p in name.split())
        local = rng.choice((f"{first}.{last}", f"{first[0]}.{last}", f"{first[0]}{last}"))
        emails = [self._unique(local, d) for d in account.domains[: rng.choice((1, 1, 2))]]
        phones = [self._phone(lang) for _ in range(rng.choice((0, 1, 1, 1, 2)))]
        return _Contact(name, emails, phones, [self._show(p) for p in phones], account)

    def _phone(self, lang: str) -> tuple[str, str, str]:
        """A number no other contact has; UK and US ones from the ranges reserved for fiction."""
        rng = self.rng
        while True:
            if lang == "de":
                area = rng.choice(_DE_MOBILE if rng.random() < 0.35 else _DE_AREAS)
                digits = 10 - len(area) - rng.randint(0, 1)
                number = ("49", area, str(rng.randint(2 * 10 ** (digits - 1), 10**digits - 1)))
            elif rng.random() < 0.7:
                area = rng.choice(("20", "161"))
                prefix = "79460" if area == "20" else "4960"
                number = ("44", area, f"{prefix}{rng.randrange(1000):03d}")
            else:
                number = ("1", rng.choice(("212", "312", "415")), f"55501{rng.randrange(100):02d}")
            if "".join(number) not in self.numbers:
                self.numbers.add("".join(number))
                return number

    def _show(self, number: tuple[str, str, str]) -> str:
        cc, area, sub = number
        if cc == "49":
            return self.rng.choice(
                (
                    f"0{area} {sub}",
                    f"+49 {area} {sub}",
                    f"0049 {area} {sub}",
                    f"0{area}/{sub}",
                    f"+49 (0){area} {sub}",
                )
            )
        if cc == "44":
            return self.rng.choice((f"+44 {area} {sub[:-4]} {sub[-4:]}", f"0044 {area} {sub}"))
        return f"+1 {area} {sub[:3]} {sub[3:]}"

    def directory(self, path: Path) -> None:
        with path.open("w", encoding="utf-8", newline="") as f:
            out = csv.writer(f, lineterminator="\n")
            out.writerow(["account", "domains", "contact", "emails", "phones", "owner"])
            for a in self.accounts:
                contacts: Sequence[_Contact | None] = a.contacts or [None]
                for c in contacts:
                    person = [c.name, ";".join(c.emails), ";".join(c.shown)] if c else ["", "", ""]
                    out.writerow([a.name, ";".join(a.domains), *person, a.owner[1]])

    def _when(self, lo: datetime, hi: datetime) -> datetime:
        """A local time in office hours on a (mostly) working day in [lo, hi)."""
        rng = self.rng
        while (day := lo + timedelta(days=rng.randrange((hi - lo).days))).weekday() > 4:
            if rng.random() < 0.05:
                break
        return day.replace(
            hour=rng.randint(7, 18),
            minute=rng.randrange(60),
            second=rng.randrange(60),
            microsecond=0,
        )

    def _topic(self, lang: str) -> tuple[str, list[str]]:
        """A subject and its opening lines, with numbers, items and dates filled in."""
        rng = self.rng
        day = self.today - timedelta(days=rng.randrange(365))
        amount = f"{rng.randint(800, 90_000) + rng.randrange(100) / 100:,.2f}"
        values = {
            "n": rng.randint(10_000, 99_999),
            "item": rng.choice(_ITEMS[lang]),
            "qty": rng.choice((10, 25, 50, 100, 250)),
            "kw": rng.randint(1, 52),
            "weeks": rng.randint(2, 8),
            "hour": rng.randint(8, 16),
            "part": rng.randint(2, 9),
            "year": self.today.year + 1,
            "amount": amount.translate(str.maketrans(",.", ".,")) if lang == "de" else amount,
            "date": f"{day:%d.%m.%Y}"
            if lang == "de"
            else f"{day.day} {_MONTHS['en'][day.month - 1]} {day.year}",
        }
        subject, first, *more = rng.choice(_TOPICS[lang]).split("|")
        lines = [first, *rng.sample(more, rng.randint(1, len(more)))]
        return subject.format(**values), [line.format(**values) for line in lines]

    def _letter(
        self,
        lang: str,
        to: _Person,
        lines: list[str],
        sig: list[str],
        quoted: list[str] | None = None,
    ) -> str:
        """Greeting, content, closing, signature and, for replies, the top-posted quote."""
        rng = self.rng
        greet = rng.choice(_GREET[lang]).format(first=to[0].split()[0], name=to[0])
        filler = [rng.choice(_FILLER[lang])] if rng.random() < 0.4 and not quoted else []
        tail = ["", *quoted] if quoted else []
        return (
            "\n".join([greet, "", *lines, *filler, "", rng.choice(_CLOSE[lang]), *sig, *tail])
            + "\n"
        )

    def _leaf(self, ctype: str, raw: bytes) -> tuple[_Heads, bytes]:
        cte = "7bit" if raw.isascii() else self.rng.choice(("8bit", "quoted-printable"))
        body = quopri.encodestring(raw) if cte == "quoted-printable" else raw
        return [("Content-Type", ctype), ("Content-Transfer-Encoding", cte)], body

    def _multi(self, kind: str, parts: list[tuple[_Heads, bytes]]) -> tuple[_Heads, bytes]:
        boundary = f"=_nw{self.rng.getrandbits(48):012x}"
        body = b"This is a multi-part message in MIME format.\n"
        for heads, data in parts:
            body += f"--{boundary}\n".encode() + _flat(heads, data)
        heads = [("Content-Type", f'multipart/{kind}; boundary="{boundary}"')]
        return heads, body + f"--{boundary}--\n".encode()

    def _body(self, text: str, lang: str, form: str, charset: str | None) -> tuple[_Heads, bytes]:
        """Plain text, text+HTML alternatives, or either with a PDF (RFC 2231 file name)."""
        rng = self.rng
        charset = charset or ("iso-8859-1" if lang == "de" and rng.random() < 0.15 else "utf-8")
        if not all(ord(ch) < 256 for ch in text):
            charset = "utf-8"
        plain = self._leaf(f"text/plain; charset={charset}", text.encode(charset))
        if form == "plain":
            return plain
        html = "".join(f"<p>{escape(line)}</p>\n" for line in text.splitlines() if line)
        page = f"<html><body>\n{html}</body></html>\n".encode()
        alt = self._multi("alternative", [plain, self._leaf("text/html; charset=utf-8", page)])
        if form == "alt":
            return alt
        n = rng.randint(1000, 9999)
        name = rng.choice(
            (f"Angebot_{n}_Übersicht.pdf", f"Lieferschein_März_{n}.pdf", f"Maßblatt_{n}.pdf")
            if lang == "de"
            else (f"quote_{n}.pdf",)
        )
        disposition = (
            f'attachment; filename="{name}"'
            if name.isascii()
            else f"attachment; filename*=utf-8''{quote(name)}"
        )
        pdf = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n" + rng.randbytes(rng.randint(300, 1500)) + b"%%EOF\n"
        attachment = (
            [
                ("Content-Type", "application/pdf"),
                ("Content-Disposition", disposition),
                ("Content-Transfer-Encoding", "base64"),
            ],
            base64.encodebytes(pdf),
        )
        return self._multi("mixed", [alt if rng.random() < 0.4 else plain, attachment])

    def _mail(
        self,
        when: datetime,
        frm: _Person,
        to: list[_Person],
        subject: str,
        text: str,
        *,
        lang: str = "de",
        cc: list[_Person] | None = None,
        form: str = "plain",
        extra: _Heads | None = None,
        charset: str | None = None,
    ) -> tuple[_Heads, bytes]:
        """Headers and body of one mail; non-ASCII subjects become q/b words in two charsets."""
        if not subject.isascii():
            roll = self.rng.random()
            latin = roll < 0.3 and all(ord(ch) < 256 for ch in subject)
            charset_h = "iso-8859-1" if latin else _UTF8_Q if roll < 0.8 else "utf-8"
            subject = Header(subject, charset_h, header_name="Subject").encode()
        heads = [
            ("From", formataddr(frm, "utf-8")),
            ("To", ", ".join(formataddr(p, "utf-8") for p in to)),
        ]
        heads += [("Cc", ", ".join(formataddr(p, "utf-8") for p in cc))] if cc else []
        mid = f"<{self.rng.getrandbits(64):016x}.{len(self.mails)}@{frm[1].rsplit('@', 1)[1]}>"
        heads += [
            ("Subject", subject),
            ("Date", format_datetime(_aware(when))),
            ("Message-ID", mid),
            *(extra or []),
            ("MIME-Version", "1.0"),
        ]
        content, body = self._body(text, lang, form, charset)
        return heads + content, body

    def _add(self, when: datetime, envelope: str, data: bytes) -> None:
        self.mails.append((_aware(when).astimezone(UTC), len(self.mails), envelope, data))

    def _form(self) -> str:
        roll = self.rng.random()
        return "plain" if roll < 0.7 else "alt" if roll < 0.88 else "attach"

    def threads(self, target: int) -> None:
        """Customer conversations; each reply quotes its parent and carries In-Reply-To."""
        rng, made = self.rng, 0
        while made < target:
            account = rng.choice(self.served)
            lang, contact = account.lang, rng.choice(account.contacts)
            staff = account.owner if rng.random() < 0.8 else rng.choice(self.staff)
            subject, opening = self._topic(lang)
            when, inbound = self._when(self.year_ago, self.today), rng.random() < 0.5
            them, us = (contact.name, rng.choice(contact.emails)), staff[:2]
            ids: list[str] = []
            previous, previous_at = "", when
            for _ in range(rng.choice((1, 1, 2, 2, 2, 3, 3, 4, 5))):
                if when >= self.today or made >= target:
                    break
                frm, to = (them, us) if inbound else (us, them)
                sig = (
                    [contact.name, account.name, *contact.shown[:1]]
                    if inbound
                    else [staff[0], "Nordwind Systeme GmbH", f"Tel. +49 40 55512-{staff[2]}"]
                )
                others = [(o.name, o.emails[0]) for o in account.contacts if o is not contact]
                cc = others[:1] if rng.random() < 0.25 else None
                extra: _Heads = []
                lines, quoted = opening, None
                if ids:
                    said = (
                        f"Am {previous_at:%d.%m.%Y} um {previous_at:%H:%M} schrieb {to[0]}:"
                        if lang == "de"
                        else f"On {previous_at:%Y-%m-%d %H:%M}, {to[0]} wrote:"
                    )
                    quoted = [said, *[f"> {line}" for line in previous.splitlines() if line][:3]]
                    lines = [rng.choice(_REPLY[lang])]
                    extra = [("In-Reply-To", ids[-1]), ("References", "\n ".join(ids))]
                previous = self._letter(lang, to, lines, sig, quoted)
                prefix = ("AW: " if lang == "de" else "Re: ") if ids else ""
                heads, body = self._mail(
                    when,
                    frm,
                    [to],
                    prefix + subject,
                    previous,
                    lang=lang,
                    cc=cc,
                    form=self._form(),
                    extra=extra,
                )
                ids.append(dict(heads)["Message-ID"])
                self._add(when, frm[1], _flat(heads, body))
                made, inbound, previous_at = made + 1, not inbound, when
                when += timedelta(minutes=rng.randint(20, 2 * 24 * 60))
                while when.weekday() > 4 or not 7 <= when.hour < 19:  # answered at the office
                    when = (when + timedelta(days=1)).replace(hour=rng.randint(7, 11))

    def extras(self) -> None:
        """Newsletters, internal mail and strangers: mail that must match loosely or not at all."""
        rng = self.rng
        senders = rng.sample(self.accounts, 6)
        for i in range(40):
            account, when = senders[i % 6], self._when(self.year_ago, self.today)
            dom, lang = account.domains[0], account.lang
            month = f"{_MONTHS[lang][when.month - 1]} {when.year}"
            subject = (
                f"Newsletter {month}: Neues von {account.name}"
                if lang == "de"
                else f"{account.name} newsletter – {month}"
            )
            text = f"{subject}\n\n{rng.choice(_ITEMS[lang])}: {rng.choice(_FILLER[lang])}\n"
            extra = [
                (
                    "List-Unsubscribe",
                    f"<mailto:unsubscribe@{dom}?subject=unsubscribe>,\n "
                    f"<https://{dom}/newsletter/unsubscribe?u={rng.getrandbits(40):010x}>",
                ),
                ("List-Id", f"<news.{dom}>"),
                ("Precedence", "bulk"),
            ]
            heads, body = self._mail(
                when,
                (account.name, f"newsletter@{dom}"),
                [rng.choice(self.staff)[:2]],
                subject,
                text,
                lang=lang,
                form="alt",
                extra=extra,
            )
            self._add(when, f"newsletter@{dom}", _flat(heads, body))
        for _ in range(40):
            (a, b, c), when = rng.sample(self.staff, 3), self._when(self.year_ago, self.today)
            subject = rng.choice(_INTERNAL).format(
                q=(when.month - 1) // 3 + 1,
                month=_MONTHS["de"][when.month - 1],
                year=when.year + 1,
                company=rng.choice(self.accounts).name,
            )
            text = self._letter(
                "de",
                b[:2],
                ["anbei mein aktueller Stand.", "Kannst du bitte bis Freitag drüberschauen?"],
                [a[0]],
            )
            heads, body = self._mail(
                when, a[:2], [b[:2]], subject, text, cc=[c[:2]] if rng.random() < 0.3 else None
            )
            self._add(when, a[1], _flat(heads, body))
        for i in range(60):  # unknown people: 30 at customers' domains, 30 on free mail
            account, known = rng.choice(self.accounts), i < 30
            lang = account.lang if known else rng.choice(("de", "en"))
            name = f"{rng.choice(_FIRST[lang].split())} {rng.choice(_LAST[lang].split())}"
            first, last = (_slug(p) for p in name.split())
            address = (
                self._unique(f"{first}.{last}", rng.choice(account.domains))
                if known
                else self._unique(f"{first}{rng.randint(1, 999)}", rng.choice(FREE_MAIL))
            )
            staff = account.owner if known else rng.choice(self.staff)
            when = self._when(self.year_ago, self.today)
            subject, lines = (
                self._topic(lang)
                if known
                else (rng.choice(_STRANGER[lang]), [rng.choice(_FILLER[lang])])
            )
            text = self._letter(lang, staff[:2], lines, [name])
            heads, body = self._mail(
                when, (name, address), [staff[:2]], subject, text, lang=lang, form=self._form()
            )
            self._add(when, address, _flat(heads, body))

    def malformed(self) -> int:
        """The broken mail every real mailbox holds; each must be quarantined or read leniently."""
        rng = self.rng
        for case in range(10):
            when, contact = self._when(self.year_ago, self.today), rng.choice(self.contacts)
            staff, sender = contact.account.owner, (contact.name, contact.emails[0])
            subject = "Angebot 4711 (Korrektur Position 3" if case == 6 else "Rückfrage Lieferung"
            text = self._letter(
                "de", staff[:2], ["können Sie mir kurz Bescheid geben?"], [contact.name]
            )
            heads, body = self._mail(
                when,
                sender,
                [staff[:2]],
                subject,
                text,
                form="alt" if case == 8 else "plain",
                charset="utf-8",
            )
            drop = {0: "Message-ID", 1: "Date", 3: "From", 4: "Content-Transfer-Encoding"}
            change = {
                2: ("Date", "gestern"),
                4: ("Content-Type", "text/plain"),  # undeclared 8bit
                5: ("Content-Type", "text/plain; charset=x-unknown"),
            }.get(case, ("", ""))
            heads = [
                (k, change[1] if k == change[0] else v) for k, v in heads if k != drop.get(case)
            ]
            if case == 4:
                body = "Grüße aus Köln, die Maße stimmen nicht.\n".encode("latin-1")
            data = _flat(heads, body)
            if case == 7:
                junk = bytes(b for b in rng.randbytes(40) if b not in b"\r\n")
                data = data.replace(b"MIME-Version", b"X-Scanner: " + junk + b"\nMIME-Version", 1)
            elif case == 8:  # the closing boundary never comes
                data = data[: len(data) * 2 // 3] + b"\n"
            elif case == 9:  # no headers at all
                data = rng.randbytes(600)
            self._add(when, "MAILER-DAEMON" if case in (3, 9) else sender[1], data)
        return 10

    def mbox(self) -> bytes:
        """mboxrd: "From " separator lines; body lines matching ^>*From get one more ">"."""
        out = bytearray()
        for utc, _, envelope, data in sorted(self.mails, key=lambda m: (m[0], m[1])):
            day = f"{_WEEKDAYS[utc.weekday()]} {_MONTHS['en'][utc.month - 1][:3]} {utc.day:2d}"
            out += f"From {envelope} {day} {utc:%H:%M:%S %Y}\n".encode()
            for line in data.removesuffix(b"\n").split(b"\n"):
                out += (b">" + line if line.lstrip(b">").startswith(b"From ") else line) + b"\n"
            out += b"\n"
        return bytes(out)

    def ics(self, count: int) -> bytes:
        rng, stamp = self.rng, self.now.strftime("%Y%m%dT%H%M%SZ")
        lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//Nordwind Systeme//crmhub demo//DE"]
        for i in range(count):
            account, recurring = rng.choice(self.served), i % 20 == 7  # 5 per 100
            start = self._when(self.year_ago, self.today - timedelta(days=160 if recurring else 1))
            start = start.replace(hour=min(start.hour, 16), minute=rng.choice((0, 30)), second=0)
            end = start + timedelta(minutes=rng.choice((30, 45, 60, 90)))
            utc = [_aware(t).astimezone(UTC).strftime("%Y%m%dT%H%M%SZ") for t in (start, end)]
            summary = rng.choice(_MEETINGS[account.lang]).format(company=account.name)
            lines += [
                "BEGIN:VEVENT",
                f"UID:{rng.getrandbits(64):016x}-{i}@{INTERNAL_DOMAIN}",
                f"DTSTAMP:{stamp}",
                f"DTSTART:{utc[0]}",
                f"DTEND:{utc[1]}",
                f"SUMMARY:{_ics_text(summary)}",
            ]
            if recurring:
                lines.append(f"RRULE:{rng.choice(('FREQ=WEEKLY;COUNT=6', 'FREQ=MONTHLY;COUNT=4'))}")
            if rng.random() < 0.7:
                where = rng.choice(_LOCATIONS).format(company=account.name)
                lines.append(f"LOCATION:{_ics_text(where)}")
            if rng.random() < 0.5:
                lines.append(f"DESCRIPTION:{_ics_text(_AGENDA[account.lang])}")
            lines.append(f"ORGANIZER;CN={account.owner[0]}:mailto:{account.owner[1]}")
            for c in rng.sample(account.contacts, rng.randint(1, min(3, len(account.contacts)))):
                answer = _ANSWERS[(i + len(c.name)) % len(_ANSWERS)]  # no draw: data stays put
                lines.append(
                    f"ATTENDEE;CN={c.name};ROLE=REQ-PARTICIPANT;PARTSTAT={answer}:mailto:{c.emails[0]}"
                )
            lines.append("END:VEVENT")
        return b"".join(_fold(line) for line in [*lines, "END:VCALENDAR"])

    def cdr(self, count: int) -> bytes:
        """Asterisk Master.csv in local time: 18 columns, all quoted but duration and billsec."""
        rng = self.rng
        kinds = (["in"] * 14 + ["out"] * 11 + ["int", "anon"] + ["unknown"] * 3) * (count // 30 + 1)
        rng.shuffle(kinds)
        calls = sorted((self._when(self.year_ago, self.today), kind) for kind in kinds[:count])
        phoned = [c for c in self.contacts if c.phones]
        rows = []
        for n, (start, kind) in enumerate(calls, 1):
            staff = rng.choice(self.staff)
            ext, trunk, chan = staff[2], f"PJSIP/trunk-{rng.getrandbits(32):08x}", f"{n:08x}"
            if kind == "out":
                cc, area, sub = rng.choice(rng.choice(phoned).phones)
                prefix = rng.choice(("0", "0", "0", "0049")) if cc == "49" else "00" + cc
                dst = prefix + area + sub
                head = [
                    ext,
                    dst,
                    "from-internal",
                    f'"{staff[0]}" <{ext}>',
                    f"PJSIP/{ext}-{chan}",
                    trunk,
                    "Dial",
                    f"PJSIP/{dst}@trunk,60",
                ]
            elif kind == "int":
                dst = rng.choice([s[2] for s in self.staff if s is not staff])
                head = [
                    ext,
                    dst,
                    "from-internal",
                    f'"{staff[0]}" <{ext}>',
                    f"PJSIP/{ext}-{chan}",
                    f"PJSIP/{dst}-{chan}",
                    "Dial",
                    f"PJSIP/{dst},30",
                ]
            else:
                src = name = "anonymous"
                if kind == "in":
                    contact = rng.choice(phoned)
                    cc, area, sub = rng.choice(contact.phones)
                    src = ("0" if cc == "49" else "00" + cc) + area + sub
                    name = contact.name if rng.random() < 0.5 else src
                while kind == "unknown" and (src == "anonymous" or "49" + src[1:] in self.numbers):
                    src = name = (
                        f"0{rng.choice(_DE_AREAS + _DE_MOBILE)}{rng.randint(2, 9)}"
                        f"{rng.randrange(10**6):06d}"
                    )
                head = [
                    src,
                    ext,
                    "from-trunk",
                    f'"{name}" <{src}>',
                    trunk,
                    f"PJSIP/{ext}-{chan}",
                    "Dial",
                    f"PJSIP/{ext},30",
                ]
            roll = rng.random()
            ring = rng.randint(2, 25) if roll < 0.93 else rng.randint(0, 2)
            talk = rng.randint(15, 120) + int(rng.expovariate(1 / 240)) if roll < 0.75 else 0
            status = "ANSWERED" if talk else "NO ANSWER" if roll < 0.93 else "BUSY"
            answer = f"{start + timedelta(seconds=ring):%Y-%m-%d %H:%M:%S}" if talk else ""
            times = [
                f"{start:%Y-%m-%d %H:%M:%S}",
                answer,
                f"{start + timedelta(seconds=ring + talk):%Y-%m-%d %H:%M:%S}",
            ]
            uniqueid = f"{int(_aware(start).timestamp())}.{n}"
            rows.append(
                ",".join(
                    [
                        *map(_csv_quote, ["", *head, *times]),
                        str(ring + talk),
                        str(talk),
                        *map(_csv_quote, [status, "DOCUMENTATION", uniqueid, ""]),
                    ]
                )
            )
        return ("\n".join(rows) + "\n").encode()


def write_demo_files(dest: Path, *, seed: int = 2024, now: datetime | None = None) -> DemoFiles:
    """Write directory.csv, mail.mbox, calendar.ics and Master.csv into `dest` (created).

    The data covers the year before `now` (default: a fixed date, for reproducibility); a naive
    `now` is taken as UTC.
    """
    now = DEFAULT_NOW if now is None else now if now.tzinfo else now.replace(tzinfo=UTC)
    dest.mkdir(parents=True, exist_ok=True)
    gen = _Generator(seed, now)
    files = DemoFiles(
        dest / "directory.csv",
        dest / "mail.mbox",
        dest / "calendar.ics",
        dest / "Master.csv",
        INTERNAL_DOMAIN,
        {},
    )
    gen.directory(files.directory_csv)
    gen.threads(1850)
    gen.extras()
    malformed = gen.malformed()
    files.mbox.write_bytes(gen.mbox())
    files.ics.write_bytes(gen.ics(100))
    files.cdr.write_bytes(gen.cdr(300))
    files.counts.update(
        accounts=len(gen.accounts),
        contacts=len(gen.contacts),
        mails=len(gen.mails),
        malformed_mails=malformed,
        meetings=100,
        calls=300,
    )
    return files
