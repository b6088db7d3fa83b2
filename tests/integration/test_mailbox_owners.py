"""A connector that reads many mailboxes (Exchange impersonation, a Microsoft 365 tenant) names
each batch's mailbox in its raws' `owner`: the pipeline screens, creates contacts and records
ownership per mailbox, not per connector. SQLite, or PostgreSQL in CI."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from hub.admin import add_connector, import_directory
from hub.blocklist import add_block
from hub.bootstrap import Hub
from hub.pipeline import sync_all
from hub.policy import Role, Viewer, read_scope
from storage import queries
from storage.tables import ContactEmailRow, SourceRow
from tests.integration.mailboxes_connector import KIND

ANNA, BERND = "anna@ourco.example", "bernd@ourco.example"
DIRECTORY = "account,domains,contact,emails,phones,owner\nElbe Logistik GmbH,elbe-logistik.de,,,,\n"


def _mail(message_id: str, sender: str, to: str) -> str:
    return (
        f"From: {sender}\nTo: {to}\nSubject: Mail {message_id}\n"
        f"Date: Mon, 8 Jan 2024 09:00:00 +0100\nMessage-ID: <{message_id}@test>\n\nText.\n"
    )


def _mailboxes(root: Path) -> None:
    """Anna: an unknown sender, and one she blocked. Bernd: his mail to a new address at a
    customer, the sender Anna blocked (not blocked for him), an unknown sender."""
    mail = {
        ANNA: [
            _mail("a-unknown", "wer@irgendwo-gmbh.de", ANNA),
            _mail("a-blocked", "angebot@werbung-spam.de", ANNA),
        ],
        BERND: [
            _mail("b-written", BERND, "neu@elbe-logistik.de"),
            _mail("b-blocked-for-anna", "angebot@werbung-spam.de", BERND),
            _mail("b-unknown", "jemand@anderswo-ag.de", BERND),
        ],
    }
    for owner, texts in mail.items():
        (root / owner).mkdir(parents=True)
        for n, text in enumerate(texts):
            (root / owner / f"{n}.eml").write_text(text, encoding="utf-8")


async def _visible(hub: Hub, email: str) -> set[str]:
    async with hub.reads() as session:
        page = await queries.list_interactions(
            session, read_scope(Viewer(email, Role.SALES)), connector="tenant", limit=100
        )
    return {row.message_id for row in page.items}


async def test_each_batch_belongs_to_its_mailboxs_owner(hub: Hub, tmp_path: Path) -> None:
    directory = tmp_path / "directory.csv"
    directory.write_text(DIRECTORY, encoding="utf-8")
    await import_directory(hub, directory)
    await add_block(hub, "werbung-spam.de", ANNA, ANNA)
    _mailboxes(tmp_path / "tenant")
    # No owner setting: the service account's connector owns nothing; its mailboxes do.
    await add_connector(
        hub, KIND, "tenant", {"path": str(tmp_path / "tenant"), "create_contacts": "written-to"}, {}
    )

    (report,) = await sync_all(hub, ["tenant"])

    assert (report.error, report.fetched, report.new, report.skipped) == ("", 5, 4, 1)
    assert report.contacts_created == 1, "Bernd's own mail creates the contact he wrote to"
    async with hub.sessions() as session:
        owners = dict((await session.execute(select(SourceRow.external_id, SourceRow.owner))).all())
        created = (await session.execute(select(ContactEmailRow.address))).scalars().all()
    assert owners == {
        f"{ANNA}/0.eml": ANNA,
        f"{BERND}/0.eml": BERND,
        f"{BERND}/1.eml": BERND,
        f"{BERND}/2.eml": BERND,
    }
    assert list(created) == ["neu@elbe-logistik.de"]

    # Unattributed items are their owner's alone; attributed ones every sales user sees.
    assert await _visible(hub, ANNA) == {"<a-unknown@test>", "<b-written@test>"}
    assert await _visible(hub, BERND) == {
        "<b-written@test>",
        "<b-blocked-for-anna@test>",
        "<b-unknown@test>",
    }
