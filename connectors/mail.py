"""RFC 5322 bytes -> Interaction. Tolerant of what real mailboxes hold; strict about limits.

The standard library's compat32 message model is used on purpose: it is several times faster
than `policy.default` and never raises on malformed headers; decoding (RFC 2047, RFC 2231,
unknown or mislabelled charsets) is done here, defensively, so that one bad header cannot stop a
sync. `connectors.mime` builds the compat32 tree without walking every body line.
"""

from __future__ import annotations

import codecs
import hashlib
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from email import message_from_bytes
from email.header import Header, decode_header
from email.message import Message
from email.policy import compat32
from email.utils import getaddresses, parsedate_to_datetime
from html.parser import HTMLParser
from typing import Any

from connectors.base import ConnectorContext, MalformedItem, PrivateItem
from connectors.imip import EXTRA_KEY as IMIP_REPLY
from connectors.imip import is_reply_part, reply_facts
from connectors.mime import parse_message
from hub.model import AddressKind, Attachment, Channel, Interaction, Participant, Role

SNIPPET_CHARS = 240
MAX_HEADER_VALUE = 8_000
BODY_TEXT_CHARS = 200_000
KEPT_HEADERS = ("auto-submitted", "precedence", "list-id", "list-unsubscribe")
_MSGID = re.compile(r"<([^<>\s]{1,500})>")
_ANGLE_ADDR = re.compile(r"<([^<>\s@]+@[^<>\s@]+)>")
# The address forms nearly every header uses, `Name <a@b.c>` and `a@b.c`, read without the
# standard library's character-by-character parser (about a tenth of translation time). Anything
# else (quotes, comments, groups, routes, literals) goes through getaddresses; the unit tests
# check that both give the same answer wherever this pattern applies.
_DOT_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
_SIMPLE_ADDR = _DOT_ATOM + r"@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+"
_SIMPLE_MAILBOX = re.compile(
    rf"\s*(?:(?P<name>[^()<>@,;:\\\"\[\]]*?)\s*<(?P<angle>{_SIMPLE_ADDR})>|(?P<bare>{_SIMPLE_ADDR}))\s*"
)
_NOT_SIMPLE = frozenset('"()\\:;[]')
_BLANK_LINE = re.compile(rb"\n\n|\r\n\r\n")
# The line a mail client puts above a quoted reply: the snippet ends there.
_QUOTE_HEADER = re.compile(
    r"^(Am|On|Le|El|Il) .{6,200}(schrieb|wrote|a écrit|escribió|ha scritto).{0,80}:$"
)
_FORWARD_MARKERS = (
    "-----Original Message-----",
    "-----Ursprüngliche Nachricht-----",
    "---------- Forwarded message",
    "-------- Weitergeleitete Nachricht",
)
_ROLES = ((Role.FROM, "from"), (Role.TO, "to"), (Role.CC, "cc"), (Role.BCC, "bcc"))
# RFC 2156 (and Outlook's "Sensitivity" setting): Personal and Private are the sender's word
# that a mail is nobody else's business; Company-Confidential is business mail, and logged.
_PRIVATE_SENSITIVITY = frozenset({"personal", "private"})
_SENSITIVITY_WORD = re.compile(r"\s*([A-Za-z-]+)")
_SENSITIVITY_LINE = re.compile(
    rb"^sensitivity[ \t]*:[ \t]*(personal|private)(?![A-Za-z-])", re.IGNORECASE | re.MULTILINE
)


def collapse(text: str) -> str:
    r"""Runs of white space as one space, none at either end: `re.sub(r"\s+", " ", text).strip()`
    (both by str.isspace), at a fifth of the cost: that was half of `snippet_of`."""
    return " ".join(text.split())


def decode_text(data: bytes, charset: str | None) -> str:
    """Bytes to text with the declared charset, falling back to UTF-8 and then cp1252."""
    for candidate in (charset, "utf-8", "cp1252"):
        if not candidate:
            continue
        try:
            codecs.lookup(candidate)
            return data.decode(candidate)
        except (LookupError, UnicodeDecodeError, ValueError):
            continue
    return data.decode("latin-1")


def decode_header_value(value: object) -> str:
    """A header (str with RFC 2047 words, Header object or raw 8-bit) as readable text."""
    if isinstance(value, Header):
        # compat32 wraps raw 8-bit headers in a Header whose str() replaces every such byte.
        value = "".join(
            decode_text(chunk, charset) if isinstance(chunk, bytes) else chunk
            for chunk, charset in decode_header(value)
        )
    raw = str(value) if not isinstance(value, str) else value
    raw = raw[:MAX_HEADER_VALUE]
    if "=?" not in raw and raw.isascii():  # no encoded word: what the rest would return
        return collapse(raw)
    try:
        parts = decode_header(raw)
    except (ValueError, LookupError, AssertionError):
        return collapse(raw)
    text = []
    for chunk, charset in parts:
        if isinstance(chunk, bytes):
            text.append(decode_text(chunk, charset))
        else:
            text.append(chunk)
    joined = "".join(text)
    return collapse(joined.encode("utf-8", "surrogateescape").decode("utf-8", "replace"))


def message_ids(value: str | None) -> list[str]:
    return [f"<{m}>" for m in _MSGID.findall(value or "")]


class _TextFromHtml(HTMLParser):
    """Visible text of an HTML body; script and style are dropped."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style", "head"):
            self._skip += 1
        elif tag in ("br", "p", "div", "tr", "li", "h1", "h2", "h3"):
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style", "head") and self._skip:
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def html_to_text(html: str) -> str:
    parser = _TextFromHtml()
    try:
        parser.feed(html)
        parser.close()
    except (AssertionError, ValueError):
        return re.sub(r"<[^>]*>", " ", html)
    lines = (collapse(line) for line in "".join(parser.parts).splitlines())
    return "\n".join(line for line in lines if line)


def lines_of(text: str, chunk: int = 2_000) -> Iterator[str]:
    """`text.splitlines(keepends=True)`, lazily: a snippet needs a few lines of a long body."""
    start = 0
    while start < len(text):
        end = start + chunk
        lines = text[start:end].splitlines(keepends=True)
        if end < len(text):
            if len(lines) == 1:
                chunk *= 2
                continue
            lines.pop()
        yield from lines
        start += sum(map(len, lines))


def snippet_of(text: str) -> str:
    """The first words that are not a quote; reads only as many lines as the snippet needs."""
    lines: list[str] = []
    length = 0
    for line in lines_of(text):
        stripped = line.strip()
        if _QUOTE_HEADER.match(stripped) or stripped.startswith(_FORWARD_MARKERS):
            break
        if stripped and not stripped.startswith(">"):
            lines.append(stripped)
            length += len(stripped) + 1
            if length > SNIPPET_CHARS:
                break
    return collapse(" ".join(lines))[:SNIPPET_CHARS]


def _cap_headers(data: bytes, max_header_bytes: int) -> bytes:
    """Truncate a pathological header block so parsing stays bounded in time and memory."""
    blank = _BLANK_LINE.search(data)
    end = len(data) if blank is None else blank.start()
    if end <= max_header_bytes:
        return data
    cut = data.rfind(b"\n", 0, max_header_bytes)
    return data[: max(cut, 0)] + b"\n\n" + data[end:].lstrip(b"\r\n")


def _payload(part: Message) -> bytes:
    try:
        payload = part.get_payload(decode=True)
    except (ValueError, AssertionError, LookupError):
        payload = None
    if isinstance(payload, bytes):
        return payload
    raw = part.get_payload()
    return raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else b""


def _filename(part: Message) -> str | None:
    """`part.get_filename()`, skipping its parameter parsing where no header can name a file.

    That parsing was a third of `_bodies` on ordinary mail. Every parameter name it finds is
    a piece of the header's text, so `filename` or `name` can only be found when "name" is in
    it.
    """
    for header in ("Content-Disposition", "Content-Type"):
        value = part.get(header)
        if value is not None and "name" in str(value).lower():
            return part.get_filename()
    return None


def _bodies(
    msg: Message, keep_attachments: bool, keep_html: bool
) -> tuple[str, str, list[Attachment], Message | None]:
    """Text, HTML, attachments and an iMIP REPLY part (connectors.imip), if any; the HTML is
    decoded only when wanted or the only text."""
    text, attachments = "", []
    html_part: Message | None = None
    reply: Message | None = None
    for part in msg.walk():
        if part.is_multipart():
            continue
        ctype = part.get_content_type()
        if reply is None and is_reply_part(ctype, str(part.get_param("method") or "")):
            reply = part
        filename = _filename(part)
        disposition = str(part.get("Content-Disposition") or "").split(";")[0].strip().lower()
        if filename or disposition == "attachment" or ctype == "message/rfc822":
            data = _payload(part)
            name = (
                decode_header_value(filename) if filename else f"attachment.{ctype.split('/')[-1]}"
            )
            # A connector that dropped an oversized body says how large it was.
            omitted = str(part.get("X-Crmhub-Omitted-Size", "")).strip()
            if omitted.isdigit():
                attachments.append(Attachment(name, ctype, int(omitted), None))
            else:
                attachments.append(
                    Attachment(name, ctype, len(data), data if keep_attachments else None)
                )
        elif ctype == "text/plain" and not text:
            text = decode_text(_payload(part), part.get_content_charset())
        elif ctype == "text/html" and html_part is None:
            html_part = part
    html = ""
    if html_part is not None and (keep_html or not text):
        html = decode_text(_payload(html_part), html_part.get_content_charset())
    return text[:BODY_TEXT_CHARS], html[:BODY_TEXT_CHARS], attachments, reply


_ADDRESS_HEADERS = frozenset({"from", "to", "cc", "bcc", "sender"})
_FOLD = re.compile(r"\r?\n(?=[ \t])")


def _raw_headers(msg: Message) -> dict[str, list[str]]:
    """The address headers as written, unfolded, raw 8-bit text decoded, encoded words not.

    Mailboxes must be split before their display names are decoded: decoded first, a name
    such as `=?utf-8?q?J=C3=B6rg_<boss@customer.example>?=` would read as a second address
    of the mail, and attribute it to a customer who never wrote it.
    """
    found: dict[str, list[str]] = {}
    for key, value in msg.raw_items():
        name = key.lower()
        if name in _ADDRESS_HEADERS:
            text = str(value)[:MAX_HEADER_VALUE]
            if not text.isascii():  # compat32 keeps raw 8-bit bytes as surrogate escapes
                try:
                    text = decode_text(text.encode("ascii", "surrogateescape"), None)
                except UnicodeEncodeError:
                    pass  # already text
            found.setdefault(name, []).append(_FOLD.sub("", text))
    return found


def _mailboxes(values: list[str]) -> list[tuple[str, str]]:
    """(display name, address) pairs of raw header values, each name decoded on its own."""
    return [
        (decode_header_value(name) if "=?" in name else name, address)
        for name, address in _addresses(values)
    ]


def _addresses(values: list[str]) -> list[tuple[str, str]]:
    """(display name, address) pairs; an `<addr>` is kept even when the parser loses it.

    An unbalanced `(` in a display name makes `getaddresses` read the rest as a comment and
    drop the address, which would silently lose the sender.
    """
    pairs = []
    for value in values:
        simple = _simple_addresses(value)
        if simple is not None:
            pairs += simple
            continue
        found = [(name, addr.strip()) for name, addr in getaddresses([value]) if "@" in addr]
        pairs += found or [("", addr) for addr in _ANGLE_ADDR.findall(value)]
    return pairs


def _simple_addresses(value: str) -> list[tuple[str, str]] | None:
    """`getaddresses([value])` for a list of plain mailboxes, or None for any other header."""
    if not _NOT_SIMPLE.isdisjoint(value):
        return None
    pairs = []
    for element in value.split(","):
        if not element.strip():
            continue
        found = _SIMPLE_MAILBOX.fullmatch(element)
        if found is None:
            return None
        if found["bare"]:
            pairs.append(("", found["bare"]))
        else:
            pairs.append((" ".join(found["name"].split()), found["angle"]))
    return pairs


def _date(msg: Message, fallback: datetime | None) -> datetime:
    candidates = [msg.get("Date")]
    candidates += [str(r).rpartition(";")[2] for r in msg.get_all("Received") or []]
    for value in candidates:
        if not value:
            continue
        try:
            parsed = parsedate_to_datetime(str(value).strip())
        except (TypeError, ValueError, IndexError):
            continue
        if parsed is not None and 1970 <= parsed.year <= 2200:
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    if fallback is not None:
        return fallback
    raise MalformedItem("no usable Date header (and no Received header or envelope date)")


def _private_mark(msg: Message) -> str:
    """Why a mail must never be stored, or "": a `Sensitivity: Private|Personal` header."""
    for value in msg.get_all("Sensitivity") or []:
        word = _SENSITIVITY_WORD.match(str(value))
        if word is not None and word.group(1).lower() in _PRIVATE_SENSITIVITY:
            return f"marked Sensitivity: {word.group(1).capitalize()}"
    return ""


def marked_private(data: bytes) -> str:
    """`_private_mark` read off a raw message's header block without parsing it: for a block
    `_cap_headers` cut short (the header may stand in the part cut off), and for a wrapper
    around the mail that is translated (the dropbox's forwards)."""
    blank = _BLANK_LINE.search(data)
    found = _SENSITIVITY_LINE.search(data, 0, len(data) if blank is None else blank.start())
    return f"marked Sensitivity: {found.group(1).decode().capitalize()}" if found else ""


def translate_message(
    data: bytes,
    *,
    fallback_date: datetime | None = None,
    max_header_bytes: int = 64_000,
    max_message_bytes: int = 25_000_000,
    keep_html: bool = True,
    fast: bool = True,
    timezone: str = "UTC",
) -> Interaction:
    """Translate one message; raise MalformedItem when it is not a mail at all, PrivateItem
    when it is marked private (that goes first: a private mail is not even quarantined).

    `keep_html=False` leaves `body_html` empty (the text still comes from the HTML when there
    is no plain part). `fast=False` parses with the standard library's feedparser alone: the
    fast path must give the same Interaction, and the tests and bench/translate.py compare the
    two. `timezone` reads a floating RECURRENCE-ID of an iMIP reply (the hub's zone).
    """
    capped = _cap_headers(data, max_header_bytes)
    msg = parse_message(capped, fast=fast)
    private = _private_mark(msg)
    if not private and capped is not data:
        private = marked_private(data)
    if private:
        raise PrivateItem(private)
    headers = {k.lower() for k in msg.keys()}
    if not headers & {"from", "sender", "to", "cc", "date", "message-id", "subject"}:
        raise MalformedItem("not a mail message: no From, To, Date, Subject or Message-ID header")
    participants = []
    raw = _raw_headers(msg)
    for role, header in _ROLES:
        for name, address in _mailboxes(raw.get(header, [])):
            participants.append(Participant(role, address, AddressKind.EMAIL, name))
    if not any(p.role is Role.FROM for p in participants) and raw.get("sender"):
        for name, address in _mailboxes(raw["sender"][:1]):
            participants.insert(0, Participant(Role.FROM, address, AddressKind.EMAIL, name))
    if not participants:
        raise MalformedItem("no sender or recipient address in From, Sender, To or Cc")
    own_ids = message_ids(decode_header_value(msg.get("Message-ID", "")))
    message_id = own_ids[0] if own_ids else None
    text, html, attachments, reply = _bodies(msg, len(data) <= max_message_bytes, keep_html)
    extra: dict[str, Any] = {}
    if reply is not None and (facts := reply_facts(_payload(reply), timezone)):
        extra[IMIP_REPLY] = facts
    if not text and html:
        text = html_to_text(html)
        html = html if keep_html else ""
    in_reply_to = message_ids(str(msg.get("In-Reply-To", "")))
    references = message_ids(" ".join(str(r) for r in msg.get_all("References") or []))
    dedupe = f"mid:{message_id}" if message_id else f"sha256:{hashlib.sha256(data).hexdigest()}"
    return Interaction(
        channel=Channel.EMAIL,
        occurred_at=_date(msg, fallback_date),
        dedupe_key=dedupe,
        subject=decode_header_value(msg.get("Subject", ""))[:1000],
        snippet=snippet_of(text),
        body_text=text,
        body_html=html,
        participants=participants,
        message_id=message_id,
        in_reply_to=in_reply_to,
        references=references,
        thread_key=(references or in_reply_to or [message_id or dedupe])[0],
        attachments=attachments,
        headers={k: decode_header_value(msg[k]) for k in KEPT_HEADERS if msg.get(k) is not None},
        extra=extra,
    )


def translate_in(
    context: ConnectorContext, data: bytes, fallback_date: datetime | None = None
) -> Interaction:
    """`translate_message` with the hub's limits and HTML wish: what mail connectors call."""
    return translate_message(
        data,
        fallback_date=fallback_date,
        max_header_bytes=context.max_header_bytes,
        max_message_bytes=context.max_message_bytes,
        keep_html=context.keep_html,
        timezone=context.timezone,
    )


def strip_attachment_bodies(data: bytes) -> bytes:
    """An oversized message without its attachment bodies; names and sizes stay in headers."""
    msg = message_from_bytes(data, policy=compat32)
    for part in msg.walk():
        inline_text = part.get_content_maintype() == "text" and not part.get_filename()
        if part.is_multipart() or inline_text:
            continue
        payload = part.get_payload(decode=True) or b""
        part.set_payload("")
        part["X-Crmhub-Omitted-Size"] = str(len(payload))
        del part["Content-Transfer-Encoding"]
    return msg.as_bytes()
