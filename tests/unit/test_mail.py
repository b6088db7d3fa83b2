"""translate_message(): RFC 5322 bytes as real mailboxes hold them -> Interaction.

Every mail connector (mbox, Maildir, .eml, IMAP) goes through this one function, so a
header it cannot decode or a message that makes it raise shows up as garbled timelines or
a stalled sync everywhere. Besides hand-written cases for each decoding rule, CPython's own
corpus of odd messages is run through it: each must be translated or quarantined with a
reason, never crash.
"""

from __future__ import annotations

import sysconfig
from datetime import UTC, datetime, timedelta, timezone
from email.message import Message
from pathlib import Path

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from connectors.base import MalformedItem
from connectors.mail import (
    SNIPPET_CHARS,
    _cap_headers,
    _filename,
    lines_of,
    translate_message,
)
from hub.model import Channel, Role

HEAD = (
    b"From: Jana Ohlsen <j.ohlsen@elbe-logistik.de>\r\n"
    b"To: Anna <anna@ourco.example>\r\n"
    b"Date: Mon, 8 Jan 2024 09:00:00 +0100\r\n"
)
CPYTHON_MAIL_CORPUS = Path(sysconfig.get_paths()["stdlib"]) / "test" / "test_email" / "data"


def _mail(*headers: bytes, body: bytes = b"Guten Tag.\r\n", head: bytes = HEAD) -> bytes:
    return head + b"".join(h + b"\r\n" for h in headers) + b"\r\n" + body


def test_a_plain_message_becomes_an_email_interaction() -> None:
    item = translate_message(
        _mail(b"Subject: Angebot", b"Message-ID: <m1@elbe-logistik.de>", b"Cc: c@isar-mb.de")
    )
    assert item.channel is Channel.EMAIL
    assert item.subject == "Angebot"
    assert item.message_id == "<m1@elbe-logistik.de>"
    assert item.dedupe_key == "mid:<m1@elbe-logistik.de>"
    assert item.occurred_at == datetime(2024, 1, 8, 9, tzinfo=timezone(timedelta(hours=1)))
    assert [(p.role, p.address, p.name) for p in item.participants] == [
        (Role.FROM, "j.ohlsen@elbe-logistik.de", "Jana Ohlsen"),
        (Role.TO, "anna@ourco.example", "Anna"),
        (Role.CC, "c@isar-mb.de", ""),
    ]
    assert item.body_text == "Guten Tag.\r\n"


def test_rfc2047_encoded_words_in_several_charsets() -> None:
    item = translate_message(
        _mail(
            b"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?= =?iso-8859-1?q?_aus_M=FCnchen?=",
            b"Cc: =?utf-8?b?SsO8cmdlbiBNw7xsbGVy?= <jm@isar-mb.de>",
        )
    )
    assert item.subject == "Grüße aus München"
    assert item.participants[-1].name == "Jürgen Müller"
    assert item.participants[-1].address == "jm@isar-mb.de"


def test_rfc2231_attachment_filename() -> None:
    body = (
        b"--BB\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nAnbei.\r\n"
        b"--BB\r\nContent-Type: application/pdf\r\n"
        b"Content-Disposition: attachment; filename*=utf-8''Angebot%20M%C3%BCller.pdf\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQ=\r\n--BB--\r\n"
    )
    item = translate_message(
        _mail(b"MIME-Version: 1.0", b"Content-Type: multipart/mixed; boundary=BB", body=body)
    )
    assert [(a.filename, a.content_type, a.size) for a in item.attachments] == [
        ("Angebot Müller.pdf", "application/pdf", len(b"%PDF-1.4"))
    ]
    assert item.attachments[0].content == b"%PDF-1.4"
    assert item.body_text.strip() == "Anbei."


def test_attachments_are_not_kept_above_the_message_size_cap() -> None:
    body = (
        b"--BB\r\nContent-Type: application/octet-stream\r\n"
        b"Content-Disposition: attachment; filename=big.bin\r\n\r\n"
        + b"x" * 500
        + b"\r\n--BB--\r\n"
    )
    data = _mail(b"Content-Type: multipart/mixed; boundary=BB", body=body)
    item = translate_message(data, max_message_bytes=len(data) - 1)
    assert item.attachments[0].content is None
    assert item.attachments[0].size >= 500


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (b"Subject: =?x-unknown-charset?q?Gr=C3=BC=C3=9Fe?=", "Grüße"),
        (b"Subject: =?us-ascii?q?Gr=C3=BC=C3=9Fe?=", "Grüße"),
        (b"Subject: =?iso-8859-1?q?Gr=C3=BC=C3=9Fe?=", "GrÃ¼Ã\x9fe"),
        (b"Subject: Gr\xc3\xbc\xc3\x9fe raw utf-8", "Grüße raw utf-8"),
        (b"Subject: Gr\xfc\xdfe raw latin-1", "Grüße raw latin-1"),
        (b"Subject: =?utf-8?q?broken_=E2=82?=", "broken â‚"),
    ],
)
def test_unknown_and_mislabelled_header_charsets(header: bytes, expected: str) -> None:
    """A charset that does not exist or lies falls back to UTF-8, then cp1252; never raises."""
    assert translate_message(_mail(header)).subject == expected


def test_raw_8bit_display_name_is_decoded() -> None:
    head = (
        b"From: J\xc3\xbcrgen <j@isar-mb.de>\r\n"
        b"To: anna@ourco.example\r\nDate: Mon, 8 Jan 2024 09:00:00 +0100\r\n"
    )
    item = translate_message(_mail(head=head))
    assert item.participants[0].name == "Jürgen"


def test_raw_8bit_content_disposition_does_not_break_the_body() -> None:
    """compat32 hands such a header over as a Header object, not a str."""
    body = (
        b"--BB\r\nContent-Type: text/plain\r\n\r\nAnbei.\r\n"
        b"--BB\r\nContent-Type: application/pdf\r\n"
        b'Content-Disposition: attachment; filename="M\xc3\xbcller.pdf"\r\n\r\nPDF\r\n--BB--\r\n'
    )
    item = translate_message(_mail(b"Content-Type: multipart/mixed; boundary=BB", body=body))
    assert item.body_text.strip() == "Anbei."
    assert [a.content_type for a in item.attachments] == ["application/pdf"]


@pytest.mark.parametrize(
    ("content_type", "body", "expected"),
    [
        (b"text/plain; charset=iso-8859-1", b"Gr\xfc\xdfe", "Grüße"),
        (b"text/plain; charset=utf-8", b"Gr\xfc\xdfe mislabelled", "Grüße mislabelled"),
        (b"text/plain; charset=x-bogus", b"Gr\xc3\xbc\xc3\x9fe", "Grüße"),
        (b"text/plain", b"Gr\xc3\xbc\xc3\x9fe", "Grüße"),
    ],
)
def test_unknown_and_mislabelled_body_charsets(
    content_type: bytes, body: bytes, expected: str
) -> None:
    item = translate_message(_mail(b"Content-Type: " + content_type, body=body))
    assert item.body_text == expected


@pytest.mark.parametrize(
    "header", [b"Message-ID: no-angle-brackets@x", b"Message-ID: <>", b"Message-ID: <a b@x>", b""]
)
def test_missing_or_broken_message_id_falls_back_to_a_content_hash(header: bytes) -> None:
    """Without a usable id, identical bytes must still deduplicate across sources."""
    data = _mail(header) if header else _mail()
    item = translate_message(data)
    assert item.message_id is None
    assert item.dedupe_key.startswith("sha256:")
    assert translate_message(data).dedupe_key == item.dedupe_key
    assert translate_message(data + b"x").dedupe_key != item.dedupe_key
    assert item.thread_key == item.dedupe_key


def test_message_id_is_found_inside_noise() -> None:
    item = translate_message(_mail(b"Message-ID: (comment) <abc@host.example> trailing"))
    assert item.message_id == "<abc@host.example>"


def test_date_without_zone_is_utc_and_a_received_header_is_the_fallback() -> None:
    head = b"From: a@x.de\r\nTo: b@y.de\r\n"
    naive = translate_message(_mail(b"Date: 8 Jan 2024 09:00:00", head=head))
    assert naive.occurred_at == datetime(2024, 1, 8, 9, tzinfo=UTC)
    received = translate_message(
        _mail(
            b"Date: not a date",
            b"Received: from mx by mx2; Tue, 9 Jan 2024 10:00:00 +0000",
            head=head,
        )
    )
    assert received.occurred_at == datetime(2024, 1, 9, 10, tzinfo=UTC)


def test_date_fallback_and_malformed_date() -> None:
    """An absurd year is as useless as none; without a fallback the item is quarantined."""
    head = b"From: a@x.de\r\nTo: b@y.de\r\n"
    data = _mail(b"Date: Mon, 8 Jan 1901 09:00:00 +0000", head=head)
    envelope = datetime(2024, 2, 1, tzinfo=UTC)
    assert translate_message(data, fallback_date=envelope).occurred_at == envelope
    with pytest.raises(MalformedItem, match="Date"):
        translate_message(data)


def test_sender_stands_in_for_a_missing_from() -> None:
    head = (
        b"Sender: Robot <robot@elbe-logistik.de>\r\n"
        b"To: anna@ourco.example\r\nDate: Mon, 8 Jan 2024 09:00:00 +0100\r\n"
    )
    item = translate_message(_mail(head=head))
    assert (item.participants[0].role, item.participants[0].address) == (
        Role.FROM,
        "robot@elbe-logistik.de",
    )


def test_from_with_several_addresses_and_quoted_commas() -> None:
    head = (
        b'From: "Ohlsen, Jana" <j.ohlsen@elbe-logistik.de>, piet@gmail.com\r\n'
        b"To: undisclosed-recipients:;\r\nDate: Mon, 8 Jan 2024 09:00:00 +0100\r\n"
    )
    item = translate_message(_mail(head=head))
    assert [(p.role, p.address, p.name) for p in item.participants] == [
        (Role.FROM, "j.ohlsen@elbe-logistik.de", "Ohlsen, Jana"),
        (Role.FROM, "piet@gmail.com", ""),
    ]


@pytest.mark.parametrize(
    ("head", "reason"),
    [
        (b"X-Only: header\r\n", "not a mail message"),
        (b"Subject: no parties\r\nDate: Mon, 8 Jan 2024 09:00:00 +0100\r\n", "no sender"),
        (b"From: Jana Ohlsen\r\nTo: undisclosed-recipients:;\r\nSubject: x\r\n", "no sender"),
        (b"\x00\x01garbage\r\n", "not a mail message"),
    ],
)
def test_messages_without_parties_are_malformed(head: bytes, reason: str) -> None:
    with pytest.raises(MalformedItem, match=reason):
        translate_message(head + b"\r\nbody")


def test_html_only_body_is_turned_into_text() -> None:
    html = (
        b"<html><head><title>T</title><style>p {color: red}</style></head><body>"
        b"<p>Hallo <b>Welt</b>,</p><script>alert(1)</script><div>Preis &amp; Lieferung"
        b"<br>ab&nbsp;Lager</div></body></html>"
    )
    item = translate_message(_mail(b"Content-Type: text/html; charset=utf-8", body=html))
    assert item.body_text.splitlines() == ["Hallo Welt,", "Preis & Lieferung", "ab Lager"]
    assert item.body_html == html.decode()
    assert "alert" not in item.snippet and "color" not in item.snippet
    assert item.snippet.startswith("Hallo Welt, Preis & Lieferung")


def test_plain_text_wins_over_html_in_multipart_alternative() -> None:
    body = (
        b"--A\r\nContent-Type: text/plain\r\n\r\nplain version\r\n"
        b"--A\r\nContent-Type: text/html\r\n\r\n<p>html version</p>\r\n--A--\r\n"
    )
    item = translate_message(_mail(b"Content-Type: multipart/alternative; boundary=A", body=body))
    assert item.body_text.strip() == "plain version"
    assert "html version" in item.body_html
    assert item.attachments == []


def test_without_html_the_text_is_the_same_and_html_only_mail_still_has_text() -> None:
    """What the translation workers ask for: storage keeps no HTML, so it is not decoded."""
    body = (
        b"--A\r\nContent-Type: text/html; charset=iso-8859-1\r\n\r\n<p>Gr\xfc\xdfe</p>\r\n"
        b"--A\r\nContent-Type: text/plain; charset=iso-8859-1\r\n\r\nGr\xfc\xdfe, Jana\r\n--A--\r\n"
    )
    both = _mail(b"Content-Type: multipart/alternative; boundary=A", body=body)
    full, lean = translate_message(both), translate_message(both, keep_html=False)
    assert full.body_html == "<p>Grüße</p>"
    assert lean.body_html == ""
    assert lean.body_text == full.body_text == "Grüße, Jana"
    html_only = _mail(b"Content-Type: text/html; charset=utf-8", body=b"<p>Nur HTML</p>")
    lean = translate_message(html_only, keep_html=False)
    assert lean.body_text == "Nur HTML" and lean.body_html == ""


def test_snippet_skips_quotes_collapses_space_and_is_capped() -> None:
    body = b"> quoted reply\r\n\r\nNew   text\r\n  > also quoted\r\nmore " + b"w" * 1000
    item = translate_message(_mail(body=body))
    assert item.snippet.startswith("New text more www")
    assert "quoted" not in item.snippet
    assert len(item.snippet) == SNIPPET_CHARS


def test_thread_key_prefers_the_root_of_references() -> None:
    item = translate_message(
        _mail(
            b"Message-ID: <c@x>",
            b"In-Reply-To: <b@x>",
            b"References: <a@x>\r\n <b@x>",
        )
    )
    assert item.references == ["<a@x>", "<b@x>"]
    assert item.in_reply_to == ["<b@x>"]
    assert item.thread_key == "<a@x>"


def test_thread_key_falls_back_to_in_reply_to_then_own_id() -> None:
    reply = translate_message(_mail(b"Message-ID: <c@x>", b"In-Reply-To: Jana's mail <b@x>"))
    assert (reply.references, reply.in_reply_to, reply.thread_key) == ([], ["<b@x>"], "<b@x>")
    root = translate_message(_mail(b"Message-ID: <a@x>"))
    assert root.thread_key == "<a@x>"


def test_bulk_headers_are_kept_for_matching() -> None:
    item = translate_message(
        _mail(b"List-Unsubscribe: <mailto:u@x.de>", b"Precedence: bulk", b"X-Other: dropped")
    )
    assert item.headers == {"precedence": "bulk", "list-unsubscribe": "<mailto:u@x.de>"}


def test_header_block_is_capped_but_the_body_survives() -> None:
    """A mail with megabytes of headers must not stall the sync; its body is still shown."""
    filler = b"\r\n".join(b"X-Filler-%d: %s" % (i, b"v" * 60) for i in range(5000))
    data = _mail(filler, b"Subject: after the cap", body=b"the body\r\n")
    item = translate_message(data, max_header_bytes=4096)
    assert item.participants[0].address == "j.ohlsen@elbe-logistik.de"
    assert item.subject == ""
    assert item.body_text.strip() == "the body"
    uncapped = translate_message(data, max_header_bytes=len(data))
    assert uncapped.subject == "after the cap"


def test_very_long_header_values_are_truncated() -> None:
    item = translate_message(_mail(b"Subject: " + b"a" * 50_000))
    assert 0 < len(item.subject) <= 1000


@pytest.mark.parametrize(
    "subject", ["Re: Angebot (Lager Nord", "Re: Angebot Lager Nord)) x", "(((", "=?utf-8?q?(?="]
)
def test_subject_with_unbalanced_parenthesis_is_kept_verbatim(subject: str) -> None:
    item = translate_message(_mail(b"Subject: " + subject.encode()))
    assert item.subject == subject.replace("=?utf-8?q?(?=", "(")
    assert item.participants[0].address == "j.ohlsen@elbe-logistik.de"


def test_unbalanced_parenthesis_in_a_display_name_keeps_the_address() -> None:
    """`getaddresses` reads `(Elbe ...` as an unterminated comment and drops the sender."""
    head = (
        b"From: Jana (Elbe Logistik <j.ohlsen@elbe-logistik.de>\r\n"
        b"To: anna@ourco.example\r\nDate: Mon, 8 Jan 2024 09:00:00 +0100\r\n"
    )
    item = translate_message(_mail(head=head))
    assert [(p.role, p.address) for p in item.participants] == [
        (Role.FROM, "j.ohlsen@elbe-logistik.de"),
        (Role.TO, "anna@ourco.example"),
    ]


def test_cpython_email_corpus_translates_or_quarantines() -> None:
    """CPython's parser test corpus: odd MIME, broken headers, non-mail; none may crash us."""
    assert CPYTHON_MAIL_CORPUS.is_dir(), (
        f"CPython's email test corpus is missing at {CPYTHON_MAIL_CORPUS}; install the "
        "interpreter's test package (e.g. the python3-test / libpython3-testsuite package)"
    )
    files = sorted(CPYTHON_MAIL_CORPUS.glob("msg_*.txt"))
    assert len(files) >= 40, f"only {len(files)} msg_*.txt files in {CPYTHON_MAIL_CORPUS}"
    translated, quarantined = [], []
    for file in files:
        try:
            item = translate_message(file.read_bytes())
        except MalformedItem as e:
            assert str(e).strip(), f"{file.name}: empty quarantine reason"
            quarantined.append(file.name)
        else:
            assert item.participants, file.name
            assert item.occurred_at.tzinfo is not None, file.name
            assert item.dedupe_key, file.name
            translated.append(file.name)
    assert len(translated) + len(quarantined) == len(files)
    assert len(translated) > 20, quarantined
    assert len(quarantined) < len(translated)


message_headers = st.sampled_from(
    [
        *(b"From", b"To", b"Cc", b"Sender", b"Date", b"Subject", b"Message-ID", b"References"),
        *(b"In-Reply-To", b"Content-Type", b"Content-Transfer-Encoding", b"Content-Disposition"),
    ]
)
header_lines = st.tuples(message_headers, st.binary(max_size=60)).map(
    lambda pair: pair[0] + b": " + pair[1].replace(b"\n", b" ").replace(b"\r", b" ") + b"\r\n"
)


@given(
    st.one_of(
        st.tuples(st.lists(header_lines, max_size=8), st.binary(max_size=200)).map(
            lambda parts: b"".join(parts[0]) + b"\r\n" + parts[1]
        ),
        st.binary(max_size=300),
    )
)
def test_translate_raises_only_malformed_item(data: bytes) -> None:
    """Anything else would be quarantined as a crash instead of with a readable reason."""
    try:
        item = translate_message(data, fallback_date=datetime(2024, 1, 1, tzinfo=UTC))
    except MalformedItem as e:
        assert str(e)
    else:
        assert item.participants
        assert all("@" in p.address for p in item.participants)


param_pieces = st.sampled_from(
    [
        "attachment",
        "inline",
        "text/plain",
        "application/pdf",
        "; ",
        ";",
        "=",
        '"',
        "\\",
        "filename",
        "FileName",
        "name",
        "NAME",
        "filename*",
        "filename*0",
        "filename*1*",
        "name*=utf-8''",
        "a.pdf",
        "M\udcc3\udcbcller",
        "%C3%BC",
        " ",
        "nam",
        "e",
        "(x)",
    ]
)
param_headers = st.lists(param_pieces, max_size=8).map("".join)


@given(st.none() | param_headers, st.none() | param_headers)
def test_filename_shortcut_agrees_with_get_filename(
    disposition: str | None, content_type: str | None
) -> None:
    """_filename() skips get_filename()'s parameter parsing only where it cannot find a name."""
    part = Message()
    if disposition is not None:
        part.set_raw("Content-Disposition", disposition)
    if content_type is not None:
        part.set_raw("Content-Type", content_type)
    try:
        expected = part.get_filename()
    except (ValueError, LookupError) as e:
        with pytest.raises(type(e)):
            _filename(part)
    else:
        assert _filename(part) == expected


@given(st.lists(st.sampled_from([b"a", b"\r", b"\n", b"\r\n", b": "]), max_size=30).map(b"".join))
def test_header_cap_finds_the_first_blank_line(data: bytes) -> None:
    """One regex search instead of two finds, the first of which scanned whole CRLF messages."""
    end = data.find(b"\n\n")
    crlf = data.find(b"\r\n\r\n")
    if crlf != -1 and (end == -1 or crlf < end):
        end = crlf
    if end == -1:
        end = len(data)
    cap = 4
    cut = data.rfind(b"\n", 0, cap)
    expected = data if end <= cap else data[: max(cut, 0)] + b"\n\n" + data[end:].lstrip(b"\r\n")
    assert _cap_headers(data, cap) == expected


@given(st.text(st.sampled_from("ab \r\n\x0b\x1c\x85\u2028")), st.integers(1, 8))
def test_lines_of_is_a_lazy_splitlines(text: str, chunk: int) -> None:
    assert list(lines_of(text, chunk)) == text.splitlines(keepends=True)


_ADDRESS_ALPHABET = st.sampled_from(list("ab.Z9-_+ @<>,\t\"()\\:;[]'!äé"))


@given(st.text(_ADDRESS_ALPHABET, max_size=40))
def test_the_fast_address_reader_agrees_with_getaddresses_wherever_it_answers(value: str) -> None:
    from email.utils import getaddresses

    from connectors.mail import _simple_addresses

    fast = _simple_addresses(value)
    if fast is not None:
        expected = [(name, addr.strip()) for name, addr in getaddresses([value]) if "@" in addr]
        assert fast == expected


@pytest.mark.parametrize(
    "value",
    [
        "Jana Ohlsen <j.ohlsen@elbe-logistik.de>",
        "  J.  Ohlsen\t<j@x.de> , piet@elbe.de,",
        "Jürgen Müller <jm@müller.example>, <bare@x.de>",
        "a..b@x.de, Team <@route:a@b.de>",
    ],
)
def test_the_fast_address_reader_on_common_headers(value: str) -> None:
    from email.utils import getaddresses

    from connectors.mail import _addresses

    expected = [(name, addr.strip()) for name, addr in getaddresses([value]) if "@" in addr]
    assert _addresses([value]) == expected


def _from_header(value: bytes) -> list[tuple[str, str, str]]:
    raw = b"From: " + value + b"\r\nTo: anna@ourco.example\r\nSubject: x\r\n\r\nText\r\n"
    item = translate_message(raw, fallback_date=datetime(2024, 1, 8, tzinfo=UTC))
    return [(p.role.value, p.name, p.address) for p in item.participants]


def test_an_address_hidden_in_an_encoded_display_name_is_not_a_participant() -> None:
    """Decoded first, the name would read as a second sender: the customer whose address it
    holds would get a mail they never wrote (found by bench/matching.py)."""
    header = b"=?utf-8?q?J=C3=B6rg_M=C3=BCller_=3Cboss=40customer=2Eexample=3E?= <w19@gmail.com>"
    assert _from_header(header) == [
        ("from", "Jörg Müller <boss@customer.example>", "w19@gmail.com"),
        ("to", "", "anna@ourco.example"),
    ]


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (b"=?utf-8?q?M=C3=BCller=2C_J=C3=B6rg?= <jm@x.de>", [("Müller, Jörg", "jm@x.de")]),
        (b'"=?iso-8859-1?q?M=FCller?=" <m@x.de>, b@y.de', [("Müller", "m@x.de"), ("", "b@y.de")]),
        ("Jörg Müller <jm@x.de>".encode(), [("Jörg Müller", "jm@x.de")]),  # raw 8-bit UTF-8
        (
            b"Jana\r\n Ohlsen <j@x.de>,\r\n\tpiet@y.de",
            [("Jana Ohlsen", "j@x.de"), ("", "piet@y.de")],
        ),
    ],
)
def test_display_names_are_decoded_after_the_split(
    header: bytes, expected: list[tuple[str, str]]
) -> None:
    assert [(n, a) for role, n, a in _from_header(header) if role == "from"] == expected


@given(st.text(alphabet=st.characters(max_codepoint=127), max_size=60))
def test_plain_ascii_headers_decode_as_the_full_way_does(value: str) -> None:
    """decode_header_value returns early for ASCII without encoded words: the same steps as
    the full way (below, as it was before the shortcut) must give the same text."""
    from email.header import decode_header

    from connectors.mail import collapse, decode_header_value, decode_text

    assume("=?" not in value)
    joined = "".join(
        decode_text(chunk, charset) if isinstance(chunk, bytes) else chunk
        for chunk, charset in decode_header(value)
    )
    full = collapse(joined.encode("utf-8", "surrogateescape").decode("utf-8", "replace"))
    assert decode_header_value(value) == full


@given(st.text())
def test_collapse_is_the_regular_expression_it_replaced(text: str) -> None:
    import re

    from connectors.mail import collapse

    assert collapse(text) == re.sub(r"\s+", " ", text).strip()
