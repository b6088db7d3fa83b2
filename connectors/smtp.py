"""Sending mail over SMTP submission (aiosmtplib); nothing to fetch.

The hub sends through a configured `smtp` connector so that credentials and TLS policy live in
one place, encrypted like every other connector secret. Refusals are reported per recipient:
a server that accepts some recipients and rejects others has still sent the mail.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import AsyncIterator
from contextlib import suppress
from email.message import EmailMessage
from email.utils import getaddresses
from typing import Any, ClassVar, cast

import aiosmtplib

from connectors.base import ConfigurationError, ConnectorError, MailSender, SendResult
from hub.model import Interaction, RawItem

log = logging.getLogger(__name__)
CLOSE_WAIT = 2.0  # seconds for a TLS shutdown before the socket is cut


class SmtpConnector(MailSender):
    kind = "smtp"
    options: ClassVar[dict[str, str]] = {
        "host": "the SMTP submission server's name",
        "port": "port (default 465 with tls=ssl, 587 with tls=starttls, 25 with tls=none)",
        "username": "login name; empty for a relay that needs none",
        "tls": "starttls (default), ssl (implicit TLS), or none (plaintext: trusted net only)",
        "ca_file": "PEM file of the CA that signed the server certificate (default: system CAs)",
        "imap": "name of an imap connector whose Sent folder gets a copy of each sent mail",
        "timeout": "seconds to wait for any server answer (default 60)",
    }
    required: ClassVar[tuple[str, ...]] = ("host",)
    secret_options: ClassVar[dict[str, str]] = {"password": "the login password, with a username"}

    @classmethod
    def validate_settings(cls, settings: Any) -> None:
        super().validate_settings(settings)
        tls = settings.get("tls", "starttls")
        if tls not in ("ssl", "starttls", "none"):
            raise ConfigurationError(f"smtp: tls={tls!r}; use starttls, ssl or none")
        cls.require_numbers(settings, "port", "timeout")

    async def _fetch(
        self, cursor: dict[str, Any]
    ) -> AsyncIterator[tuple[list[RawItem], dict[str, Any]]]:
        return
        yield  # pragma: no cover - sending only

    def translate(self, raw: RawItem) -> Interaction:
        raise NotImplementedError("smtp connectors send; they fetch nothing")

    def _client(self) -> aiosmtplib.SMTP:
        tls = self.settings.get("tls", "starttls")
        port = int(self.settings.get("port") or {"ssl": 465, "starttls": 587}.get(tls, 25))
        context = None
        if tls != "none":
            context = ssl.create_default_context(cafile=self.settings.get("ca_file") or None)
        else:
            log.warning(
                "SMTP to %s without TLS: mail and password cross the network in clear",
                self.settings["host"],
            )
        return aiosmtplib.SMTP(
            hostname=self.settings["host"],
            port=port,
            use_tls=tls == "ssl",
            start_tls=True if tls == "starttls" else False,
            tls_context=context,
            timeout=float(self.settings.get("timeout") or 60),
        )

    async def _login(self, client: aiosmtplib.SMTP) -> None:
        await client.connect()
        username = self.settings.get("username")
        if username:
            password = self.secrets.get("password", "")
            if not password:
                raise ConfigurationError(
                    f"{self.name}: no password stored; add the connector again with "
                    "--secret password=ENV_VAR"
                )
            await client.login(username, password)

    async def _send(self, message: EmailMessage) -> SendResult:
        recipients = [
            address
            for header in ("To", "Cc", "Bcc")
            for address in _addresses(message.get_all(header) or [])
        ]
        client = self._client()
        try:
            await self._login(client)
            bcc = message.get_all("Bcc")
            del message["Bcc"]  # never transmitted in the headers
            errors, _ = await client.send_message(message, recipients=recipients)
            if bcc:
                message["Bcc"] = ", ".join(bcc)
        finally:
            await _disconnect(client, polite=True)
        refused = {address: f"{r.code} {r.message}" for address, r in errors.items()}
        return SendResult([r for r in recipients if r not in refused], refused)

    async def _check(self) -> list[str]:
        client = self._client()
        try:
            await self._login(client)
            await client.noop()
        finally:
            await _disconnect(client, polite=False)
        return [f"{self.name}: connected to {self.settings['host']}, ready to send"]

    def readable(self, error: Exception) -> ConnectorError:
        if isinstance(error, aiosmtplib.SMTPRecipientsRefused):
            refused = {r.recipient: f"{r.code} {r.message}" for r in error.recipients}
            return ConnectorError(f"{self.name}: every recipient was refused: {refused}")
        if isinstance(error, aiosmtplib.SMTPAuthenticationError):
            return ConnectorError(
                f"{self.name}: {self.settings['host']} refused the login of "
                f"{self.settings.get('username')!r} ({error.code} {error.message}): check the "
                "username and the password secret"
            )
        if isinstance(error, aiosmtplib.SMTPException):
            return ConnectorError(f"{self.name}: {error}")
        return super().readable(error)


async def _disconnect(client: aiosmtplib.SMTP, *, polite: bool) -> None:
    """QUIT (when `polite`) or close, then wait until the socket is really closed.

    Closing a TLS connection only starts the TLS shutdown, which needs the event loop and the
    server's answer: a caller whose loop ends at once (the CLI, a test) would leave the socket
    open and garbage-collected later (ResourceWarning, seen under load in CI).
    """
    protocol = client.protocol
    if client.is_connected and polite:
        with suppress(aiosmtplib.SMTPException, OSError):
            await client.quit()
    client.close()  # nothing left to do after a QUIT the server answered
    deadline = time.monotonic() + CLOSE_WAIT
    while protocol is not None and protocol.transport is not None:
        if time.monotonic() > deadline:
            # aiosmtplib declares BaseTransport, but connection_made casts it to a Transport
            cast(asyncio.Transport, protocol.transport).abort()
            return
        await asyncio.sleep(0.005)


def _addresses(values: list[str]) -> list[str]:
    return [address for _, address in getaddresses([str(v) for v in values]) if address]
