"""The Dovecot fixture itself: if these fail, every IMAP integration test is meaningless."""

from __future__ import annotations

import asyncio
import imaplib
import time
from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import TypeVar

import aioimaplib
import pytest

from tests.integration.conftest import DovecotFactory
from tests.integration.dovecot import Dovecot, MailUser, quote_mailbox

T = TypeVar("T")
IMAP_TIMEOUT = 10


def _message(subject: str) -> bytes:
    return (
        f"From: Jana Ohlsen <j.ohlsen@elbe-logistik.de>\r\n"
        f"To: Anna <anna@ourco.example>\r\n"
        f"Subject: {subject}\r\n"
        f"Message-ID: <{subject.replace(' ', '-')}@elbe-logistik.de>\r\n"
        f"\r\n"
        f"Hello about {subject}.\r\n"
    ).encode()


def _starttls_client(server: Dovecot) -> imaplib.IMAP4:
    return imaplib.IMAP4(server.host, server.imap_port, timeout=IMAP_TIMEOUT)


async def _within(step: Awaitable[T]) -> T:
    return await asyncio.wait_for(step, IMAP_TIMEOUT)


def test_login_over_implicit_tls_verifies_the_generated_certificate(
    dovecot: Dovecot, anna: MailUser
) -> None:
    context = dovecot.ssl_context()
    with imaplib.IMAP4_SSL(
        dovecot.host, dovecot.imaps_port, ssl_context=context, timeout=IMAP_TIMEOUT
    ) as conn:
        assert conn.sock.getpeercert()["subject"] == ((("commonName", "localhost"),),)
        assert conn.login(anna.name, anna.password)[0] == "OK"
        conn.logout()


def test_login_after_starttls_with_a_crypt_password(dovecot: Dovecot, tom: MailUser) -> None:
    with _starttls_client(dovecot) as conn:
        assert "STARTTLS" in conn.capabilities
        conn.starttls(ssl_context=dovecot.ssl_context())
        assert conn.login(tom.name, tom.password)[0] == "OK"
        conn.logout()


def test_plaintext_login_is_refused_before_tls_when_disallowed(
    dovecot_factory: DovecotFactory,
) -> None:
    strict = dovecot_factory(allow_plaintext=False)
    anna = strict.add_user("anna@ourco.example")
    with _starttls_client(strict) as conn:
        assert "LOGINDISABLED" in conn.capabilities
        with pytest.raises(imaplib.IMAP4.error, match="PRIVACYREQUIRED"):
            conn.login(anna.name, anna.password)
        conn.starttls(ssl_context=strict.ssl_context())
        assert conn.login(anna.name, anna.password)[0] == "OK"
        conn.logout()


def test_plaintext_login_works_when_allowed(dovecot: Dovecot, anna: MailUser) -> None:
    with _starttls_client(dovecot) as conn:
        assert conn.login(anna.name, anna.password)[0] == "OK"
        conn.logout()


def test_wrong_password_is_rejected(dovecot: Dovecot, anna: MailUser) -> None:
    with _starttls_client(dovecot) as conn:
        with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
            conn.login(anna.name, "not-the-password")
        conn.logout()


def test_append_then_fetch_round_trips_bytes_flags_and_date(
    dovecot: Dovecot, anna: MailUser
) -> None:
    raw = _message("Angebot Kühlcontainer")
    received = datetime(2024, 3, 5, 9, 30, tzinfo=UTC)
    uid = dovecot.append(anna, "INBOX", raw, flags=[r"\Seen", r"\Flagged"], date=received)
    conn = dovecot.imap(anna)
    try:
        conn.select("INBOX", readonly=True)
        typ, data = conn.uid("FETCH", str(uid), "(FLAGS INTERNALDATE BODY.PEEK[])")
    finally:
        conn.logout()
    assert typ == "OK"
    meta, body = data[0]
    assert body == raw
    assert b"\\Seen" in meta and b"\\Flagged" in meta
    assert b'"05-Mar-2024 09:30:00 +0000"' in meta


async def test_fill_maildir_makes_5000_messages_visible_to_a_client(
    dovecot: Dovecot, anna: MailUser
) -> None:
    started = time.monotonic()
    added = dovecot.fill_maildir(anna, "INBOX", (_message(f"m{i}") for i in range(5000)))
    assert added == 5000
    assert time.monotonic() - started < 5

    client = aioimaplib.IMAP4_SSL(
        dovecot.host, dovecot.imaps_port, ssl_context=dovecot.ssl_context()
    )
    try:
        await _within(client.wait_hello_from_server())
        assert (await _within(client.login(anna.name, anna.password))).result == "OK"
        selected = await _within(client.select("INBOX"))
        assert b"5000 EXISTS" in selected.lines
        fetch = client.uid("fetch", "1,5000", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        fetched = await _within(fetch)
        subjects = [line for line in fetched.lines if line.startswith(b"Subject:")]
        assert subjects == [b"Subject: m0\r\n\r\n", b"Subject: m4999\r\n\r\n"]
        await _within(client.logout())
    finally:
        # abort, not close: a closed TLS transport shuts its socket down later, after this
        # test's event loop is gone, and the socket is then found unclosed in another test.
        if client.protocol is not None and client.protocol.transport is not None:
            client.protocol.transport.abort()


def test_uidvalidity_change_is_visible_via_status(dovecot: Dovecot, anna: MailUser) -> None:
    dovecot.set_uidvalidity(anna, "Geschäftlich", 4242)
    conn = dovecot.imap(anna)
    try:
        typ, data = conn.status(quote_mailbox("Geschäftlich"), "(UIDVALIDITY)")
    finally:
        conn.logout()
    assert typ == "OK"
    assert data == [b"Gesch&AOQ-ftlich (UIDVALIDITY 4242)"]


def test_special_use_and_non_ascii_folders_are_listed(dovecot: Dovecot, anna: MailUser) -> None:
    conn = dovecot.imap(anna)
    try:
        typ, data = conn.list('""', '"*" RETURN (SPECIAL-USE)')
    finally:
        conn.logout()
    assert typ == "OK"
    assert b'(\\Sent) "/" Sent' in data
    assert b'() "/" Gesch&AOQ-ftlich' in data


def test_expunge_move_and_kick_act_behind_an_open_session(dovecot: Dovecot, anna: MailUser) -> None:
    dovecot.fill_maildir(anna, "INBOX", (_message(f"m{i}") for i in range(4)))
    conn = dovecot.imap(anna)
    try:
        conn.select("INBOX")
        dovecot.expunge(anna, "INBOX", [1])
        dovecot.move(anna, "INBOX", "Trash", "2:3")
        conn.noop()
        assert conn.uid("SEARCH", "ALL") == ("OK", [b"4"])
        assert dovecot.message_count(anna, "Trash") == 2
        # Dovecot learns of a session a moment after login (its anvil process): on a busy
        # machine a first kick may find nobody to drop yet.
        deadline = time.monotonic() + 15
        with pytest.raises(imaplib.IMAP4.abort):
            while time.monotonic() < deadline:
                dovecot.kick(anna)
                conn.noop()
                time.sleep(0.2)
    finally:
        conn.shutdown()
    assert "kicked" in dovecot.log_text() or "Disconnected" in dovecot.log_text()


def test_reset_starts_every_user_with_an_empty_store(dovecot: Dovecot, anna: MailUser) -> None:
    dovecot.append(anna, "INBOX", _message("left over"))
    dovecot.reset()
    again = dovecot.add_user(anna.name, anna.password)
    assert dovecot.message_count(again, "INBOX") == 0
    conn = dovecot.imap(again)
    conn.logout()
