"""The blocklist on a real database (SQLite, or PostgreSQL in CI): never stored at sync, in
the dropbox or when sent through crmhub, and removed from storage when an entry is added."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select

from hub.admin import add_connector
from hub.blocklist import add_block, list_blocks, remove_block
from hub.bootstrap import Hub
from hub.dropbox import DropboxHandler
from hub.pipeline import sync_all
from hub.screening import BLOCKED
from hub.sending import Outgoing, send_mail
from storage.tables import AuditRow, BlobRow, InteractionRow, SourceRow
from tests.mailserver import RecordingMailserver, start_mailserver


def _mail(n: int, sender: str, *recipients: str) -> str:
    return (
        f"From MAILER-DAEMON Mon Jan  8 09:0{n}:00 2024\nFrom: {sender}\n"
        f"To: {', '.join(recipients)}\nSubject: mail {n}\n"
        f"Date: Mon, 8 Jan 2024 09:0{n}:00 +0100\nMessage-ID: <b{n}@test.example>\n\nText {n}.\n\n"
    )


MBOX = (
    _mail(1, "dr.who@praxis-example.de", "anna@ourco.example")  # blocked domain only
    + _mail(2, "anna@ourco.example", "dr.who@eu.praxis-example.de", "buyer@acme.example")
    + _mail(3, "friend@gmail.com", "anna@ourco.example")  # anna's own entry
    + _mail(4, "buyer@acme.example", "anna@ourco.example")
)


async def _mailboxes(hub: Hub, folder: Path) -> None:
    """The same mailbox read by anna's and tom's connectors (one item, two sources each)."""
    for owner in ("anna", "tom"):
        (folder / f"{owner}.mbox").write_text(MBOX, encoding="utf-8")
        settings = {"path": str(folder / f"{owner}.mbox"), "owner": f"{owner}@ourco.example"}
        await add_connector(hub, "mbox", owner, settings, {})


async def _subjects(hub: Hub) -> dict[str, list[str]]:
    """Subject -> connectors of its sources."""
    async with hub.sessions() as session:
        rows = await session.execute(
            select(InteractionRow.subject, SourceRow.connector)
            .join(SourceRow, isouter=True)
            .order_by(InteractionRow.subject, SourceRow.connector)
        )
        found: dict[str, list[str]] = {}
        for subject, connector in rows:
            found.setdefault(subject, []).extend([connector] if connector else [])
        return found


async def test_sync_skips_items_whose_outside_parties_are_all_blocked(
    hub: Hub, tmp_path: Path
) -> None:
    await add_block(hub, "Praxis-Example.DE", actor="admin@ourco.example")
    await add_block(hub, "Friend@gmail.com", "anna@ourco.example", "anna@ourco.example")
    await _mailboxes(hub, tmp_path)
    reports = {r.connector: r for r in await sync_all(hub)}
    assert (reports["anna"].fetched, reports["anna"].skipped, reports["anna"].new) == (4, 2, 2)
    assert (reports["tom"].skipped, reports["tom"].new, reports["tom"].duplicates) == (1, 1, 2)
    assert await _subjects(hub) == {
        "mail 2": ["anna", "tom"],
        "mail 3": ["tom"],
        "mail 4": ["anna", "tom"],
    }


async def test_adding_entries_removes_what_is_stored(hub: Hub, tmp_path: Path) -> None:
    await _mailboxes(hub, tmp_path)
    await sync_all(hub)
    async with hub.sessions() as session:
        blobs = (await session.execute(select(func.count()).select_from(BlobRow))).scalar_one()
    everyone = await add_block(hub, "praxis-example.de", actor="admin@ourco.example")
    assert everyone.as_json() == {
        "entry": "praxis-example.de",
        "user": "",
        "added": True,
        "items_deleted": 1,
        "sources_removed": 0,
    }
    assert everyone.blobs_deleted == 1
    async with hub.sessions() as session:
        left = (await session.execute(select(func.count()).select_from(BlobRow))).scalar_one()
    assert left == blobs - 1
    anna = await add_block(hub, "friend@gmail.com", "Anna@OurCo.example", "anna@ourco.example")
    assert (anna.items_deleted, anna.sources_removed) == (0, 1)
    assert await _subjects(hub) == {
        "mail 2": ["anna", "tom"],
        "mail 3": ["tom"],
        "mail 4": ["anna", "tom"],
    }
    tom = await add_block(hub, "gmail.com", "tom@ourco.example", "tom@ourco.example")
    assert (tom.items_deleted, tom.sources_removed) == (1, 0)
    again = await add_block(hub, "praxis-example.de", actor="admin@ourco.example")
    assert not again.added and again.items_deleted == 0
    assert list(await _subjects(hub)) == ["mail 2", "mail 4"]

    assert [(e.entry, e.user) for e in await list_blocks(hub)] == [
        ("praxis-example.de", ""),
        ("friend@gmail.com", "anna@ourco.example"),
        ("gmail.com", "tom@ourco.example"),
    ]
    assert [e.entry for e in await list_blocks(hub, "TOM@ourco.example")] == ["gmail.com"]
    assert await remove_block(hub, "gmail.com", "tom@ourco.example", "tom@ourco.example")
    assert not await remove_block(hub, "gmail.com", "tom@ourco.example", "tom@ourco.example")
    async with hub.sessions() as session:
        audit = (
            await session.execute(
                select(AuditRow.action, AuditRow.actor, AuditRow.target, AuditRow.after)
                .where(AuditRow.action.like("blocklist.%"))
                .order_by(AuditRow.id)
            )
        ).all()
    assert [(a, actor, target) for a, actor, target, _ in audit] == [
        ("blocklist.add", "admin@ourco.example", "praxis-example.de"),
        ("blocklist.add", "anna@ourco.example", "friend@gmail.com"),
        ("blocklist.add", "tom@ourco.example", "gmail.com"),
        ("blocklist.add", "admin@ourco.example", "praxis-example.de"),
        ("blocklist.remove", "tom@ourco.example", "gmail.com"),
    ]
    assert audit[1][3]["sources_removed"] == 1


async def test_the_dropbox_does_not_log_blocked_mail(hub: Hub) -> None:
    await add_block(hub, "praxis-example.de", "anna@ourco.example", "anna@ourco.example")
    hub.settings.dropbox_addresses = ["log@crm.example"]
    handler = DropboxHandler(hub)
    mail = (
        b"From: anna@ourco.example\r\nTo: dr.who@praxis-example.de\r\nSubject: private\r\n"
        b"Date: Mon, 8 Jan 2024 09:00:00 +0100\r\nMessage-ID: <d1@ourco.example>\r\n\r\nHi.\r\n"
    )
    assert await handler.log_mail(mail, owner="anna@ourco.example") == (
        f"250 2.0.0 Not logged: {BLOCKED}"
    )
    assert (await handler.log_mail(mail, owner="tom@ourco.example")).startswith(
        "250 2.0.0 Logged as interaction"
    )


async def test_mail_sent_to_blocked_parties_is_sent_but_not_logged(hub: Hub) -> None:
    recorder = RecordingMailserver()
    server = start_mailserver(recorder)
    try:
        await add_connector(
            hub,
            "smtp",
            "anna-send",
            {"host": "127.0.0.1", "port": str(server.port), "tls": "none"},
            {},
        )
        await add_block(hub, "dr.who@praxis-example.de", actor="admin@ourco.example")
        outgoing = Outgoing(
            sender="anna@ourco.example",
            to=["Dr.Who@praxis-example.de"],
            subject="Termin",
            body="Bis Montag.",
        )
        outcome = await send_mail(hub, "anna-send", outgoing)
    finally:
        server.stop()
    assert outcome.accepted == ["Dr.Who@praxis-example.de"]
    assert (outcome.interaction_id, outcome.not_logged) == (None, BLOCKED)
    assert len(recorder.received) == 1
    async with hub.sessions() as session:
        stored = (await session.execute(select(func.count()).select_from(InteractionRow))).scalar()
    assert stored == 0
