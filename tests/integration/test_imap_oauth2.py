"""XOAUTH2 logins of the imap connector against a real Dovecot that really checks the token.

The identity provider cannot run here, so a tiny stdlib HTTP server on a free loopback port
plays its token introspection endpoint with the RFC 7662 wire format: Dovecot's oauth2 passdb
POSTs ``token=<token>`` (``application/x-www-form-urlencoded``) and reads back JSON,
``{"active": true, "username": "<login>"}`` for a token it knows and ``{"active": false}`` for
any other. Everything else (SASL XOAUTH2, the passdb, the username check) is Dovecot's own.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import pytest

from connectors.base import ConnectorContext, ConnectorError
from connectors.imap import ImapConnector
from hub.model import Translated
from tests.fetching import fetch_all
from tests.integration.dovecot import HOST, Dovecot, MailUser, start_dovecot

GOOD_TOKEN = "ya29.a0-good-token-for-anna"
BAD_TOKEN = "ya29.a0-revoked-token"


class FakeIntrospection:
    """An RFC 7662 token introspection endpoint in a thread; records every token it is asked."""

    def __init__(self) -> None:
        self.tokens: dict[str, str] = {}
        self.seen: list[str] = []
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                form = parse_qs(self.rfile.read(length).decode("ascii"))
                token = form.get("token", [""])[0]
                with fake._lock:
                    fake.seen.append(token)
                    username = fake.tokens.get(token)
                answer: dict[str, object] = {"active": username is not None}
                if username is not None:
                    answer |= {"username": username, "token_type": "Bearer"}
                body = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer((HOST, 0), Handler)
        self.url = f"http://{HOST}:{self._server.server_address[1]}/introspect"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FakeIntrospection:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


@pytest.fixture(scope="module")
def introspection() -> Iterator[FakeIntrospection]:
    with FakeIntrospection() as endpoint:
        yield endpoint


@pytest.fixture(scope="module")
def server(introspection: FakeIntrospection) -> Iterator[Dovecot]:
    with start_dovecot(oauth2_url=introspection.url) as dovecot:
        yield dovecot


@pytest.fixture
def user(server: Dovecot, introspection: FakeIntrospection) -> MailUser:
    server.reset()
    introspection.tokens.clear()
    introspection.seen.clear()
    return server.add_user("anna@ourco.example")


def _connector(server: Dovecot, user: MailUser, token: str, **more: str) -> ImapConnector:
    return ImapConnector(
        "anna",
        {
            "host": server.host,
            "port": str(server.imaps_port),
            "username": user.name,
            "ca_file": str(server.cert_path),
            "auth": "xoauth2",
            "folders": "INBOX",
            "timeout": "5",
            **more,
        },
        {"oauth_token": token},
        ConnectorContext(internal_domains=("ourco.example",)),
    )


MAIL = (
    b"From: Kunde <kunde@firma.example>\r\nTo: anna@ourco.example\r\nSubject: Anfrage\r\n"
    b"Message-ID: <oauth1@firma.example>\r\nDate: Mon, 8 Jan 2024 09:00:00 +0100\r\n\r\nText\r\n"
)


async def test_xoauth2_token_the_provider_accepts_syncs_the_inbox(
    server: Dovecot,
    user: MailUser,
    introspection: FakeIntrospection,
    caplog: pytest.LogCaptureFixture,
) -> None:
    server.append(user, "INBOX", MAIL)
    introspection.tokens[GOOD_TOKEN] = user.name
    with caplog.at_level(logging.DEBUG):
        fetched, _ = await fetch_all(_connector(server, user, GOOD_TOKEN))
    items = [i for i in fetched if isinstance(i, Translated)]
    assert [i.interaction.dedupe_key for i in items] == ["mid:<oauth1@firma.example>"]
    assert introspection.seen == [GOOD_TOKEN], "Dovecot did not ask the endpoint"
    sasl = base64.b64encode(f"user={user.name}\x01auth=Bearer {GOOD_TOKEN}\x01\x01".encode())
    assert "Sending" in caplog.text, "aioimaplib's debug log was not captured"
    assert GOOD_TOKEN not in caplog.text and sasl.decode() not in caplog.text


async def test_xoauth2_token_the_provider_rejects_is_refused_without_echoing_it(
    server: Dovecot, user: MailUser, introspection: FakeIntrospection
) -> None:
    """Refused at once and not retried: a hang here means the server's error challenge went
    unanswered (a client that ignores it waits for a tagged NO that never comes)."""
    introspection.tokens[GOOD_TOKEN] = user.name
    with pytest.raises(ConnectorError) as caught:
        await fetch_all(_connector(server, user, BAD_TOKEN, retries="2"))
    message = str(caught.value)
    assert "refused the login" in message, message
    assert "XOAUTH2 token secret" in message, message
    assert BAD_TOKEN not in message
    assert introspection.seen == [BAD_TOKEN], "one attempt, judged by the endpoint"


async def test_xoauth2_token_of_another_user_is_refused(
    server: Dovecot, user: MailUser, introspection: FakeIntrospection
) -> None:
    """Dovecot compares the endpoint's ``username`` with the login, so a valid token is not
    enough; this also shows the endpoint's answer, not the token's shape, decides."""
    introspection.tokens[GOOD_TOKEN] = "tom@ourco.example"
    with pytest.raises(ConnectorError, match="refused the login"):
        await fetch_all(_connector(server, user, GOOD_TOKEN, retries="2"))
    assert introspection.seen == [GOOD_TOKEN]
