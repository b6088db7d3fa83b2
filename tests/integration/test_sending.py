"""Sending through a real aiosmtpd (STARTTLS and AUTH required) with the copy filed in Dovecot."""

from __future__ import annotations

import ssl
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from sqlalchemy import select

from connectors.base import ConnectorError
from hub.admin import add_connector
from hub.bootstrap import Hub
from hub.pipeline import sync_all
from hub.sending import Outgoing, SendError, compose, send_mail
from storage.tables import InteractionRow, SourceRow
from tests.integration.dovecot import Dovecot, MailUser, start_dovecot, write_self_signed_cert
from tests.mailserver import RecordingMailserver, start_mailserver

SMTP_PASSWORD = "smtp-secret"


def _authenticate(
    server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and auth_data.password == SMTP_PASSWORD.encode()
    return AuthResult(success=ok, handled=False)


@pytest.fixture(scope="module")
def smtp_server() -> Iterator[tuple[Controller, RecordingMailserver, Path]]:
    certs = Path(tempfile.mkdtemp(prefix="crmhub-smtp-")) / "tls"
    write_self_signed_cert(certs)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certs / "cert.pem", certs / "key.pem")
    recorder = RecordingMailserver()
    controller = start_mailserver(
        recorder,
        tls_context=context,
        require_starttls=True,
        authenticator=_authenticate,
        auth_required=True,
    )
    yield controller, recorder, certs / "cert.pem"
    controller.stop()


@pytest.fixture(scope="module")
def imap_server() -> Iterator[Dovecot]:
    with start_dovecot() as dovecot:
        yield dovecot


async def _setup(hub: Hub, smtp: Controller, cert: Path, imap: Dovecot, user: MailUser) -> None:
    await add_connector(
        hub,
        "imap",
        "anna-mail",
        {
            "host": imap.host,
            "port": str(imap.imaps_port),
            "username": user.name,
            "ca_file": str(imap.cert_path),
        },
        {"password": user.password},
    )
    await add_connector(
        hub,
        "smtp",
        "anna-send",
        {
            "host": "localhost",
            "port": str(smtp.port),
            "username": "anna@ourco.example",
            "ca_file": str(cert),
            "imap": "anna-mail",
        },
        {"password": SMTP_PASSWORD},
    )


async def test_send_logs_at_once_reports_refusals_and_files_a_copy_in_sent(
    hub: Hub, smtp_server: tuple[Controller, RecordingMailserver, Path], imap_server: Dovecot
) -> None:
    controller, recorder, cert = smtp_server
    imap_server.reset()
    user = imap_server.add_user("anna@ourco.example", "imap-pw")
    await _setup(hub, controller, cert, imap_server, user)
    outcome = await send_mail(
        hub,
        "anna-send",
        Outgoing(
            sender="anna@ourco.example",
            to=["j.ohlsen@elbe-logistik.de", "ghost@nobody.example"],
            cc=["einkauf@elbe-logistik.de"],
            subject="Angebot (Entwurf",
            body="Guten Tag,\nanbei.",
        ),
    )
    assert outcome.accepted == ["j.ohlsen@elbe-logistik.de", "einkauf@elbe-logistik.de"]
    assert list(outcome.refused) == ["ghost@nobody.example"]
    assert outcome.refused["ghost@nobody.example"].startswith("550")
    assert outcome.sent_folder == "Sent" and outcome.sent_copy_error == ""
    (mail_from, rcpts, content) = recorder.received[-1]
    assert mail_from == "anna@ourco.example"
    assert sorted(rcpts) == ["einkauf@elbe-logistik.de", "j.ohlsen@elbe-logistik.de"]
    assert outcome.message_id.encode() in content

    async with hub.sessions() as session:
        row = await session.get(InteractionRow, outcome.interaction_id)
        assert row is not None
        assert (row.direction, row.subject) == ("outbound", "Angebot (Entwurf")

    # The IMAP pass finds the copy in Sent: the same interaction, one more source.
    report = (await sync_all(hub, ["anna-mail"]))[0]
    assert (report.error, report.new, report.duplicates) == ("", 0, 1)
    async with hub.sessions() as session:
        sources = (
            (
                await session.execute(
                    select(SourceRow.connector).where(
                        SourceRow.interaction_id == outcome.interaction_id
                    )
                )
            )
            .scalars()
            .all()
        )
    assert sorted(sources) == ["anna-mail", "anna-send"]


async def test_every_recipient_refused_or_bad_login_is_an_error(
    hub: Hub, smtp_server: tuple[Controller, RecordingMailserver, Path], imap_server: Dovecot
) -> None:
    controller, recorder, cert = smtp_server
    imap_server.reset()
    user = imap_server.add_user("anna@ourco.example", "imap-pw")
    await _setup(hub, controller, cert, imap_server, user)
    before = len(recorder.received)
    with pytest.raises(ConnectorError, match="every recipient was refused"):
        await send_mail(
            hub,
            "anna-send",
            Outgoing(sender="anna@ourco.example", to=["a@nobody.example"], subject="x", body="y"),
        )
    await add_connector(
        hub,
        "smtp",
        "wrong",
        {
            "host": "localhost",
            "port": str(controller.port),
            "username": "anna@ourco.example",
            "ca_file": str(cert),
        },
        {"password": "not-it"},
    )
    with pytest.raises(ConnectorError, match="refused the login") as caught:
        await send_mail(
            hub,
            "wrong",
            Outgoing(sender="anna@ourco.example", to=["b@elbe-logistik.de"], subject="x", body="y"),
        )
    assert "not-it" not in str(caught.value)
    assert len(recorder.received) == before


def test_plaintext_is_refused_by_a_server_that_requires_starttls(
    smtp_server: tuple[Controller, RecordingMailserver, Path],
) -> None:
    import asyncio

    from connectors.smtp import SmtpConnector

    controller, _, _ = smtp_server
    plain = SmtpConnector(
        "plain",
        {
            "host": "localhost",
            "port": str(controller.port),
            "tls": "none",
            "username": "anna@ourco.example",
        },
        {"password": SMTP_PASSWORD},
    )
    with pytest.raises(ConnectorError):
        asyncio.run(
            plain.send(
                compose(
                    Outgoing(
                        sender="anna@ourco.example",
                        to=["x@elbe-logistik.de"],
                        subject="s",
                        body="b",
                    )
                )
            )
        )


def _sockets_to(port: int) -> list[object]:
    """This process's open sockets to `port` (the server's own accepted ones have it local)."""
    return [
        c for c in psutil.Process().net_connections(kind="tcp") if c.raddr and c.raddr.port == port
    ]


async def test_the_socket_is_closed_when_send_and_check_return(
    smtp_server: tuple[Controller, RecordingMailserver, Path],
) -> None:
    """A TLS close only starts the shutdown; a CLI whose loop ends at once leaked the socket."""
    from connectors.smtp import SmtpConnector

    controller, _, cert = smtp_server
    settings = {
        "host": "localhost",
        "port": str(controller.port),
        "username": "anna@ourco.example",
        "ca_file": str(cert),
    }
    sender = SmtpConnector("anna-send", settings, {"password": SMTP_PASSWORD})
    message = compose(
        Outgoing(sender="anna@ourco.example", to=["j@elbe-logistik.de"], subject="s", body="b")
    )
    assert (await sender.send(message)).accepted == ["j@elbe-logistik.de"]
    assert _sockets_to(controller.port) == []
    assert (await sender.check())[0].endswith("ready to send")
    assert _sockets_to(controller.port) == []
    wrong = SmtpConnector("wrong", settings, {"password": "not-it"})
    with pytest.raises(ConnectorError, match="refused the login"):
        await wrong.send(message)
    assert _sockets_to(controller.port) == []


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"to": []}, "to"),
        ({"to": ["not an address"]}, "to"),
        ({"cc": ["a@b.de\nBcc: x@y"]}, "cc"),
        ({"subject": "  "}, "subject"),
        ({"sender": "anna"}, "from"),
        ({"in_reply_to": "no-brackets"}, "in_reply_to"),
    ],
)
def test_bad_requests_name_the_field(changes: dict[str, Any], field: str) -> None:
    values: dict[str, Any] = {
        "sender": "anna@ourco.example",
        "to": ["j@elbe-logistik.de"],
        "subject": "Hallo",
        "body": "Text",
    }
    values.update(changes)
    with pytest.raises(SendError, match=f"^{field}:"):
        compose(Outgoing(**values))


def test_a_reply_carries_the_threads_references_oldest_first() -> None:
    """RFC 5322 3.6.4: References is the parent's References followed by its Message-ID; a
    long thread keeps the newest ids, and nothing but Message-IDs gets into the header."""
    reply = compose(
        Outgoing(
            "anna@ourco.example",
            ["jana@kunde.example"],
            "Re: Angebot",
            "Danke.",
            in_reply_to="<m3@kunde.example>",
            references=["<m1@kunde.example>", "<m2@ourco.example>", "<m3@kunde.example>"],
        )
    )
    assert reply["In-Reply-To"] == "<m3@kunde.example>"
    assert reply["References"] == "<m1@kunde.example> <m2@ourco.example> <m3@kunde.example>"
    long = compose(
        Outgoing(
            "anna@ourco.example", ["jana@kunde.example"], "Re: x", "y",
            in_reply_to="<m99@k.example>",
            references=[f"<m{n}@k.example>" for n in range(99)] + ["bogus\nX-Evil: 1"],
        )
    )  # fmt: skip
    chain = long["References"].split()
    assert len(chain) == 20 and chain[-1] == "<m99@k.example>" and "X-Evil" not in str(long)
