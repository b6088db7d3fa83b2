"""Contact auto-creation through the real pipeline: mbox connector, matching, a real database.

What the users see: after a sync, the people the mailbox owner wrote to are contacts of their
company, their mail (also the mail stored before they became contacts) is on their contact
timeline, and syncing again, or after a crash, never makes a second copy of anybody.
"""

from __future__ import annotations

import asyncio
import copy
from pathlib import Path

from sqlalchemy import func, select

from hub.admin import add_connector, import_directory
from hub.bootstrap import Hub
from hub.pipeline import SyncReport, sync_all, sync_connector
from storage.directory import create_contacts
from storage.tables import AccountRow, ContactRow, InteractionRow

DIRECTORY = (
    "account,domains,contact,emails,phones,owner\n"
    "ACME GmbH,acme.de,Jane Doe,jane.doe@acme.de,,\n"
    "Isar Maschinenbau AG,isar-mb.de,,,,\n"
    "Holding Nord,holding.de,,,,\n"
    "Holding Sued,holding.de,,,,\n"
)


def _mail(n: int, sender: str, to: str, cc: str = "", headers: str = "") -> str:
    lines = [
        f"From x Mon Jan  8 0{n}:00:00 2024",
        f"From: {sender}",
        f"To: {to}",
        *([f"Cc: {cc}"] if cc else []),
        f"Subject: Angebot {n}",
        f"Date: Mon, 8 Jan 2024 0{n}:00:00 +0100",
        f"Message-ID: <a{n}@test>",
        *([headers] if headers else []),
        "",
        f"Text {n}.",
        "",
    ]
    return "\n".join(lines) + "\n"


# Bob writes first; Anna answers him and Carl (both at customers) and a free-mail address.
INBOUND_FROM_BOB = _mail(1, "Bob Meier <bob.meier@acme.de>", "anna@ourco.example")
OUTBOUND = _mail(
    2, "Anna <anna@ourco.example>", "Bob Meier <bob.meier@acme.de>", cc="carl@isar-mb.de"
) + _mail(3, "anna@ourco.example", "privat@gmail.com, info@holding.de")
INBOUND_OTHERS = (
    _mail(4, "Dora Klein <dora.klein@isar-mb.de>", "anna@ourco.example")
    + _mail(5, "noreply@acme.de", "anna@ourco.example")
    + _mail(6, "News <news@acme.de>", "anna@ourco.example", headers="List-Id: <news.acme.de>")
    + _mail(7, "Tom <tom@ourco.example>", "ed@acme.de")
)


async def _setup(hub: Hub, tmp_path: Path, mbox: str, **settings: str) -> Path:
    directory = tmp_path / "directory.csv"
    directory.write_text(DIRECTORY, encoding="utf-8")
    await import_directory(hub, directory)
    path = tmp_path / "mail.mbox"
    path.write_text(mbox, encoding="utf-8")
    await add_connector(hub, "mbox", "mail", {"path": str(path), **settings}, {})
    return path


async def _contacts(hub: Hub) -> dict[str, tuple[str, tuple[str, ...]]]:
    """Contact name -> (account name, addresses)."""
    async with hub.sessions() as session:
        rows = (await session.execute(select(ContactRow))).scalars().all()
        accounts = {a.id: a.name for a in (await session.execute(select(AccountRow))).scalars()}
        return {
            row.name: (accounts[row.account_id or 0], tuple(sorted(e.address for e in row.emails)))
            for row in rows
        }


async def _links(hub: Hub) -> dict[str, list[tuple[str, str]]]:
    """Message-ID -> sorted (rule, contact name or "") of its live attributions."""
    async with hub.sessions() as session:
        names = {c.id: c.name for c in (await session.execute(select(ContactRow))).scalars()}
        rows = (await session.execute(select(InteractionRow))).scalars().all()
        return {
            row.message_id or "": sorted(
                (a.rule, names.get(a.contact_id or 0, ""))
                for a in row.attributions
                if not a.removed
            )
            for row in rows
        }


async def _participant_contacts(hub: Hub, message_id: str) -> dict[str, int | None]:
    async with hub.sessions() as session:
        row = (
            await session.execute(
                select(InteractionRow).where(InteractionRow.message_id == message_id)
            )
        ).scalar_one()
        return {p.normalized or p.address: p.contact_id for p in row.participants}


async def _count_contacts(hub: Hub) -> int:
    async with hub.sessions() as session:
        return int(
            (await session.execute(select(func.count()).select_from(ContactRow))).scalar_one()
        )


async def _sync(hub: Hub) -> SyncReport:
    (report,) = await sync_all(hub)
    assert report.errors == 0, report.error
    return report


async def test_written_to_creates_recipients_and_attributes_their_earlier_mail(
    hub: Hub, tmp_path: Path
) -> None:
    path = await _setup(hub, tmp_path, INBOUND_FROM_BOB, create_contacts="written-to")
    first = await _sync(hub)
    assert first.contacts_created == 0, "Bob only wrote in; nobody wrote to him yet"
    assert (await _links(hub))["<a1@test>"] == [("account-domain", "")]

    with path.open("a", encoding="utf-8") as handle:
        handle.write(OUTBOUND + INBOUND_OTHERS)
    second = await _sync(hub)
    assert second.contacts_created == 3
    assert second.as_json()["contacts_created"] == 3
    assert await _contacts(hub) == {
        "Jane Doe": ("ACME GmbH", ("jane.doe@acme.de",)),
        "Bob Meier": ("ACME GmbH", ("bob.meier@acme.de",)),
        "Carl": ("Isar Maschinenbau AG", ("carl@isar-mb.de",)),
        "Ed": ("ACME GmbH", ("ed@acme.de",)),
    }, "no owner is known: mail from any colleague counts"
    links = await _links(hub)
    assert links["<a2@test>"] == [("contact-email", "Bob Meier"), ("contact-email", "Carl")]
    assert links["<a1@test>"] == [("contact-email", "Bob Meier")], "stored before: re-matched"
    assert links["<a3@test>"] == [("account-domain", "")] * 2, (
        "no contact at free mail or a shared domain"
    )
    assert links["<a4@test>"] == [("account-domain", "")], "written-to ignores inbound senders"
    assert links["<a7@test>"] == [("contact-email", "Ed")]
    bob = (await _participant_contacts(hub, "<a1@test>"))["bob.meier@acme.de"]
    assert bob is not None

    again = await _sync(hub)
    assert again.contacts_created == 0 and again.new == 0
    assert await _count_contacts(hub) == 4


async def test_account_domain_creates_inbound_senders_too(hub: Hub, tmp_path: Path) -> None:
    await _setup(
        hub,
        tmp_path,
        INBOUND_FROM_BOB + OUTBOUND + INBOUND_OTHERS,
        create_contacts="account-domain",
    )
    report = await _sync(hub)
    assert report.contacts_created == 4
    assert await _contacts(hub) == {
        "Jane Doe": ("ACME GmbH", ("jane.doe@acme.de",)),
        "Bob Meier": ("ACME GmbH", ("bob.meier@acme.de",)),
        "Carl": ("Isar Maschinenbau AG", ("carl@isar-mb.de",)),
        "Dora Klein": ("Isar Maschinenbau AG", ("dora.klein@isar-mb.de",)),
        "Ed": ("ACME GmbH", ("ed@acme.de",)),
    }, "noreply@ and the newsletter sender are no contacts"
    links = await _links(hub)
    assert links["<a1@test>"] == [("contact-email", "Bob Meier")], "decided after the creation"
    assert links["<a4@test>"] == [("contact-email", "Dora Klein")]
    assert links["<a5@test>"] == [("account-domain", "")]
    assert links["<a6@test>"] == [], "bulk mail is not logged"


async def test_off_is_the_default_and_creates_nothing(hub: Hub, tmp_path: Path) -> None:
    await _setup(hub, tmp_path, INBOUND_FROM_BOB + OUTBOUND + INBOUND_OTHERS)
    report = await _sync(hub)
    assert report.contacts_created == 0 and report.new == 7
    assert list(await _contacts(hub)) == ["Jane Doe"]


async def test_a_crash_after_creating_the_contacts_creates_no_second_copy(
    hub: Hub, tmp_path: Path
) -> None:
    """The contacts were committed, the batch was not: the re-run stores the batch, once."""
    await _setup(hub, tmp_path, INBOUND_FROM_BOB + OUTBOUND, create_contacts="written-to")
    stale = await hub.identity_index()
    async with hub.sessions() as session, session.begin():
        accounts = {a.name: a.id for a in (await session.execute(select(AccountRow))).scalars()}
        crashed = await create_contacts(
            session,
            [
                (accounts["ACME GmbH"], "Bob Meier", "bob.meier@acme.de"),
                (accounts["Isar Maschinenbau AG"], "Carl", "carl@isar-mb.de"),
            ],
        )
    assert crashed.created == 2
    async with hub.sessions() as session, session.begin():
        carl = await session.get(ContactRow, crashed.contacts[1].id)
        assert carl is not None and carl.name == "Carl"
        carl.name = "Carl Huber"  # a person completed the name before the re-run

    # An index loaded before the crash (another process's) still proposes both contacts.
    report = await sync_connector(hub, "mail", stale)
    assert report.errors == 0 and report.contacts_created == 0 and report.new == 3
    assert await _count_contacts(hub) == 3
    links = await _links(hub)
    assert links["<a1@test>"] == [("contact-email", "Bob Meier")]
    assert links["<a2@test>"] == [("contact-email", "Bob Meier"), ("contact-email", "Carl Huber")]


async def test_a_namesake_at_the_account_gains_the_address(hub: Hub, tmp_path: Path) -> None:
    """The directory allows one contact per name and account: Jane's second address joins her."""
    mail = _mail(1, "anna@ourco.example", "Jane Doe <j.doe@acme.de>")
    await _setup(hub, tmp_path, mail, create_contacts="written-to", owner="anna@ourco.example")
    report = await _sync(hub)
    assert report.contacts_created == 0
    assert await _contacts(hub) == {
        "Jane Doe": ("ACME GmbH", ("j.doe@acme.de", "jane.doe@acme.de"))
    }
    assert (await _links(hub))["<a1@test>"] == [("contact-email", "Jane Doe")]


async def test_the_owner_setting_limits_written_to_to_the_owners_mail(
    hub: Hub, tmp_path: Path
) -> None:
    await _setup(
        hub,
        tmp_path,
        OUTBOUND + INBOUND_OTHERS,
        create_contacts="written-to",
        owner="tom@ourco.example",
    )
    report = await _sync(hub)
    assert report.contacts_created == 1
    assert set(await _contacts(hub)) == {"Jane Doe", "Ed"}, "Anna's mail is not Tom's"
    assert (await _links(hub))["<a2@test>"] == [("account-domain", "")] * 2


async def test_two_mailboxes_syncing_at_once_create_one_contact(hub: Hub, tmp_path: Path) -> None:
    """Anna and Tom both wrote to Bob; their mailboxes sync side by side and both propose him."""
    await _setup(hub, tmp_path, OUTBOUND, create_contacts="written-to")
    toms = tmp_path / "tom.mbox"
    toms.write_text(_mail(8, "tom@ourco.example", "Bob Meier <bob.meier@acme.de>"), "utf-8")
    await add_connector(
        hub, "mbox", "tom", {"path": str(toms), "create_contacts": "written-to"}, {}
    )
    index = await hub.identity_index()
    reports = await asyncio.gather(
        sync_connector(hub, "mail", index), sync_connector(hub, "tom", copy.deepcopy(index))
    )
    assert [r.errors for r in reports] == [0, 0], [r.error for r in reports]
    assert sum(r.contacts_created for r in reports) == 2
    assert await _count_contacts(hub) == 3
    links = await _links(hub)
    assert links["<a8@test>"] == [("contact-email", "Bob Meier")]
    assert links["<a2@test>"] == [("contact-email", "Bob Meier"), ("contact-email", "Carl")]
