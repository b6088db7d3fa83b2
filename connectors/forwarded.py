"""Forwards to the dropbox -> the original customer mail, as RFC 5322 bytes. Pure, no I/O.

Staff log a customer mail by forwarding it to the dropbox; the timeline must then show the
customer's mail (sender, date, subject, text), not the colleague's forward. Mail clients forward
either as an attached `message/rfc822` (returned as it is, so its Message-ID still deduplicates
against the IMAP copy) or inline below a marker and a header block that differs per client and
language; an inline forward is rebuilt into a small RFC 5322 message. Anything else, such as a
BCC copy of a conversation with a customer, is returned unchanged. Forward detection must never
stop a mail from being logged, so malformed input gives back the input, never an exception.
"""

from __future__ import annotations

import hashlib
import quopri
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from email import message_from_bytes
from email.header import Header
from email.message import Message
from email.policy import compat32
from email.utils import format_datetime, getaddresses, parsedate_to_datetime

from connectors.mail import decode_header_value, decode_text, html_to_text

FORWARDED_BY = "X-Crmhub-Forwarded-By"
MAX_DEPTH = 4
_MARKER = re.compile(
    r"^-{2,}\s*(original message|ursprüngliche nachricht|original-nachricht|forwarded message"
    r"|weitergeleitete nachricht)\s*-{2,}$|^(begin forwarded message|anfang der weitergeleiteten"
    r" nachricht)\s*:$|^_{10,}$",
    re.IGNORECASE,
)
_LABELS = {
    "from": "from", "von": "from",
    "sent": "date", "gesendet": "date", "date": "date", "datum": "date",
    "to": "to", "an": "to", "cc": "cc", "kopie": "cc",
    "subject": "subject", "betreff": "subject",
    "bcc": "", "reply-to": "", "antwort an": "", "importance": "", "wichtigkeit": "",
    "attachments": "", "anlagen": "",
}  # fmt: skip
_LABEL_LINE = re.compile(r"^\**\s*([A-Za-z][A-Za-z -]{0,15}?)\s*\**\s*:\s*\**\s*(.*)$")
_QUOTE = re.compile(r"^(?:>\s?)*")
_FORWARD_PREFIX = re.compile(r"^\s*((wg|fwd?|aw|re|tr|vs|wtr|antw)\s*:\s*)+", re.IGNORECASE)
_FORWARD_SUBJECT = re.compile(r"^\s*(wg|fwd?|tr|vs|wtr)\s*:", re.IGNORECASE)
_ANGLE = re.compile(r"<\s*(?:mailto:)?([^<>\s@]+@[^<>\s@]+?)\s*>|\[mailto:([^\]\s@]+@[^\]\s@]+)\]")
_BARE = re.compile(r"[\w.!#$%&'*+/=?^`{|}~-]+@[\w-]+(?:\.[\w-]+)+")
_TIME = re.compile(r"\b(\d{1,2}):(\d{2})(?::(\d{2}))?(?:\s*([ap])\.?\s*m\b\.?)?", re.I)
_OFFSET = re.compile(r"(?:gmt|utc)?\s*([+-])(\d{1,2}):?(\d{2})\b", re.IGNORECASE)
_ZONES = {"utc": 0, "gmt": 0, "z": 0, "cet": 1, "mez": 1, "cest": 2, "mesz": 2, "est": -5,
          "edt": -4, "cst": -6, "cdt": -5, "pst": -8, "pdt": -7, "bst": 1}  # fmt: skip
_MONTHS = {"jan": 1, "feb": 2, "mar": 3, "mär": 3, "mrz": 3, "apr": 4, "may": 5, "mai": 5,
           "jun": 6, "jul": 7, "aug": 8, "sep": 9, "oct": 10, "okt": 10, "nov": 11, "dec": 12,
           "dez": 12}  # fmt: skip
_NUMERIC_DATES = (
    (re.compile(r"\b(\d{1,2})\.\s?(\d{1,2})\.\s?(\d{4})\b"), (3, 2, 1)),
    (re.compile(r"\b(\d{4})-(\d{1,2})-(\d{1,2})\b"), (1, 2, 3)),
    (re.compile(r"\b(\d{1,2})/(\d{1,2})/(\d{4})\b"), (3, 1, 2)),
)
_PARSE_ERRORS = (ValueError, LookupError, TypeError, AssertionError, IndexError, OverflowError)


@dataclass
class _Block:
    """The header block of an inline forward and the quoted text below it."""

    fields: dict[str, str] = field(default_factory=dict)
    body: str = ""


def unwrap(
    data: bytes,
    internal_domains: Iterable[str],
    dropbox_addresses: Iterable[str] = (),
    *,
    local_zone: tzinfo | None = None,
) -> bytes:
    """The original mail when `data` is a forward to the dropbox, else `data` unchanged.

    A forward is addressed only to staff and dropbox addresses; with an external recipient it is
    a real mail (a BCC copy) and is logged as it is, unless the dropbox addresses are not known
    and the subject says Fwd/WG. A forwarded mail from a colleague is unwrapped again, so
    the customer's mail is found below a chain of internal forwards. Times without a zone are
    read in `local_zone`, else in the zone of the forward's own Date.
    """
    ours = tuple(d.strip().lower().rstrip(".") for d in internal_domains if d.strip())
    dropbox = frozenset(a.strip().lower() for a in dropbox_addresses)
    try:
        msg = message_from_bytes(data, policy=compat32)
        if not _is_forward(msg, ours, dropbox):
            return data
        forwarder = _first_address(msg.get_all("From") or msg.get_all("Sender") or [])
        return _unwrap(msg, data, ours, forwarder, local_zone, MAX_DEPTH)
    except _PARSE_ERRORS:
        return data


def _unwrap(
    msg: Message,
    data: bytes,
    ours: tuple[str, ...],
    forwarder: str,
    zone: tzinfo | None,
    depth: int,
) -> bytes:
    inner = _attached(msg)
    if inner is None:
        block = _inline_block(_text_of(msg))
        if block is None:
            return data
        inner = _rebuild(block, msg, forwarder, zone)
    elif forwarder:
        inner = f"{FORWARDED_BY}: {forwarder}\r\n".encode() + inner
    inner_msg = message_from_bytes(inner, policy=compat32)
    sender = _first_address(inner_msg.get_all("From") or [])
    if depth > 1 and _internal(sender, ours):
        return _unwrap(inner_msg, inner, ours, forwarder, zone, depth - 1)
    return inner


def _is_forward(msg: Message, ours: tuple[str, ...], dropbox: frozenset[str]) -> bool:
    values = [decode_header_value(v) for h in ("To", "Cc") for v in msg.get_all(h) or []]
    external = [
        a
        for _, a in getaddresses(values)
        if "@" in a and a.lower() not in dropbox and not _internal(a, ours)
    ]
    if not external:
        return True
    subject = decode_header_value(msg.get("Subject", ""))
    return not dropbox and bool(_FORWARD_SUBJECT.match(subject))


def _internal(address: str, ours: tuple[str, ...]) -> bool:
    domain = address.rpartition("@")[2].strip().lower().rstrip(".>")
    return bool(domain) and any(domain == d or domain.endswith("." + d) for d in ours)


def _first_address(values: list[str]) -> str:
    found = _addresses(" ".join(decode_header_value(v) for v in values))
    return found[0][1] if found else ""


def _attached(msg: Message) -> bytes | None:
    """The first attached mail (message/rfc822, or an .eml file) that has a sender."""
    for part in msg.walk():
        filename = str(part.get_filename() or "").lower()
        if part.get_content_type() == "message/rfc822":
            payload = part.get_payload()
            inner = payload[0] if isinstance(payload, list) and payload else None
            if not isinstance(inner, Message):
                continue
            raw = inner.as_bytes()
            cte = str(part.get("Content-Transfer-Encoding", "")).strip().lower()
            if cte in ("base64", "quoted-printable"):
                part.set_payload(raw.split(b"\n\n", 1)[-1].decode("ascii", "replace"))
                decoded = part.get_payload(decode=True)
                raw = decoded if isinstance(decoded, bytes) else raw
        elif filename.endswith(".eml") and not part.is_multipart():
            decoded = part.get_payload(decode=True)
            raw = decoded if isinstance(decoded, bytes) else b""
        else:
            continue
        if _first_address(message_from_bytes(raw, policy=compat32).get_all("From") or []):
            return raw
    return None


def _text_of(msg: Message) -> str:
    """The first text/plain body, else the first text/html one as text; attachments skipped."""
    html = ""
    for part in msg.walk():
        if part.is_multipart() or part.get_filename():
            continue
        ctype = part.get_content_type()
        if ctype not in ("text/plain", "text/html"):
            continue
        payload = part.get_payload(decode=True)
        raw = payload if isinstance(payload, bytes) else b""
        text = decode_text(raw, part.get_content_charset())
        if ctype == "text/plain" and text.strip():
            return text
        if ctype == "text/html" and not html:
            html = text
    return html_to_text(re.sub(r"\s+", " ", html)) if html else ""


def _inline_block(text: str) -> _Block | None:
    """The first forward marker or Outlook header block in `text` whose sender is readable."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    for index, line in enumerate(lines):
        prefix = _QUOTE.match(line)
        quote = prefix.group(0) if prefix else ""
        stripped = line[len(quote) :].strip()
        if _MARKER.match(stripped):
            block = _read_block(lines, index + 1, quote)
            if block and _addresses(block.fields.get("from", "")):
                return block
        elif _label(stripped)[0] == "from":
            block = _read_block(lines, index, quote)
            if block and {"from", "date", "subject"} <= block.fields.keys():
                if _addresses(block.fields["from"]):
                    return block
    return None


def _label(line: str) -> tuple[str | None, str]:
    match = _LABEL_LINE.match(line)
    if not match or match.group(1).lower() not in _LABELS:
        return None, ""
    return _LABELS[match.group(1).lower()], match.group(2).strip().strip("*").strip()


def _read_block(lines: list[str], start: int, quote: str) -> _Block | None:
    """Label lines (a value may sit on the next line, as HTML tables render), then the body."""
    block = _Block()
    position = start
    last: str | None = None
    unquoted = [line[len(quote) :] if line.startswith(quote) else line for line in lines]
    while position < len(unquoted) and not unquoted[position].strip() and not block.fields:
        position += 1
    while position < len(unquoted):
        line = unquoted[position].strip()
        name, value = _label(line)
        if name is None:
            if line and last in ("to", "cc") and "@" in line and ":" not in line:
                block.fields[last] += " " + line
                position += 1
                continue
            break
        if name and name in block.fields:
            break
        if not value and position + 1 < len(unquoted):
            following = unquoted[position + 1].strip()
            if following and _label(following)[0] is None:
                value, position = following, position + 1
        if name:
            block.fields[name] = value
        last = name
        position += 1
    if not block.fields:
        return None
    block.body = "\n".join(unquoted[position:]).strip("\n")
    return block


def _addresses(value: str) -> list[tuple[str, str]]:
    """(name, address) pairs from a client's display: `<a>`, `[mailto:a]`, bare, `;` lists."""
    found, start = [], 0
    for match in _ANGLE.finditer(value):
        name = value[start : match.start()].strip(" ,;\t\"'")
        found.append((name, match.group(1) or match.group(2)))
        start = match.end()
    if found:
        return found
    return [("", match.group(0)) for match in _BARE.finditer(value)]


def parse_display_date(value: str) -> tuple[datetime, bool] | None:
    """A date as mail clients display it, in German or English; (datetime, zone was given).

    Reads RFC 5322 dates, "Montag, 8. Januar 2024 09:00", "Mon, Jan 8, 2024 at 9:00 AM",
    "Mo., 8. Jan. 2024 um 09:00 Uhr", "08.01.2024 09:00", "2024-01-08 09:00" and "1/8/2024".
    A date without a zone comes back naive.
    """
    text = value.strip()
    try:
        rfc = parsedate_to_datetime(text)
    except _PARSE_ERRORS:
        rfc = None
    if rfc is not None and re.match(r"^(\w{2,3},\s*)?\d{1,2} \w{3} \d{4} \d", text):
        return rfc, rfc.tzinfo is not None
    time_match = _TIME.search(text)
    hour = minute = second = 0
    rest, after = text, ""
    if time_match:
        hour, minute = int(time_match.group(1)), int(time_match.group(2))
        second = int(time_match.group(3) or 0)
        meridiem = (time_match.group(4) or "").lower()
        if meridiem:
            hour = hour % 12 + (12 if meridiem == "p" else 0)
        rest, after = text[: time_match.start()], text[time_match.end() :]
    date = _date_part(rest) or _date_part(after)
    if date is None:
        return None
    try:
        naive = datetime(*date, hour, minute, second)
    except _PARSE_ERRORS:
        return None
    zone = _zone(after) if time_match else None
    if zone is None:
        return naive, False
    return naive.replace(tzinfo=zone), True


def _date_part(text: str) -> tuple[int, int, int] | None:
    for pattern, (y, m, d) in _NUMERIC_DATES:
        found = pattern.search(text)
        if found:
            return int(found.group(y)), int(found.group(m)), int(found.group(d))
    month = next((_MONTHS[w[:3]] for w in re.findall(r"[^\W\d_]+", text.lower()) if w[:3] in
                  _MONTHS), None)  # fmt: skip
    years = re.findall(r"\b(\d{4})\b", text)
    days = [int(n) for n in re.findall(r"\b(\d{1,2})\b", text) if 1 <= int(n) <= 31]
    if month is None or not years or not days:
        return None
    return int(years[0]), month, days[0]


def _zone(text: str) -> tzinfo | None:
    offset = _OFFSET.search(text)
    if offset and int(offset.group(2)) <= 14:
        minutes = int(offset.group(2)) * 60 + int(offset.group(3))
        return timezone(timedelta(minutes=-minutes if offset.group(1) == "-" else minutes))
    for word in re.findall(r"[A-Za-z]+", text):
        if word.lower() in _ZONES:
            return timezone(timedelta(hours=_ZONES[word.lower()]))
    return None


def _rebuild(block: _Block, outer: Message, forwarder: str, zone: tzinfo | None) -> bytes:
    """An RFC 5322 message from an inline forward, deterministic for the same input.

    The Message-ID is derived from the content so that two colleagues forwarding the same
    customer mail log one interaction.
    """
    fields = block.fields
    outer_date = _outer_date(outer)
    parsed = parse_display_date(fields.get("date", "")) if fields.get("date") else None
    date: datetime | None = None
    if parsed is not None and 1970 <= parsed[0].year <= 2200:
        date, zoned = parsed
        if not zoned:
            local = zone or (outer_date.tzinfo if outer_date else None) or UTC
            date = date.replace(tzinfo=local)
    date = date or outer_date
    subject = fields.get("subject")
    if subject is None:
        subject = _FORWARD_PREFIX.sub("", decode_header_value(outer.get("Subject", "")))
    sender = _addresses(fields["from"])[0]
    digest = hashlib.sha256(
        "\n".join((sender[1].lower(), date.isoformat() if date else "", subject, block.body))
        .encode("utf-8", "surrogatepass")
    ).hexdigest()[:32]  # fmt: skip
    headers = [("From", _format_addresses([sender]))]
    for name in ("to", "cc"):
        pairs = _addresses(fields.get(name, ""))
        if pairs:
            headers.append((name.capitalize(), _format_addresses(pairs)))
    if date is not None:
        headers.append(("Date", format_datetime(date)))
    headers += [("Subject", _encode(subject)), ("Message-ID", f"<fwd.{digest}@crmhub.invalid>")]
    if forwarder:
        headers.append((FORWARDED_BY, _clean(forwarder)))
    headers += [
        ("MIME-Version", "1.0"),
        ("Content-Type", "text/plain; charset=utf-8"),
        ("Content-Transfer-Encoding", "quoted-printable"),
    ]
    head = "".join(f"{name}: {value}\r\n" for name, value in headers)
    body = quopri.encodestring(block.body.encode("utf-8", "replace")).replace(b"\n", b"\r\n")
    return head.encode("utf-8", "replace") + b"\r\n" + body + b"\r\n"


def _outer_date(msg: Message) -> datetime | None:
    try:
        parsed = parsedate_to_datetime(str(msg.get("Date", "")).strip())
    except _PARSE_ERRORS:
        return None
    if parsed is None or not 1970 <= parsed.year <= 2200:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _clean(value: str) -> str:
    return re.sub(r"[\x00-\x1f\x7f]+", " ", value).strip()


def _encode(text: str) -> str:
    """A header value: RFC 2047 words for non-ASCII text, folded with CRLF."""
    text = _clean(text)
    charset = "us-ascii" if text.isascii() else "utf-8"
    return Header(text, charset, header_name="Subject").encode(linesep="\r\n")


def _format_addresses(pairs: list[tuple[str, str]]) -> str:
    formatted = []
    for name, address in pairs:
        address = _clean(address).replace(" ", "")
        local, _, domain = address.rpartition("@")
        try:
            domain = domain.encode("idna").decode("ascii")
        except UnicodeError:
            pass
        name = _clean(name)
        if not name:
            formatted.append(f"<{local}@{domain}>")
            continue
        if name.isascii():
            name = '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
        else:
            name = Header(name, "utf-8").encode(linesep="\r\n")
        formatted.append(f"{name} <{local}@{domain}>")
    return ",\r\n ".join(formatted)
