"""Forwards to the dropbox unwrap to the customer's mail: each client, German and English."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone, tzinfo
from email.message import EmailMessage
from email.policy import SMTP
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.forwarded import parse_display_date, unwrap
from connectors.mail import translate_message
from hub.model import Interaction, Role

INTERNAL = ["ourco.example"]
DROPBOX = ["log@crm.example"]
CUSTOMER = "j.ohlsen@elbe-logistik.de"
BERLIN = timezone(timedelta(hours=1))
JAN_8_9AM_BERLIN = datetime(2024, 1, 8, 9, 0, tzinfo=BERLIN)
BODY = "Guten Tag Frau Schmidt,\nwir brauchen 400 Palettenplätze ab März.\nJens Ohlsen"


def forward(
    body: str,
    *,
    subject: str = "WG: Angebot Lagerfläche",
    html: str = "",
    to: str = "log@crm.example",
    date: str = "Tue, 09 Jan 2024 10:15:00 +0100",
) -> bytes:
    """A forward as Anna's client sends it to the dropbox."""
    message = EmailMessage(policy=SMTP)
    message["From"] = "Anna Schmidt <anna@ourco.example>"
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = date
    message["Message-ID"] = "<fwd-1@ourco.example>"
    if body:
        message.set_content(body)
        if html:
            message.add_alternative(html, subtype="html")
    else:
        message.set_content(html, subtype="html")
    return message.as_bytes()


def original(data: bytes, local_zone: tzinfo | None = None) -> tuple[bytes, Interaction]:
    unwrapped = unwrap(data, INTERNAL, DROPBOX, local_zone=local_zone)
    return unwrapped, translate_message(unwrapped)


def assert_is_customer_mail(data: bytes, subject: str = "Angebot Lagerfläche") -> None:
    unwrapped, interaction = original(data)
    assert unwrapped != data
    assert interaction.subject == subject
    senders = [p.address for p in interaction.participants if p.role is Role.FROM]
    assert senders == [CUSTOMER]
    assert "400 Palettenplätze" in interaction.body_text
    assert "Zur Info" not in interaction.body_text
    assert interaction.occurred_at == JAN_8_9AM_BERLIN
    assert b"X-Crmhub-Forwarded-By: anna@ourco.example" in unwrapped


OUTLOOK_DE = f"""Zur Info.

-----Ursprüngliche Nachricht-----
Von: Jens Ohlsen <{CUSTOMER}>
Gesendet: Montag, 8. Januar 2024 09:00
An: Schmidt, Anna <anna@ourco.example>
Cc: Einkauf <einkauf@elbe-logistik.de>
Betreff: Angebot Lagerfläche

{BODY}
"""

OUTLOOK_EN = f"""FYI

-----Original Message-----
From: Jens Ohlsen [mailto:{CUSTOMER}]
Sent: Monday, January 8, 2024 9:00 AM
To: Anna Schmidt <anna@ourco.example>; Bernd Kuhn <b.kuhn@ourco.example>
Subject: Angebot Lagerfläche

{BODY}
"""

OUTLOOK_EN_HTML = f"""<html><head><style>p {{margin:0}}</style></head><body>
<div class="WordSection1"><p class="MsoNormal">Zur Info<o:p></o:p></p>
<div style="border:none;border-top:solid #E1E1E1 1.0pt;padding:3.0pt 0cm 0cm 0cm">
<p class="MsoNormal"><b>From:</b> Jens Ohlsen &lt;{CUSTOMER}&gt;
<br><b>Sent:</b> Monday, January 8, 2024
9:00 AM<br><b>To:</b> Anna Schmidt &lt;anna@ourco.example&gt;<br><b>Subject:</b>
Angebot Lagerfläche<o:p></o:p></p></div>
<p class="MsoNormal">Guten Tag Frau Schmidt,</p>
<p class="MsoNormal">wir brauchen 400 Palettenplätze ab März.</p>
<p class="MsoNormal">Jens Ohlsen</p></div></body></html>"""

GMAIL_EN = f"""Zur Info

---------- Forwarded message ---------
From: Jens Ohlsen <{CUSTOMER}>
Date: Mon, Jan 8, 2024 at 9:00 AM
Subject: Angebot Lagerfläche
To: <anna@ourco.example>


{BODY}
"""

GMAIL_DE_HTML = f"""<div dir="ltr">Zur Info<br><br><div class="gmail_quote"><div dir="ltr"
class="gmail_attr">---------- Weitergeleitete Nachricht ---------<br>Von: <strong
class="gmail_sendername" dir="auto">Jens Ohlsen</strong> <span dir="auto">&lt;<a
href="mailto:{CUSTOMER}">{CUSTOMER}</a>&gt;</span><br>Date: Mo., 8. Jan. 2024 um 09:00 Uhr<br>
Subject: Angebot Lagerfläche<br>To: &lt;<a href="mailto:anna@ourco.example">anna@ourco.example</a>
&gt;<br></div><br><br><div dir="ltr">Guten Tag Frau Schmidt,<br>wir brauchen 400
Palettenplätze ab März.<br>Jens Ohlsen</div></div></div>"""

THUNDERBIRD_DE = f"""Zur Info



-------- Weitergeleitete Nachricht --------
Betreff: \tAngebot Lagerfläche
Datum: \tMon, 8 Jan 2024 09:00:00 +0100
Von: \tJens Ohlsen <{CUSTOMER}>
An: \tAnna Schmidt <anna@ourco.example>



{BODY}
"""

THUNDERBIRD_EN_HTML = f"""<html><body><p>Zur Info<br></p><div class="moz-forward-container"><br>
<br>-------- Forwarded Message --------
<table class="moz-email-headers-table" cellspacing="0" cellpadding="0" border="0"><tbody>
<tr><th valign="BASELINE" nowrap="nowrap" align="RIGHT">Subject: </th>
<td>Angebot Lagerfläche</td></tr>
<tr><th valign="BASELINE" nowrap="nowrap" align="RIGHT">Date: </th>
<td>Mon, 8 Jan 2024 09:00:00 +0100</td></tr>
<tr><th valign="BASELINE" nowrap="nowrap" align="RIGHT">From: </th>
<td>Jens Ohlsen <a class="moz-txt-link-rfc2396E" href="mailto:{CUSTOMER}">
&lt;{CUSTOMER}&gt;</a></td></tr>
<tr><th valign="BASELINE" nowrap="nowrap" align="RIGHT">To: </th>
<td>Anna Schmidt <a href="mailto:anna@ourco.example">&lt;anna@ourco.example&gt;</a></td></tr>
</tbody></table><br><p>Guten Tag Frau Schmidt,<br>wir brauchen 400 Palettenplätze ab März.<br>
Jens Ohlsen</p></div></body></html>"""


@pytest.mark.parametrize(
    ("body", "html"),
    [
        pytest.param(OUTLOOK_DE, "", id="outlook-de"),
        pytest.param(OUTLOOK_EN, "", id="outlook-en"),
        pytest.param("", OUTLOOK_EN_HTML, id="outlook-en-html-only"),
        pytest.param(GMAIL_EN, "", id="gmail-en"),
        pytest.param("", GMAIL_DE_HTML, id="gmail-de-html-only"),
        pytest.param(THUNDERBIRD_DE, "", id="thunderbird-de"),
        pytest.param("", THUNDERBIRD_EN_HTML, id="thunderbird-en-html-only"),
    ],
)
def test_inline_forwards_unwrap_to_the_customer_mail(body: str, html: str) -> None:
    assert_is_customer_mail(forward(body, html=html))


def test_outlook_header_block_keeps_recipients_and_cc() -> None:
    _, interaction = original(forward(OUTLOOK_DE))
    roles = {(p.role, p.address) for p in interaction.participants}
    assert (Role.TO, "anna@ourco.example") in roles
    assert (Role.CC, "einkauf@elbe-logistik.de") in roles
    _, english = original(forward(OUTLOOK_EN))
    to = [p.address for p in english.participants if p.role is Role.TO]
    assert to == ["anna@ourco.example", "b.kuhn@ourco.example"]


def test_quoted_plain_text_forward_is_unquoted() -> None:
    quoted = "\n".join("> " + line for line in GMAIL_EN.splitlines())
    assert_is_customer_mail(forward(quoted))
    _, interaction = original(forward(quoted))
    assert not interaction.body_text.startswith(">")


def test_attached_message_is_returned_with_its_own_message_id() -> None:
    inner = EmailMessage(policy=SMTP)
    inner["From"] = f"Jens Ohlsen <{CUSTOMER}>"
    inner["To"] = "anna@ourco.example"
    inner["Subject"] = "Angebot Lagerfläche"
    inner["Date"] = "Mon, 08 Jan 2024 09:00:00 +0100"
    inner["Message-ID"] = "<orig-42@elbe-logistik.de>"
    inner.set_content(BODY)
    outer = EmailMessage(policy=SMTP)
    outer["From"] = "anna@ourco.example"
    outer["To"] = "log@crm.example"
    outer["Subject"] = "Fwd: Angebot Lagerfläche"
    outer["Date"] = "Tue, 09 Jan 2024 10:15:00 +0100"
    outer.set_content("Zur Info")
    outer.add_attachment(inner)
    _, interaction = original(outer.as_bytes())
    assert interaction.message_id == "<orig-42@elbe-logistik.de>"
    assert_is_customer_mail(outer.as_bytes())


def test_bcc_copy_and_reply_to_a_customer_are_logged_as_they_are() -> None:
    bcc = forward("Guten Tag Herr Ohlsen,\nanbei das Angebot.", subject="Angebot", to=CUSTOMER)
    assert unwrap(bcc, INTERNAL, DROPBOX) == bcc
    reply = forward(OUTLOOK_DE, subject="AW: Angebot Lagerfläche", to=CUSTOMER)
    assert unwrap(reply, INTERNAL, DROPBOX) == reply
    assert unwrap(reply, INTERNAL) == reply
    # Forwarded to another customer with the dropbox in Bcc: that forward is the real mail.
    onward = forward(OUTLOOK_DE, to="partner@spedition-nord.de")
    assert unwrap(onward, INTERNAL, DROPBOX) == onward


def test_forward_prefix_is_enough_when_the_dropbox_addresses_are_not_known() -> None:
    unwrapped = unwrap(forward(GMAIL_EN), INTERNAL)
    assert translate_message(unwrapped).subject == "Angebot Lagerfläche"


def test_internal_mail_without_a_forward_is_unchanged() -> None:
    note = forward("Bitte Herrn Ohlsen morgen anrufen.", subject="Notiz", to="b@ourco.example")
    assert unwrap(note, INTERNAL, DROPBOX) == note


def test_unreadable_original_date_falls_back_to_the_forwards_date() -> None:
    body = OUTLOOK_DE.replace("Montag, 8. Januar 2024 09:00", "gestern Vormittag")
    _, interaction = original(forward(body))
    assert interaction.occurred_at == datetime(2024, 1, 9, 10, 15, tzinfo=BERLIN)


def test_missing_subject_line_uses_the_forwards_subject_without_its_prefix() -> None:
    body = OUTLOOK_DE.replace("Betreff: Angebot Lagerfläche\n", "")
    _, interaction = original(forward(body, subject="WG: AW: Lagerfläche Hamburg"))
    assert interaction.subject == "Lagerfläche Hamburg"


def test_a_chain_of_internal_forwards_reaches_the_customer() -> None:
    chain = f"""Bitte loggen.

-----Original Message-----
From: Bernd Kuhn <b.kuhn@ourco.example>
Sent: Monday, January 8, 2024 11:00 AM
To: Anna Schmidt <anna@ourco.example>
Subject: WG: Angebot Lagerfläche

Anna, das ist deiner.

{OUTLOOK_DE}"""
    unwrapped, interaction = original(forward(chain))
    assert [p.address for p in interaction.participants if p.role is Role.FROM] == [CUSTOMER]
    assert b"X-Crmhub-Forwarded-By: anna@ourco.example" in unwrapped


def test_two_colleagues_forwarding_the_same_mail_get_the_same_message_id() -> None:
    first = translate_message(unwrap(forward(OUTLOOK_DE), INTERNAL, DROPBOX))
    second_forward = forward(OUTLOOK_DE, date="Wed, 10 Jan 2024 08:00:00 +0100").replace(
        b"Anna Schmidt <anna@ourco.example>", b"Bernd <b.kuhn@ourco.example>", 1
    )
    second = translate_message(unwrap(second_forward, INTERNAL, DROPBOX))
    assert first.message_id == second.message_id is not None
    assert first.dedupe_key == second.dedupe_key


def test_naive_times_are_read_in_the_given_zone() -> None:
    _, interaction = original(forward(OUTLOOK_DE), local_zone=ZoneInfo("America/New_York"))
    assert interaction.occurred_at.astimezone(UTC) == datetime(2024, 1, 8, 14, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected", "zoned"),
    [
        ("Montag, 8. Januar 2024 09:00", datetime(2024, 1, 8, 9, 0), False),
        ("Mon, Jan 8, 2024 at 9:00 AM", datetime(2024, 1, 8, 9, 0), False),
        ("Monday, January 8, 2024 9:00 PM", datetime(2024, 1, 8, 21, 0), False),
        ("Mo., 8. Jan. 2024 um 09:00 Uhr", datetime(2024, 1, 8, 9, 0), False),
        ("Donnerstag, 14. März 2024 17:45", datetime(2024, 3, 14, 17, 45), False),
        ("Di., 3. Dez. 2024 um 12:05 Uhr", datetime(2024, 12, 3, 12, 5), False),
        ("08.01.2024 09:00", datetime(2024, 1, 8, 9, 0), False),
        ("2024-01-08 09:00", datetime(2024, 1, 8, 9, 0), False),
        ("Mon, 8 Jan 2024 09:00:00 +0100", datetime(2024, 1, 8, 9, 0, tzinfo=BERLIN), True),
        ("8. Januar 2024 um 09:00:00 MEZ", datetime(2024, 1, 8, 9, 0, tzinfo=BERLIN), True),
    ],
)
def test_display_dates_in_german_and_english(text: str, expected: datetime, zoned: bool) -> None:
    assert parse_display_date(text) == (expected, zoned)


@pytest.mark.parametrize("text", ["", "gestern", "31.02.2024 09:00", "Montag 9:00"])
def test_unreadable_display_dates(text: str) -> None:
    assert parse_display_date(text) is None


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_unwrap_never_raises_on_bytes(data: bytes) -> None:
    assert isinstance(unwrap(data, INTERNAL, DROPBOX), bytes)


_FRAGMENTS = st.sampled_from(
    [
        "-----Original Message-----",
        "---------- Forwarded message ---------",
        "-------- Weitergeleitete Nachricht --------",
        "________________________________",
        "From: ",
        "Von: x <a@b.de>",
        "Sent: ",
        "Gesendet: Montag, 31. Februar 2024 25:99",
        "Date: Mon, Jan 8, 99999 at 9:00 AM",
        "Subject:",
        "Betreff: =?utf-8?q?x?=",
        "An: ",
        "Cc: <@>",
        "To: a@b.de; <c@ourco.example>",
        "> ",
        "*From:* [mailto:x@y.de]",
        "\n",
    ]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(_FRAGMENTS, st.text(max_size=40)), max_size=30), st.booleans())
def test_unwrap_never_raises_on_text(parts: list[str], as_html: bool) -> None:
    text = "\n".join(parts)
    data = forward("", html=text) if as_html else forward(text or "x")
    result = unwrap(data, INTERNAL, DROPBOX)
    assert isinstance(result, bytes)
    if result != data:
        translate_message(result)
