"""RFC 5322 bytes -> compat32 Message tree, fast for ordinary MIME mail.

The standard library's feedparser pushes every line of a message through Python code, the lines
of base64 attachments included; that was half of `translate_message`'s time. `split_message`
takes the same steps as the feedparser on header blocks only (`_headers`), and cuts multipart
bodies at their boundary lines with `bytes.find`, in C, recursing into nested multiparts and
message/* parts. It builds the tree that `email.message_from_bytes(data, policy=compat32)`
builds, as far as `connectors.mail` reads it: headers, unix-from, default types, structure and
leaf payloads (not preambles, epilogues or defects). Whatever it cannot be sure to cut the same
way makes it answer None, and `parse_message` parses the full way: a boundary after a bare CR, a
multipart without a start or close boundary or with a non-ASCII boundary, consecutive boundary
lines, message/delivery-status, a part without an empty line after its headers, a header block
the feedparser would end early, nesting deeper than MAX_DEPTH.
"""

from __future__ import annotations

import io
import re
from email import message_from_bytes
from email.message import Message
from email.policy import compat32

MAX_DEPTH = 16
_HEADER_LINE = re.compile(r"From |[\041-\071\073-\176]*:|[\t ]")  # feedparser's headerRE
_BLANK_LINE = re.compile(rb"\n\r?\n")
_LF, _CR = ord("\n"), ord("\r")
# What feedparser's boundaryendRE accepts after "--boundary" on a line.
_BOUNDARY_TAIL = re.compile(rb"(--)?[ \t]*(\r\n|\r|\n)?$")


class _Unusual(Exception):
    """The splitter is not sure to cut like the feedparser; the full parse decides."""


def parse_message(data: bytes, *, fast: bool = True) -> Message:
    """The compat32 tree of `data`; `fast=False` forces the standard library's full parse."""
    if fast:
        msg = split_message(data)
        if msg is not None:
            return msg
    return message_from_bytes(data, policy=compat32)


def split_message(data: bytes) -> Message | None:
    """The compat32 tree of an ordinary message, or None when the full parse must decide."""
    try:
        return _entity(data, 0, len(data), depth=0, bounded=False, in_digest=False)
    except _Unusual:
        return None


def _entity(
    data: bytes, start: int, end: int, *, depth: int, bounded: bool, in_digest: bool
) -> Message:
    """The message or body part in data[start:end]: its own headers, then payload or parts.

    `bounded`: a boundary line follows at `end`, and RFC 2046 gives it the line break before
    it. `in_digest`: a direct part of a multipart/digest, whose default type is message/rfc822.
    """
    body = _body_start(data, start, end)
    msg = _headers(data[start:body])
    if in_digest:
        msg.set_default_type("message/rfc822")
    maintype = msg.get_content_maintype()
    if depth >= MAX_DEPTH and maintype in ("message", "multipart"):
        raise _Unusual("nested deeper than MAX_DEPTH")
    if maintype == "message":
        if msg.get_content_type() == "message/delivery-status":
            raise _Unusual("message/delivery-status: header blocks, parsed the feedparser's way")
        inner = _entity(data, body, end, depth=depth + 1, bounded=bounded, in_digest=False)
        msg.set_payload([inner])
        return msg
    if maintype != "multipart":
        payload = data[body:end]
        if bounded:
            payload = payload.removesuffix(b"\n").removesuffix(b"\r")
        msg.set_payload(payload.decode("ascii", "surrogateescape"))
        return msg
    boundary = msg.get_boundary()
    if not boundary:
        raise _Unusual("multipart without a boundary")
    try:
        delimiter = b"--" + boundary.encode("ascii", "surrogateescape")
    except UnicodeEncodeError as e:
        raise _Unusual("non-ASCII boundary") from e
    found = _boundary_line(data, delimiter, body, end)
    if found is None or found[2]:
        raise _Unusual("no start boundary")
    digest = msg.get_content_type() == "multipart/digest"
    parts: list[Message | str] = []
    closed = False
    part_start = found[1]
    while not closed:
        if data.startswith(delimiter, part_start, end):
            raise _Unusual("consecutive boundary lines")
        found = _boundary_line(data, delimiter, part_start, end)
        if found is None:
            raise _Unusual("no close boundary")
        line_start, part_end, closed = found
        part = _entity(
            data, part_start, line_start, depth=depth + 1, bounded=True, in_digest=digest
        )
        parts.append(part)
        part_start = part_end
    msg.set_payload(parts)
    return msg


def _headers(block: bytes) -> Message:
    """The message the feedparser makes of a header block that ends with its empty line.

    An ordinary block (fields and their continuation lines, lines ended by CRLF or LF) is read
    with two regular expressions, anything else line by line (`_headers_by_line`). Measured
    over the header blocks of 6,000 bench mails: 0.12 s against 0.20 s line by line.
    """
    text = block.decode("ascii", "surrogateescape")
    if _ordinary(block, text):
        msg = Message()
        for name, value in _FIELD.findall(text):
            msg.set_raw(name, value.rstrip("\r\n"))
        return msg
    return _headers_by_line(text)


# A field name is what feedparser's headerRE accepts before the colon. A block of such fields
# holds no From_ line, no line that starts with a colon and no continuation line first: those
# take the line-by-line way.
_NAME = r"[\041-\071\073-\176]+"
_PLAIN_BLOCK = re.compile(rf"(?:{_NAME}:[^\n]*\n(?:[ \t][^\n]*\n)*)*\r?\n")
# As compat32.header_source_parse reads a field: the rest of its first line without leading
# blanks, then its continuation lines as written; the caller strips the final line break.
_FIELD = re.compile(rf"({_NAME}):[ \t]*(.*?\n)(?![ \t])", re.S)


def _ordinary(block: bytes, text: str) -> bool:
    """Fields and continuation lines only, every CR part of a CRLF."""
    return bool(_PLAIN_BLOCK.fullmatch(text)) and block.count(b"\r") == block.count(b"\r\n")


def _headers_by_line(text: str) -> Message:
    """The same steps as `FeedParser._parse_headers`, without its per-line generator machinery,
    which costs more than the work itself on a typical block of ten headers."""
    lines = io.StringIO(text, newline="").readlines()
    lines.pop()
    msg = Message()
    field: list[str] = []
    for number, line in enumerate(lines):
        if not _HEADER_LINE.match(line):
            raise _Unusual("a line that is neither header nor empty ends the headers early")
        if line[0] in " \t":
            if field:
                field.append(line)
            continue
        if field:
            msg.set_raw(*compat32.header_source_parse(field))
            field = []
        if line.startswith("From "):
            if number == 0:
                msg.set_unixfrom(line.removesuffix("\n").removesuffix("\r"))
            elif number == len(lines) - 1:
                raise _Unusual("the feedparser reads a last From line as the body's first")
            continue
        if not line.startswith(":"):
            field = [line]
    if field:
        msg.set_raw(*compat32.header_source_parse(field))
    return msg


def _body_start(data: bytes, start: int, end: int) -> int:
    """Where the body begins: after the first empty line of data[start:end]."""
    if data.startswith(b"\n", start, end):
        return start + 1
    if data.startswith(b"\r\n", start, end):
        return start + 2
    blank = _BLANK_LINE.search(data, start, end)
    if blank is None:
        raise _Unusual("no empty line after the headers")
    return blank.end()


def _boundary_line(
    data: bytes, delimiter: bytes, start: int, end: int
) -> tuple[int, int, bool] | None:
    """The first line of data[start:end] that the feedparser reads as a boundary: where it
    starts, where the next line starts, and whether it closes the multipart.

    `start` follows a LF. The delimiter itself is searched for, not LF + delimiter: a body has
    far fewer dashes than line ends, and that makes the scan several times faster.
    """
    at = start
    while True:
        at = data.find(delimiter, at, end)
        if at == -1:
            return None
        before = data[at - 1]
        if before != _LF:
            if before == _CR:
                raise _Unusual("a boundary after a bare CR, which the feedparser ends lines at")
            at += 1
            continue
        line_end = data.find(b"\n", at, end)
        after = end if line_end == -1 else line_end + 1
        tail = _BOUNDARY_TAIL.match(data, at + len(delimiter), after)
        if tail:
            return at, after, tail.group(1) is not None
        if b"\r" in data[at:after].removesuffix(b"\r\n"):
            raise _Unusual("a bare CR in a boundary line")
        at = after
