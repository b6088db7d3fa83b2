"""Reading customer directories from the files people really have: Excel CSV exports and vCards.

Parsing is separate from storing so that a bad row can be reported with its file, line and
field while the good rows still import, and so the demo and the CLI share one reader.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from hub.csv_records import csv_records, excerpt
from matching.identities import (
    default_free_mail,
    email_domain,
    normalize_domain,
    normalize_email,
    normalize_phone,
)

COLUMNS = ("account", "domains", "contact", "emails", "phones", "owner")
OPTIONAL = ("title",)  # a contact's job title; files without the column import as before
_MAX_BYTES = 64 * 1024 * 1024  # a directory bigger than this is a mistake, not a directory


class DirectoryFileError(Exception):
    """The file as a whole cannot be read (missing, wrong format, no usable header)."""


@dataclass(frozen=True, slots=True)
class RowError:
    path: str
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.field}: {self.message}"


@dataclass(frozen=True, slots=True)
class DirectoryRow:
    line: int
    account: str
    domains: tuple[str, ...] = ()
    contact: str = ""
    emails: tuple[str, ...] = ()
    phones: tuple[str, ...] = ()
    owner: str = ""
    title: str = ""


@dataclass
class _Problems:
    path: str
    errors: list[RowError] = field(default_factory=list)

    def add(self, line: int, field_name: str, message: str) -> None:
        self.errors.append(RowError(self.path, line, field_name, message))


def read_directory(path: Path, region: str | None) -> tuple[list[DirectoryRow], list[RowError]]:
    """Rows that are valid, and one error per rejected row; the format follows the suffix."""
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".vcf", ".vcard"):
        raise DirectoryFileError(f"{path}: expected a .csv or .vcf file, got {suffix or 'none'}")
    try:
        size = path.stat().st_size
        if size > _MAX_BYTES:
            raise DirectoryFileError(f"{path}: {size} bytes is more than a directory can be")
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DirectoryFileError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise DirectoryFileError(f"{path}: is a folder, not a file") from None
    except PermissionError:
        raise DirectoryFileError(f"{path}: permission denied") from None
    text = _decode(raw)
    if suffix == ".csv":
        return _read_csv(str(path), text, region)
    return _read_vcards(str(path), text, region)


def _decode(raw: bytes) -> str:
    """UTF-8 (with or without Excel's BOM) first; older Excel on Windows writes cp1252."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return raw.decode("cp1252", errors="replace")


def _read_csv(
    path: str, text: str, region: str | None
) -> tuple[list[DirectoryRow], list[RowError]]:
    header_line = text.split("\n", 1)[0]
    # German Excel writes `;` between fields; lists inside a field are then quoted.
    delimiter = ";" if header_line.count(";") > header_line.count(",") else ","
    records = csv_records(text, delimiter)
    first = next(records, None)
    if first is None:
        raise DirectoryFileError(f"{path}: the file is empty")
    if first.problem:
        raise DirectoryFileError(f"{path}:1: unreadable header: {first.problem}")
    header = [name.strip().lower() for name in first.cells]
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise DirectoryFileError(
            f"{path}:1: header lacks {', '.join(missing)}; expected {','.join(COLUMNS)}"
        )
    position = {name: header.index(name) for name in (*COLUMNS, *OPTIONAL) if name in header}
    problems = _Problems(path)
    rows: list[DirectoryRow] = []
    for record in records:
        if record.problem:
            problems.add(record.line, "row", record.problem)
            continue
        values = {
            name: record.cells[i] if i < len(record.cells) else "" for name, i in position.items()
        }
        if nul := next((name for name, value in values.items() if "\x00" in value), None):
            problems.add(record.line, nul, _nul_message(values[nul]))
            continue
        row = _validate(problems, record.line, {k: v.strip() for k, v in values.items()}, region)
        if row is not None:
            rows.append(row)
    return rows, problems.errors


def _nul_message(value: str) -> str:
    before = value[: value.index("\x00")]
    return f"a NUL byte (\\x00) after {excerpt(before)}: the file is damaged or not text"


def _split(value: str) -> list[str]:
    return [part.strip() for part in value.split(";") if part.strip()]


def _validate(
    problems: _Problems, line: int, values: dict[str, str], region: str | None
) -> DirectoryRow | None:
    """One error per row (the first found) keeps the report short enough to act on."""
    if not values["account"]:
        problems.add(line, "account", "empty; every row names its account")
        return None
    domains: list[str] = []
    for raw in _split(values["domains"]):
        domain = normalize_domain(raw.removeprefix("@"))
        if domain is None:
            problems.add(line, "domains", f"{raw!r} is not a domain name")
            return None
        domains.append(domain)
    emails: list[str] = []
    for raw in _split(values["emails"]):
        email = normalize_email(raw)
        if email is None:
            problems.add(line, "emails", f"{raw!r} is not an email address")
            return None
        emails.append(email)
    phones: list[str] = []
    for raw in _split(values["phones"]):
        phone = normalize_phone(raw, region)
        if phone is None:
            problems.add(line, "phones", f"{raw!r} is not a valid phone number (region {region})")
            return None
        phones.append(phone)
    owner = ""
    if values["owner"]:
        normalized_owner = normalize_email(values["owner"])
        if normalized_owner is None:
            problems.add(line, "owner", f"{values['owner']!r} is not an email address")
            return None
        owner = normalized_owner
    if not values["contact"] and (emails or phones):
        problems.add(line, "contact", "empty, but the row has emails or phones; name the person")
        return None
    return DirectoryRow(
        line=line,
        account=values["account"],
        domains=tuple(dict.fromkeys(domains)),
        contact=values["contact"],
        emails=tuple(dict.fromkeys(emails)),
        phones=tuple(dict.fromkeys(phones)),
        owner=owner,
        title=" ".join(values.get("title", "").split())[:200],
    )


def _read_vcards(
    path: str, text: str, region: str | None
) -> tuple[list[DirectoryRow], list[RowError]]:
    """ORG is the account, FN the contact; business mail domains become account domains."""
    import vobject

    problems = _Problems(path)
    rows: list[DirectoryRow] = []
    free_mail = default_free_mail()
    for start, block in _vcard_blocks(path, text):
        try:
            card = vobject.readOne(block)
        except Exception as exc:  # noqa: BLE001 - vobject raises anything on bad input
            problems.add(start, "vcard", f"unreadable vCard: {exc}")
            continue
        org = _first(card, "org")
        account = (org[0] if isinstance(org, list) and org else str(org or "")).strip()
        name = str(_first(card, "fn") or "").strip()
        if not account:
            problems.add(start, "ORG", "missing; a contact needs the company it works for")
            continue
        emails = [str(e.value) for e in card.contents.get("email", [])]
        phones = [str(t.value).removeprefix("tel:") for t in card.contents.get("tel", [])]
        read = {"ORG": account, "FN": name, "EMAIL": ";".join(emails), "TEL": ";".join(phones)}
        if nul := next((key for key, value in read.items() if "\x00" in value), None):
            problems.add(_nul_line(start, block), nul, _nul_message(read[nul]))
            continue
        domains = []
        for raw in emails:
            email = normalize_email(raw)
            if email is not None and email_domain(email) not in free_mail:
                domains.append(email_domain(email))
        values = {
            "title": str(_first(card, "title") or "").strip(),
            "account": account,
            "domains": ";".join(domains),
            "contact": name,
            "emails": ";".join(emails),
            "phones": ";".join(phones),
            "owner": "",
        }
        row = _validate(problems, start, values, region)
        if row is not None:
            rows.append(row)
    return rows, problems.errors


def _nul_line(start: int, block: str) -> int:
    """The line of a card's first NUL byte, for the report (the card begins on `start`); the
    card's own line when the NUL was encoded (quoted-printable `=00`) and decoded by parsing."""
    return start + next((i for i, line in enumerate(block.splitlines()) if "\x00" in line), 0)


def _first(card: object, key: str) -> object:
    entries = getattr(card, "contents", {}).get(key)
    return entries[0].value if entries else None


def _vcard_blocks(path: str, text: str) -> list[tuple[int, str]]:
    """Split before parsing so that one broken card is reported by line, not fatal."""
    blocks: list[tuple[int, str]] = []
    current: list[str] = []
    start = 0
    for number, line in enumerate(text.splitlines(), start=1):
        marker = line.strip().upper()
        if marker == "BEGIN:VCARD":
            current, start = [line], number
        elif current:
            current.append(line)
            if marker == "END:VCARD":
                blocks.append((start, "\n".join(current) + "\n"))
                current = []
    if not blocks:
        raise DirectoryFileError(f"{path}: no BEGIN:VCARD ... END:VCARD found")
    if current:
        blocks.append((start, "\n".join(current) + "\n"))
    return blocks
