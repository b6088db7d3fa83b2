"""Connector kinds for the sending tests, loaded from their dotted paths like a third-party
kind: `FakeMailSender` stands for a sender whose server files the sent copy itself (Exchange,
Microsoft 365) or, with `files_copy` empty, one that cannot (SMTP); `FakeSentFolder` for a
mailbox that takes the copy (IMAP). Both record what they were given, per connector name, and
the sender runs the steps in `DURING_SEND` while it sends (a sync that commits meanwhile)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from email.message import EmailMessage
from email.utils import getaddresses
from typing import Any, ClassVar

from connectors.base import MailSender, SendResult, SentFolder
from hub.model import Interaction, RawItem

SENDER = "tests.integration.fake_senders:FakeMailSender"
SENT_FOLDER = "tests.integration.fake_senders:FakeSentFolder"
TENANT = "tests.integration.fake_senders:FakeTenantSender"
SENT: defaultdict[str, list[EmailMessage]] = defaultdict(list)
FILED: defaultdict[str, list[bytes]] = defaultdict(list)
DURING_SEND: list[Callable[[], Awaitable[None]]] = []


class FakeMailSender(MailSender):
    kind = SENDER
    options: ClassVar[dict[str, str]] = {
        "files_copy": "the Sent folder the server files each mail in; empty: it files none",
        "imap": "the connector that takes the copy when the server files none",
    }

    async def _send(self, message: EmailMessage) -> SendResult:
        SENT[self.name].append(message)
        for step in DURING_SEND:
            await step()
        headers = [*message.get_all("To", []), *message.get_all("Cc", [])]
        accepted = [address for _, address in getaddresses(headers)]
        return SendResult(accepted, sent_folder=self.settings.get("files_copy", ""))

    async def _fetch(
        self, cursor: dict[str, Any]
    ) -> AsyncIterator[tuple[list[RawItem], dict[str, Any]]]:
        return
        yield  # pragma: no cover - sending only

    def translate(self, raw: RawItem) -> Interaction:
        raise NotImplementedError("a fake sender fetches nothing")


class FakeTenantSender(FakeMailSender):
    """A sender over many mailboxes (an exchange service account, an m365 tenant)."""

    kind = TENANT
    options: ClassVar[dict[str, str]] = {
        **FakeMailSender.options,
        "mailboxes": "comma-separated mailboxes it reads and sends as",
    }

    @classmethod
    def senders(cls, settings: Mapping[str, str]) -> tuple[str, ...]:
        return tuple(m.strip() for m in settings.get("mailboxes", "").split(",") if m.strip())


class FakeSentFolder(SentFolder):
    kind = SENT_FOLDER

    async def _append_sent(self, data: bytes) -> str:
        FILED[self.name].append(data)
        return "Gesendet"

    async def _fetch(
        self, cursor: dict[str, Any]
    ) -> AsyncIterator[tuple[list[RawItem], dict[str, Any]]]:
        return
        yield  # pragma: no cover - files copies only

    def translate(self, raw: RawItem) -> Interaction:
        raise NotImplementedError("a fake sent folder fetches nothing")
