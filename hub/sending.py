"""Sending a mail to a customer from crmhub: send, log at once, file a copy in Sent.

Sending goes through any connector whose class is a `connectors.base.MailSender` (smtp,
exchange, m365, or a third-party kind), built by the hub's one factory (`Hub.connector`). The
mail is on the timeline the moment the server accepted it, not after the next pass over the
mailbox; when that pass later sees the copy in Sent, storage recognises the Message-ID and adds
only a source. A sender whose server files the copy itself says where (`SendResult.sent_folder`);
for one that cannot (SMTP), the copy goes through the `SentFolder` connector (imap) its `imap`
setting names. A failure to file the copy does not unsend the mail, so it is reported, not raised.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid

from sqlalchemy import select

from connectors.base import ConfigurationError, ConnectorError, MailSender, SentFolder
from connectors.mail import translate_message
from connectors.registry import connector_class
from hub.bootstrap import Hub
from hub.deciding import decide_batch
from hub.model import RawItem, Translated
from hub.policy import Viewer, may_send_through
from hub.screening import load_screen, screen_items
from matching.identities import email_domain, normalize_email
from storage.connectors_state import connector_row, kinds_and_settings
from storage.ingest import Provenance
from storage.tables import ConnectorRow, InteractionRow

log = logging.getLogger(__name__)
MAX_RECIPIENTS = 100
MAX_BODY = 1_000_000
MAX_REFERENCES = 20  # of a long thread, the newest Message-IDs: enough to thread, a short header


class SendError(ValueError):
    """The request cannot be sent as it stands; the message says what to change."""


class NoOwnMailConnector(ConfigurationError):
    """The user owns no connector to send through: every role sends through its own mailbox
    only."""


@dataclass(frozen=True)
class Outgoing:
    sender: str
    to: list[str]
    subject: str
    body: str
    cc: list[str] = field(default_factory=list)
    in_reply_to: str = ""
    # The thread so far (the replied-to mail's References, then its Message-ID): RFC 5322
    # 3.6.4, so that every client, not only those reading In-Reply-To, threads the reply.
    references: list[str] = field(default_factory=list)


@dataclass
class SendOutcome:
    """`interaction_id` is None, and `not_logged` says why, when the mail was sent but must
    not be stored (every recipient is on the blocklist: hub.screening)."""

    interaction_id: int | None
    message_id: str
    accepted: list[str]
    refused: dict[str, str]
    sent_folder: str = ""
    sent_copy_error: str = ""
    not_logged: str = ""

    def as_json(self) -> dict[str, object]:
        return {
            "interaction_id": self.interaction_id,
            "message_id": self.message_id,
            "accepted": self.accepted,
            "refused": self.refused,
            "sent_folder": self.sent_folder,
            "sent_copy_error": self.sent_copy_error,
            "not_logged": self.not_logged,
        }


def compose(outgoing: Outgoing) -> EmailMessage:
    """Validate and build the message; SendError names the field that is wrong."""
    sender = normalize_email(outgoing.sender)
    if sender is None:
        raise SendError(f"from: {outgoing.sender!r} is not an email address")
    recipients: dict[str, list[str]] = {"to": [], "cc": []}
    for name, values in (("to", outgoing.to), ("cc", outgoing.cc)):
        for value in values:
            if normalize_email(value) is None or "\n" in value or "\r" in value:
                raise SendError(f"{name}: {value!r} is not an email address")
            recipients[name].append(value.strip())
    if not recipients["to"]:
        raise SendError("to: name at least one recipient")
    if len(recipients["to"]) + len(recipients["cc"]) > MAX_RECIPIENTS:
        raise SendError(f"to/cc: at most {MAX_RECIPIENTS} recipients")
    subject = " ".join(outgoing.subject.split())
    if not subject:
        raise SendError("subject: must not be empty")
    if len(outgoing.body) > MAX_BODY:
        raise SendError(f"body: at most {MAX_BODY} characters")
    message = EmailMessage(policy=SMTP)
    message["From"] = outgoing.sender.strip()
    message["To"] = ", ".join(recipients["to"])
    if recipients["cc"]:
        message["Cc"] = ", ".join(recipients["cc"])
    message["Subject"] = subject
    message["Date"] = format_datetime(datetime.now(UTC))
    message["Message-ID"] = make_msgid(domain=email_domain(sender))
    if outgoing.in_reply_to:
        if not outgoing.in_reply_to.startswith("<") or "\n" in outgoing.in_reply_to:
            raise SendError("in_reply_to: expected a Message-ID such as <abc@example.com>")
        message["In-Reply-To"] = outgoing.in_reply_to
        chain = [r for r in outgoing.references if r.startswith("<") and "\n" not in r]
        if outgoing.in_reply_to not in chain:
            chain.append(outgoing.in_reply_to)
        message["References"] = " ".join(chain[-MAX_REFERENCES:])
    message.set_content(outgoing.body)
    return message


async def send_mail(hub: Hub, connector_name: str, outgoing: Outgoing) -> SendOutcome:
    """Send through the MailSender connector `connector_name`, log the mail at once, and see
    that a copy is in the mailbox's Sent folder. Raises SendError for a bad request,
    ConfigurationError when the connector cannot send, ConnectorError when nobody got the mail.
    """
    message = compose(outgoing)
    row, sender = await _mail_sender(hub, connector_name)
    _sending_mailbox(sender, row.settings, outgoing.sender)  # refused before anything is sent
    result = await sender.send(message)
    raw = message.as_bytes()
    message_id = str(message["Message-ID"])
    item = Translated(RawItem(message_id, raw), translate_message(raw))
    owner = _sending_mailbox(sender, row.settings, outgoing.sender)
    index = await hub.identity_index()
    kept, refused = screen_items(await load_screen(hub), [item], owner, index)
    interaction_id = None
    if kept:  # sent either way; a mail to blocklisted parties only is not logged
        stored, _ = await decide_batch(hub, kept, index)
        await hub.store.ingest(
            row.name,
            stored,
            [],
            None,  # the connector's sync (exchange, m365 also fetch) keeps its own cursor
            Provenance(owner, row.settings.get("visibility", "full")),
        )
        async with hub.sessions() as session:
            interaction_id = (
                await session.execute(
                    select(InteractionRow.id).where(
                        InteractionRow.dedupe_key == f"mid:{message_id}"
                    )
                )
            ).scalar_one()
    outcome = SendOutcome(interaction_id, message_id, result.accepted, result.refused)
    outcome.not_logged = refused[0].reason if refused else ""
    outcome.sent_folder = result.sent_folder
    if not result.sent_folder and (folder_name := row.settings.get("imap")):
        try:
            folder = await _sent_folder(hub, folder_name)
            outcome.sent_folder = await folder.append_sent(raw)
        except (ConnectorError, ValueError) as e:
            outcome.sent_copy_error = str(e)
            log.warning("sent %s, but could not file it in Sent: %s", message_id, e)
    return outcome


def _sending_mailbox(sender: MailSender, settings: dict[str, str], address: str) -> str:
    """The connector's mailbox that `address` sends as: whose Sent the copy goes to and who
    owns the logged mail. A connector of one mailbox sends as that one (an smtp relay may
    accept another From); one of many (an exchange service account, an m365 tenant) sends
    only as a mailbox it reads."""
    mailboxes = sender.senders(settings)
    wanted = normalize_email(address)
    for mailbox in mailboxes:
        if normalize_email(mailbox) == wanted:
            return mailbox
    if len(mailboxes) > 1:
        raise SendError(f"sender: {address!r} is not a mailbox connector {sender.name!r} reads")
    return sender.mailbox_owner(settings)


async def _row(hub: Hub, name: str) -> ConnectorRow | None:
    async with hub.sessions() as session:
        return await connector_row(session, name)


async def _mail_sender(hub: Hub, name: str) -> tuple[ConnectorRow, MailSender]:
    row = await _row(hub, name)
    if row is None:
        raise ConfigurationError(f"no connector named {name!r} to send through")
    connector = hub.connector(row)
    if not isinstance(connector, MailSender):
        raise ConfigurationError(
            f"connector {name!r} ({row.kind}) cannot send mail; name an smtp, exchange or m365 "
            "connector"
        )
    return row, connector


async def _sent_folder(hub: Hub, name: str) -> SentFolder:
    """The connector that files copies of sent mail, named by a sender's `imap` setting."""
    row = await _row(hub, name)
    if row is None:
        raise ConfigurationError(f"no imap connector named {name!r}")
    connector = hub.connector(row)
    if not isinstance(connector, SentFolder):
        raise ConfigurationError(
            f"connector {name!r} ({row.kind}) cannot file a copy in Sent; name an imap connector"
        )
    return connector


def _sender_class(kind: str) -> type[MailSender] | None:
    """The kind's class when it sends mail; None for one that does not, or cannot be loaded
    (the connector status page reports that, with what to fix)."""
    try:
        cls = connector_class(kind)
    except ConfigurationError:
        return None
    return cls if issubclass(cls, MailSender) else None


async def own_mail_connectors(hub: Hub, viewer: Viewer) -> list[str]:
    """The connectors `viewer` may send through: those of a MailSender kind (smtp, exchange,
    m365, ...) whose mailbox is theirs."""
    async with hub.reads() as session:
        rows = await kinds_and_settings(session)
    return sorted(
        name
        for name, kind, settings in rows
        if (cls := _sender_class(kind)) is not None
        and any(may_send_through(viewer, mailbox) for mailbox in cls.senders(settings))
    )


async def sending_connector_for(hub: Hub, viewer: Viewer, name: str | None) -> str:
    """The named connector to send through, or the only one `viewer` owns.

    A connector of somebody else is answered exactly like one that does not exist: the answer
    must not tell whether a name exists, nor whose mailbox it is.
    """
    return pick_own(
        await own_mail_connectors(hub, viewer),
        name,
        SendError(f"connector: you have no connector to send through named {(name or '')[:100]!r}"),
        NoOwnMailConnector(
            "you have no mail connector of your own to send through; IT adds one with "
            f"`crmhub connectors add smtp NAME --set owner={viewer.email} --set host=... "
            "--secret password=ENV_VAR` (or an exchange or m365 connector for your mailbox)"
        ),
        lambda names: SendError(f"connector: name one of {names}"),
    )


def pick_own(
    mine: list[str],
    name: str | None,
    unknown: Exception,
    none: Exception,
    several: Callable[[str], Exception],
) -> str:
    """`name` when it is one of the user's own connectors `mine`, else the only one they own.

    A connector of somebody else is refused exactly like one that does not exist (`unknown`):
    the answer must not tell whether a name exists, nor whose it is. Shared by sending and
    booking, which pick a user's own mail and calendar connectors alike."""
    if name:
        if name in mine:
            return name
        raise unknown
    if len(mine) == 1:
        return mine[0]
    if not mine:
        raise none
    raise several(", ".join(mine))
