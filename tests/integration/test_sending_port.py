"""Sending is a port: any MailSender kind sends, its own Sent copy is reported as it is, and a
sender that files none gets its copy through the SentFolder connector its `imap` setting names.

The kinds are test-only ones loaded from their dotted paths (tests.integration.fake_senders),
as a third-party kind would be; SQLite, or PostgreSQL in CI.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest
from sqlalchemy import select, update

from connectors.base import ConfigurationError
from hub.admin import add_connector
from hub.bootstrap import Hub
from hub.policy import Role, Viewer
from hub.sending import (
    NoOwnMailConnector,
    Outgoing,
    SendError,
    own_mail_connectors,
    send_mail,
    sending_connector_for,
)
from storage.tables import ConnectorRow, SourceRow
from tests.integration.fake_senders import (
    DURING_SEND,
    FILED,
    SENDER,
    SENT,
    SENT_FOLDER,
    TENANT,
)

ANNA = Viewer("anna@ourco.example", Role.SALES)
BERND = Viewer("bernd@ourco.example", Role.MANAGER)
MAIL = Outgoing(
    sender="anna@ourco.example",
    to=["j.ohlsen@elbe-logistik.de"],
    cc=["einkauf@elbe-logistik.de"],
    subject="Angebot Lager Nord",
    body="Guten Tag,\nanbei das Angebot.",
)


@pytest.fixture(autouse=True)
def fresh_records() -> Iterator[None]:
    for records in (SENT, FILED, DURING_SEND):
        records.clear()
    yield
    for records in (SENT, FILED, DURING_SEND):
        records.clear()


async def _connectors(hub: Hub, **sender: str) -> None:
    """Anna's mailbox (a SentFolder), her sender, an mbox file of hers that cannot send, and
    Bernd's sender."""
    await add_connector(hub, SENT_FOLDER, "anna-box", {"owner": ANNA.email}, {})
    await add_connector(
        hub, SENDER, "anna-out", {"owner": ANNA.email, "imap": "anna-box", **sender}, {}
    )
    await add_connector(hub, "mbox", "anna-archive", {"path": "/nowhere", "owner": ANNA.email}, {})
    await add_connector(hub, SENDER, "bernd-out", {"owner": BERND.email}, {})


async def _source_owners(hub: Hub, interaction_id: int | None) -> list[tuple[str, str]]:
    async with hub.sessions() as session:
        rows = await session.execute(
            select(SourceRow.connector, SourceRow.owner).where(
                SourceRow.interaction_id == interaction_id
            )
        )
        return [(connector, owner) for connector, owner in rows]


async def test_a_sender_that_files_its_own_copy_is_used_and_no_imap_copy_is_made(
    hub: Hub,
) -> None:
    await _connectors(hub, files_copy="Sent Items")
    assert await own_mail_connectors(hub, ANNA) == ["anna-out"]
    assert await own_mail_connectors(hub, BERND) == ["bernd-out"]
    assert await sending_connector_for(hub, ANNA, None) == "anna-out"

    async def sync_commits_meanwhile() -> None:  # an exchange or m365 sender also syncs
        async with hub.sessions() as session, session.begin():
            await session.execute(
                update(ConnectorRow)
                .where(ConnectorRow.name == "anna-out")
                .values(cursor={"sync_state": "after-batch-7"})
            )

    DURING_SEND.append(sync_commits_meanwhile)
    outcome = await send_mail(hub, await sending_connector_for(hub, ANNA, None), MAIL)

    assert [str(m["Message-ID"]) for m in SENT["anna-out"]] == [outcome.message_id]
    assert "bernd-out" not in SENT
    assert outcome.accepted == ["j.ohlsen@elbe-logistik.de", "einkauf@elbe-logistik.de"]
    assert (outcome.sent_folder, outcome.sent_copy_error) == ("Sent Items", "")
    assert FILED["anna-box"] == [], "the server filed the copy: the hub must not file another"
    assert await _source_owners(hub, outcome.interaction_id) == [("anna-out", ANNA.email)]
    async with hub.sessions() as session:
        cursor = await session.scalar(
            select(ConnectorRow.cursor).where(ConnectorRow.name == "anna-out")
        )
    assert cursor == {"sync_state": "after-batch-7"}, "logging a sent mail moved the cursor"


async def test_a_sender_that_files_no_copy_has_it_filed_through_its_imap_connector(
    hub: Hub,
) -> None:
    await _connectors(hub)
    outcome = await send_mail(hub, "anna-out", MAIL)
    assert (outcome.sent_folder, outcome.sent_copy_error) == ("Gesendet", "")
    assert len(FILED["anna-box"]) == 1
    assert outcome.message_id.encode() in FILED["anna-box"][0]


async def test_only_own_senders_are_offered_and_others_answer_like_missing_ones(
    hub: Hub,
) -> None:
    with pytest.raises(NoOwnMailConnector, match="crmhub connectors add smtp"):
        await sending_connector_for(hub, ANNA, None)
    await _connectors(hub)
    await add_connector(hub, SENDER, "anna-second", {"owner": ANNA.email}, {})
    for foreign in ("bernd-out", "no-such", "anna-archive", "anna-box"):
        with pytest.raises(SendError) as caught:
            await sending_connector_for(hub, ANNA, foreign)
        assert str(caught.value) == (
            f"connector: you have no connector to send through named {foreign!r}"
        )
    with pytest.raises(SendError, match=r"^connector: name one of anna-out, anna-second$"):
        await sending_connector_for(hub, ANNA, None)
    assert await sending_connector_for(hub, ANNA, "anna-second") == "anna-second"


async def test_a_connector_that_cannot_send_or_file_a_copy_is_named(hub: Hub) -> None:
    await _connectors(hub)
    with pytest.raises(ConfigurationError, match=r"'anna-archive' \(mbox\) cannot send mail"):
        await send_mail(hub, "anna-archive", MAIL)
    with pytest.raises(ConfigurationError, match="no connector named 'gone' to send through"):
        await send_mail(hub, "gone", MAIL)
    assert SENT == {}

    await add_connector(
        hub, SENDER, "to-archive", {"owner": ANNA.email, "imap": "anna-archive"}, {}
    )
    outcome = await send_mail(hub, "to-archive", MAIL)
    assert len(SENT["to-archive"]) == 1, "the mail is sent even when its copy cannot be filed"
    assert outcome.sent_folder == ""
    assert "'anna-archive' (mbox) cannot file a copy in Sent" in outcome.sent_copy_error


async def test_a_sender_over_many_mailboxes_lets_each_owner_send_as_their_own(hub: Hub) -> None:
    """One service account reads Anna's and Bernd's mailboxes: each may send through it, as
    their own mailbox only, and the logged mail is the sender's; a third user may not."""
    mailboxes = f"{ANNA.email},{BERND.email}"
    await add_connector(
        hub, TENANT, "tenant", {"mailboxes": mailboxes, "files_copy": "Sent Items"}, {}
    )
    carla = Viewer("carla@ourco.example", Role.SALES)
    assert await own_mail_connectors(hub, ANNA) == ["tenant"]
    assert await own_mail_connectors(hub, BERND) == ["tenant"]
    assert await own_mail_connectors(hub, carla) == []

    outcome = await send_mail(hub, "tenant", MAIL)
    assert SENT["tenant"][0]["From"] == ANNA.email
    assert await _source_owners(hub, outcome.interaction_id) == [("tenant", ANNA.email)]

    with pytest.raises(SendError, match="not a mailbox connector 'tenant' reads"):
        await send_mail(hub, "tenant", replace(MAIL, sender=carla.email))
    assert len(SENT["tenant"]) == 1, "refused before anything was sent"
