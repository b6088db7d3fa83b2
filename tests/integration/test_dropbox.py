"""The SMTP dropbox in a real aiosmtpd, fed by a real SMTP client (aiosmtplib)."""

from __future__ import annotations

import asyncio
import hashlib
import re
import socket
import ssl
import tempfile
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path
from typing import Any

import aiosmtplib
import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import func, select

from config.settings import ConfigError, Settings
from hub.bootstrap import Hub, build_hub
from hub.dropbox import DropboxHandler, serve_dropbox, smtp_parameters
from storage.tables import InteractionRow, ParticipantRow, QuarantineRow, SourceRow
from storage.users import add_user
from tests.integration.dovecot import write_self_signed_cert
from tests.unit.test_forwarded import CUSTOMER, GMAIL_EN, OUTLOOK_DE, forward

DROPBOX = "log@crm.example"
PASSWORD = "dropbox-login-pw"

Dropbox = Callable[..., int]


@pytest.fixture(scope="module")
def certs() -> Path:
    directory = Path(tempfile.mkdtemp(prefix="crmhub-dropbox-")) / "tls"
    write_self_signed_cert(directory)
    return directory


@pytest.fixture
def dropbox(settings: Settings, hub: Hub, certs: Path) -> Iterator[Dropbox]:
    """``dropbox(**setting_overrides)`` starts a dropbox on a free loopback port; returns it.

    The dropbox runs in the Controller's own thread and event loop, so it gets a hub of its
    own on the same database: an async engine must not be shared between event loops.
    """
    started: list[tuple[Controller, Hub]] = []

    def start(**overrides: Any) -> int:
        values = {
            "dropbox_addresses": [DROPBOX],
            "dropbox_tls_cert": str(certs / "cert.pem"),
            "dropbox_tls_key": str(certs / "key.pem"),
            **overrides,
        }
        own_hub = build_hub(settings.model_copy(update=values), migrate=False)
        with socket.socket() as probe:  # aiosmtpd checks readiness by connecting: no port 0
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        controller = Controller(
            DropboxHandler(own_hub),
            hostname="127.0.0.1",
            port=port,
            server_hostname="dropbox.test",
            **smtp_parameters(own_hub.settings),
        )
        controller.start()
        started.append((controller, own_hub))
        return port

    yield start
    for controller, own_hub in started:
        asyncio.run_coroutine_threadsafe(own_hub.close(), controller.loop).result(10)
        controller.stop()


def client(port: int, **options: Any) -> aiosmtplib.SMTP:
    return aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False, **options)


async def send(port: int, data: bytes, sender: str = "anna@ourco.example") -> str:
    async with client(port) as smtp:
        _, reply = await smtp.sendmail(sender, [DROPBOX], data)
    return reply


def interaction_id(reply: str) -> int:
    found = re.search(r"Logged as interaction (\d+)", reply)
    assert found, reply
    return int(found.group(1))


async def stored(hub: Hub, reply: str) -> tuple[InteractionRow, list[tuple[str, str]]]:
    async with hub.sessions() as session:
        row = await session.get(InteractionRow, interaction_id(reply))
        assert row is not None
        people = (
            await session.execute(
                select(ParticipantRow.role, ParticipantRow.address).where(
                    ParticipantRow.interaction_id == row.id
                )
            )
        ).all()
    return row, [(role, address) for role, address in people]


def bcc_copy() -> bytes:
    message = EmailMessage(policy=SMTP)
    message["From"] = "Anna Schmidt <anna@ourco.example>"
    message["To"] = f"Jens Ohlsen <{CUSTOMER}>"
    message["Subject"] = "Ihr Angebot Lagerfläche"
    message["Date"] = "Tue, 09 Jan 2024 10:15:00 +0100"
    message["Message-ID"] = "<bcc-1@ourco.example>"
    message.set_content("Guten Tag Herr Ohlsen,\nanbei unser Angebot.\nAnna Schmidt")
    return message.as_bytes()


def attached_forward() -> bytes:
    inner = EmailMessage(policy=SMTP)
    inner["From"] = f"Jens Ohlsen <{CUSTOMER}>"
    inner["To"] = "anna@ourco.example"
    inner["Subject"] = "Angebot Lagerfläche"
    inner["Date"] = "Mon, 08 Jan 2024 09:00:00 +0100"
    inner["Message-ID"] = "<orig-42@elbe-logistik.de>"
    inner.set_content("Guten Tag,\nwir brauchen 400 Palettenplätze.")
    outer = EmailMessage(policy=SMTP)
    outer["From"] = "anna@ourco.example"
    outer["To"] = DROPBOX
    outer["Subject"] = "WG: Angebot Lagerfläche"
    outer["Date"] = "Tue, 09 Jan 2024 10:15:00 +0100"
    outer.set_content("Zur Info")
    outer.add_attachment(inner)
    return outer.as_bytes()


async def test_bcc_copy_lands_on_the_timeline_as_sent(hub: Hub, dropbox: Dropbox) -> None:
    data = bcc_copy()
    reply = await send(dropbox(), data)
    row, people = await stored(hub, reply)
    assert (row.direction, row.subject) == ("outbound", "Ihr Angebot Lagerfläche")
    assert ("to", CUSTOMER) in people
    async with hub.sessions() as session:
        source = (
            await session.execute(select(SourceRow).where(SourceRow.interaction_id == row.id))
        ).scalar_one()
    assert source.connector == "dropbox"
    assert source.external_id == f"sha256:{hashlib.sha256(data).hexdigest()}"


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(forward(OUTLOOK_DE), id="outlook-de-inline"),
        pytest.param(forward(GMAIL_EN, subject="Fwd: Angebot Lagerfläche"), id="gmail-en-inline"),
        pytest.param(attached_forward(), id="attached-rfc822"),
    ],
)
async def test_forward_is_logged_as_the_customers_mail(
    hub: Hub, dropbox: Dropbox, data: bytes
) -> None:
    reply = await send(dropbox(), data)
    row, people = await stored(hub, reply)
    assert (row.direction, row.subject) == ("inbound", "Angebot Lagerfläche")
    assert [address for role, address in people if role == "from"] == [CUSTOMER]


async def test_external_sender_is_refused(hub: Hub, dropbox: Dropbox) -> None:
    with pytest.raises(aiosmtplib.SMTPSenderRefused) as caught:
        await send(dropbox(), bcc_copy(), sender=CUSTOMER)
    assert caught.value.code == 550
    assert "not a staff address" in caught.value.message
    await assert_nothing_stored(hub)


async def test_recipient_that_is_not_a_dropbox_address_is_refused(
    hub: Hub, dropbox: Dropbox
) -> None:
    async with client(dropbox()) as smtp:
        with pytest.raises(aiosmtplib.SMTPRecipientsRefused) as caught:
            await smtp.sendmail("anna@ourco.example", ["anna@ourco.example"], bcc_copy())
    (refusal,) = caught.value.recipients
    assert refusal.code == 550 and "not a dropbox address" in refusal.message
    await assert_nothing_stored(hub)


async def test_outside_the_dropbox_networks_only_a_logged_in_user_over_tls_is_accepted(
    hub: Hub, dropbox: Dropbox, certs: Path
) -> None:
    async with hub.sessions() as session, session.begin():
        await add_user(session, "anna@ourco.example", "sales", PASSWORD)
    port = dropbox(dropbox_networks=["10.0.0.0/8"])
    with pytest.raises(aiosmtplib.SMTPSenderRefused) as refused:
        await send(port, bcc_copy())
    assert refused.value.code == 530
    async with client(port) as smtp:
        with pytest.raises(aiosmtplib.SMTPAuthenticationError) as plaintext:
            await smtp.login("anna@ourco.example", PASSWORD)
    assert plaintext.value.code == 538
    tls = ssl.create_default_context(cafile=str(certs / "cert.pem"))
    async with client(port, tls_context=tls) as smtp:
        await smtp.starttls()
        with pytest.raises(aiosmtplib.SMTPAuthenticationError) as wrong:
            await smtp.login("anna@ourco.example", "not-the-password")
        assert wrong.value.code == 535
    await assert_nothing_stored(hub)
    for method in ("plain", "login"):
        async with client(port, tls_context=tls) as smtp:
            await smtp.starttls()
            await smtp.ehlo()
            assert method in smtp.supported_auth_methods
            login = smtp.auth_plain if method == "plain" else smtp.auth_login
            await login("anna@ourco.example", PASSWORD)
            _, reply = await smtp.sendmail("anna@ourco.example", [DROPBOX], bcc_copy())
        row, _ = await stored(hub, reply)
        assert row.direction == "outbound"


async def test_the_same_mail_sent_twice_is_one_interaction(hub: Hub, dropbox: Dropbox) -> None:
    port = dropbox()
    data = forward(OUTLOOK_DE)
    first, second = await send(port, data), await send(port, data)
    assert interaction_id(first) == interaction_id(second)
    async with hub.sessions() as session:
        count = (await session.execute(select(func.count(InteractionRow.id)))).scalar_one()
    assert count == 1


async def test_unreadable_mail_is_quarantined_and_still_accepted(
    hub: Hub, dropbox: Dropbox
) -> None:
    data = b"X-Mailer: broken script\r\n\r\njust some text, no sender, no date\r\n"
    reply = await send(dropbox(), data)
    assert "Quarantined for review" in reply
    async with hub.sessions() as session:
        row = (await session.execute(select(QuarantineRow))).scalar_one()
    assert row.connector == "dropbox"
    assert row.external_id == f"sha256:{hashlib.sha256(data).hexdigest()}"


def test_dropbox_refuses_to_start_without_addresses(settings: Settings, hub: Hub) -> None:
    assert settings.dropbox_addresses == []
    with pytest.raises(ConfigError, match="dropbox_addresses"):
        serve_dropbox(hub, "127.0.0.1", 0)


async def assert_nothing_stored(hub: Hub) -> None:
    async with hub.sessions() as session:
        count = (await session.execute(select(func.count(InteractionRow.id)))).scalar_one()
    assert count == 0
