"""split_message(): the compat32 tree without the feedparser's line-by-line walk.

Its whole contract is "the same tree as `email.message_from_bytes(data, policy=compat32)`, or
None". So every test compares with the standard library: over the realistic bench corpus,
CPython's corpus of odd messages and the demo mbox, over hand-made edge cases the splitter must
hand back, and over generated MIME trees full of near-boundaries, bare CRs and junk headers;
and the Interaction translate_message makes of each, with the splitter and without.
"""

from __future__ import annotations

import mailbox
import sysconfig
from collections.abc import Iterator
from email import message_from_bytes
from email.message import Message
from email.policy import compat32
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.imap_vs_mbsync import messages
from connectors.base import MalformedItem
from connectors.mail import translate_message
from connectors.mime import parse_message, split_message
from hub.demo_data import write_demo_files

CPYTHON_MAIL_CORPUS = Path(sysconfig.get_paths()["stdlib"]) / "test" / "test_email" / "data"


def corpus(name: str, tmp_path: Path) -> list[bytes]:
    """The bench corpus, CPython's msg_*.txt or the demo mbox, one bytes object per message."""
    if name == "bench":
        return list(messages(600))  # every kind of the bench mix, in a few seconds
    if name == "cpython":
        return [p.read_bytes() for p in sorted(CPYTHON_MAIL_CORPUS.glob("msg_*.txt"))]
    box = mailbox.mbox(write_demo_files(tmp_path).mbox, create=False)
    try:
        return [box.get_bytes(key) for key in box.keys()]
    finally:
        box.close()


def shape(msg: Message) -> list[tuple[object, ...]]:
    """What translate_message can read of a tree: every part's raw headers, types, payload."""
    return [
        (
            list(part.raw_items()),
            part.get_unixfrom(),
            part.get_default_type(),
            part.is_multipart(),
            # The payload string as parsed: get_payload() re-decodes 8-bit text, and raises
            # TypeError on an RFC 2231 charset parameter.
            None if part.is_multipart() else part._payload,
        )
        for part in msg.walk()
    ]


def assert_same_tree_or_none(data: bytes) -> bool:
    """True when the splitter built the tree itself (and it is the feedparser's)."""
    split = split_message(data)
    if split is not None:
        assert shape(split) == shape(message_from_bytes(data, policy=compat32))
    return split is not None


def same_interaction_or_error(data: bytes) -> None:
    """translate_message() with the splitter and with the full parse: equal, or equal errors."""
    results = []
    for fast in (True, False):
        try:
            item = translate_message(data, fast=fast)
        except MalformedItem as e:
            results.append(("malformed", str(e)))
        else:
            # repr, not ==: equal instants with different UTC offsets compare equal.
            results.append(("translated", repr(item)))
    assert results[0] == results[1]


@pytest.mark.parametrize(("name", "least_split"), [("bench", 600), ("cpython", 30), ("demo", 1990)])
def test_every_corpus_message_gets_the_feedparser_tree_and_interaction(
    name: str, least_split: int, tmp_path: Path
) -> None:
    split = 0
    for data in corpus(name, tmp_path):
        split += assert_same_tree_or_none(data)
        same_interaction_or_error(data)
    assert split >= least_split


HEAD = b"From: a@x.de\r\nTo: b@y.de\r\nMIME-Version: 1.0\r\n"


@pytest.mark.parametrize(
    ("why", "data"),
    [
        ("no close boundary", b"Content-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\n\r\nx\r\n"),
        ("no start boundary", b"Content-Type: multipart/mixed; boundary=B\r\n\r\nx\r\n--B--\r\n"),
        (
            "boundary after a bare CR",
            b"Content-Type: multipart/mixed; boundary=B\r\n\r\n"
            b"--B\r\n\r\nx\r--B\r\n\r\ny\r\n--B--\r\n",
        ),
        (
            "bare CR in a boundary line",
            b"Content-Type: multipart/mixed; boundary=B\r\n\r\n"
            b"--B\r\n\r\nx\r\n--B\rjunk\r\n\r\ny\r\n--B--\r\n",
        ),
        (
            "consecutive boundaries",
            b"Content-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\n--B\r\n\r\nx\r\n--B--\r\n",
        ),
        ("delivery-status", b"Content-Type: message/delivery-status\r\n\r\nA: b\r\n\r\nC: d\r\n"),
        ("no boundary parameter", b"Content-Type: multipart/mixed\r\n\r\nx\r\n"),
        (
            "non-ASCII boundary",
            b"Content-Type: multipart/mixed; boundary*=utf-8''%C3%BC\r\n\r\n"
            b"--\xc3\xbc\r\n\r\nx\r\n--\xc3\xbc--\r\n",
        ),
        ("body line ends the headers", b"Subject: x\r\nno colon here\r\n\r\nbody\r\n"),
        ("From line last in the headers", b"Subject: x\r\nFrom nobody\r\n\r\nbody\r\n"),
        ("headers only", b"Subject: no body"),
    ],
)
def test_unusual_messages_are_left_to_the_feedparser(why: str, data: bytes) -> None:
    assert split_message(HEAD + data) is None, why
    assert shape(parse_message(HEAD + data)) == shape(message_from_bytes(HEAD + data))


def test_forwarded_message_and_digest_are_split_like_the_feedparser() -> None:
    data = HEAD + (
        b"Content-Type: multipart/mixed; boundary=B\r\n\r\npreamble\r\n--B\r\n"
        b"Content-Type: message/rfc822\r\n\r\nFrom: c@z.de\r\nSubject: fwd\r\n\r\ninner\r\n"
        b"--B\r\nContent-Type: multipart/digest; boundary=D\r\n\r\n--D\r\n\r\n"
        b"Subject: digest item\r\n\r\nitem\r\n--D--\r\n--B--\r\nepilogue\r\n"
    )
    assert assert_same_tree_or_none(data)


BOUNDARIES = ("B", "B1", "B--", "a b", "=_x")
TRICKY_LINES = (
    b"plain words",
    b"",
    b" ",
    b"-- ",
    b"--",
    b"From somebody",
    b"Subject: not a header",
    b"\tcontinued",
    b"a\rb",
    b"\r",
    b"caf\xc3\xa9 \xfc",
    b"=E4=F6 soft=",
    b"QUJD",
    b"====",
    *(b"--" + b.encode() + tail for b in BOUNDARIES for tail in (b"", b"--", b"  ", b"x", b"\r")),
)
leaf_types = st.sampled_from(
    [
        b"text/plain",
        b"text/plain; charset=utf-8",
        b"text/plain; charset=x-bogus",
        b"text/html; charset=iso-8859-1",
        b"application/pdf; name=a.pdf",
        b"message/rfc822",
        b"image/png",
        b"text/plain; charset*=utf-8''%C3%BC",
        b'TEXT/PLAIN; CHARSET="UTF-8"',
    ]
)
extra_headers = st.lists(
    st.sampled_from(
        [
            b"Content-Transfer-Encoding: base64",
            b"Content-Transfer-Encoding: quoted-printable",
            b"Content-Transfer-Encoding: 8bit",
            b"Content-Disposition: attachment",
            b'Content-Disposition: attachment; filename="M\xc3\xbcller.pdf"',
            b"Content-Disposition: inline; filename*=utf-8''a%20b.txt",
            b"X-Junk: \x00\xff",
            b" folded continuation",
            b"From envelope",
            b":no name",
            b"Content-Type: text/html",
        ]
    ),
    max_size=3,
)
line_ends = st.sampled_from([b"\r\n", b"\n"])


@st.composite
def lines(draw: st.DrawFn) -> bytes:
    items = draw(st.lists(st.sampled_from(TRICKY_LINES) | st.binary(max_size=20), max_size=6))
    end = draw(line_ends)
    return b"".join(item + draw(st.sampled_from([end, end, b"\r\n", b"\n"])) for item in items)


@st.composite
def entities(draw: st.DrawFn, depth: int = 0) -> bytes:
    """One MIME entity: usually well formed, sometimes not, in the ways mail gets broken."""
    end = draw(line_ends)
    headers = [b"Content-Type: " + draw(leaf_types), *draw(extra_headers)]
    if depth < 3 and draw(st.booleans()):
        boundary = draw(st.sampled_from(BOUNDARIES)).encode()
        kind = draw(st.sampled_from([b"mixed", b"alternative", b"digest", b"related"]))
        headers = [b"Content-Type: multipart/" + kind + b'; boundary="' + boundary + b'"']
        headers += draw(extra_headers)
        parts = draw(st.lists(entities(depth + 1), max_size=3))
        body = draw(lines())
        for part in parts:
            body += b"--" + boundary + draw(st.sampled_from([end, b"  " + end, end + end])) + part
            body += draw(st.sampled_from([end, b""]))
        if draw(st.integers(0, 9)):
            body += b"--" + boundary + b"--" + end
        body += draw(lines())
    else:
        body = draw(lines())
    if draw(st.integers(0, 9)) == 0:
        headers = draw(st.permutations(headers))
    blank = draw(st.sampled_from([end, end, b""]))
    return b"".join(h + end for h in headers) + blank + body


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(entities())
def test_generated_mime_trees_are_split_like_the_feedparser(data: bytes) -> None:
    """Also: translate_message raises nothing but MalformedItem, on either path."""
    assert_same_tree_or_none(HEAD + data)
    same_interaction_or_error(HEAD + b"Date: Mon, 8 Jan 2024 09:00:00 +0100\r\n" + data)


@given(st.binary(max_size=400))
def test_split_never_raises(data: bytes) -> None:
    assert_same_tree_or_none(data)
    same_interaction_or_error(data)


def test_generated_messages_mostly_take_the_fast_path() -> None:
    """Guards the property tests above against testing only the fallback."""
    examples: Iterator[bytes] = (
        HEAD
        + b"Content-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\n"
        + b"Content-Type: text/plain\r\n\r\n"
        + line
        + b"\r\n--B--\r\n"
        for line in TRICKY_LINES
        if b"\r" not in line and not line.startswith(b"--B")
    )
    assert all(assert_same_tree_or_none(data) for data in examples)


HEADER_BLOCKS = (
    b"Subject: plain\r\nTo: a@b.example\r\n\r\n",
    b"Subject:\r\n folded after an empty first line\r\n\tand a tab\r\n\r\n",
    b"Subject: \t  leading blanks\r\n \r\nX: y\r\n\r\n",
    b"Subject: lf only\nTo: a@b.example\n\n",
    b"Subject: =?utf-8?q?M=C3=BCller?=\r\nX-Raw: M\xc3\xbcller \xff\r\n\r\n",
    b"X-Empty:\r\nX-Colon: a: b: c\r\n\r\n",
    b"From someone@example Mon Jan  8 09:00:00 2024\r\nSubject: mbox\r\n\r\n",
    b"Subject: bare\rCR\r\n\r\n",
    b":no name\r\nSubject: x\r\n\r\n",
    b" continuation first\r\nSubject: x\r\n\r\n",
    b"Subject: trailing\r\n\r\r\n\r\n",
    b"\r\n",
)


@pytest.mark.parametrize("block", HEADER_BLOCKS)
def test_header_blocks_read_by_expression_as_line_by_line(block: bytes) -> None:
    from connectors.mime import _headers, _headers_by_line, _Unusual

    try:
        expected = _headers_by_line(block.decode("ascii", "surrogateescape"))
    except _Unusual:
        with pytest.raises(_Unusual):
            _headers(block)
        return
    got = _headers(block)
    assert list(got.raw_items()) == list(expected.raw_items())
    assert got.get_unixfrom() == expected.get_unixfrom()


@given(
    st.lists(
        st.sampled_from(
            [b"Subject: x", b"To: a@b.example", b" folded", b"\tfolded", b"X-E:", b"X: \xff"]
        )
        | st.binary(max_size=12),
        max_size=6,
    ),
    st.sampled_from([b"\r\n", b"\n"]),
)
def test_generated_header_blocks_read_by_expression_as_line_by_line(
    lines: list[bytes], end: bytes
) -> None:
    from connectors.mime import _headers, _headers_by_line, _Unusual

    block = b"".join(line + end for line in lines if b"\n" not in line) + end
    try:
        expected = list(_headers_by_line(block.decode("ascii", "surrogateescape")).raw_items())
    except _Unusual:
        return
    assert list(_headers(block).raw_items()) == expected


def test_ordinary_header_blocks_take_the_expression_way() -> None:
    """Guards the two tests above against comparing the line-by-line reader with itself."""
    from connectors.mime import _ordinary

    ordinary = [_ordinary(b, b.decode("ascii", "surrogateescape")) for b in HEADER_BLOCKS]
    assert ordinary == [True] * 6 + [False] * 5 + [True]
