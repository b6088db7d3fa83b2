"""Merging duplicate accounts and contacts: rows move in one transaction, stored items follow.

Runs on SQLite, and on PostgreSQL when CRMHUB_TEST_DATABASE_URL is set. The directory holds
"Isar Maschinenbau AG" (KEEP) and its duplicate "Isar MB" (DROP), each with a "Tom Rieger";
mail, a reply and a call are synced through the real pipeline, people correct some links through
storage.corrections, and then the merge must leave every item where a person would expect it.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import select

from hub.admin import add_connector, import_directory, merge_accounts, merge_contacts
from hub.bootstrap import Hub
from hub.pipeline import sync_all
from hub.policy import Role, Viewer, read_scope
from storage import queries
from storage.corrections import correct
from storage.merge import MergeError, UnknownRecord
from storage.tables import (
    AccountRow,
    AttributionRow,
    AuditRow,
    ContactRow,
    InteractionRow,
    ParticipantRow,
)

DIRECTORY = """account,domains,contact,emails,phones,owner
Isar Maschinenbau AG,isar-mb.de,Tom Rieger,tom.rieger@isar-mb.de,,
Isar MB,isar-maschinenbau.de,Tom Rieger,t.rieger@isar-maschinenbau.de,0171 9998887,tom@ourco.example
Isar MB,isar-maschinenbau.de,Eva Kurz,eva@isar-maschinenbau.de,,
Elbe GmbH,elbe.de,Piet Brandt,piet@elbe.de,,
Alster AG,alster.example,P. Brandt,p.brandt@gmail.com,,
"""


def _mail(key: str, sender: str, subject: str, *, cc: str = "", reply_to: str = "") -> str:
    return (
        f"From x Mon Jan  8 09:00:00 2024\n"
        f"From: {sender}\nTo: anna@ourco.example\n"
        + (f"Cc: {cc}\n" if cc else "")
        + f"Subject: {subject}\nDate: Mon, 8 Jan 2024 09:{len(key):02d}:00 +0100\n"
        f"Message-ID: <{key}@test>\n"
        + (f"In-Reply-To: <{reply_to}@test>\n" if reply_to else "")
        + f"\n{subject}.\n\n"
    )


MBOX = "".join(
    (
        _mail("domain", "einkauf@isar-maschinenbau.de", "Angebot"),  # DROP by domain
        _mail("both-toms", "tom.rieger@isar-mb.de", "Termin", cc="t.rieger@isar-maschinenbau.de"),
        _mail("eva", "eva@isar-maschinenbau.de", "Lieferung"),  # DROP's contact Eva
        _mail("keep-only", "info@isar-mb.de", "Katalog"),  # KEEP, untouched by the merge
        _mail("removed", "werbung@isar-maschinenbau.de", "Werbung"),  # tombstone on DROP
        _mail("manual", "zentrale@elbe.de", "Weitergeleitet"),  # manual link to DROP
        _mail("disputed", "ceo@elbe.de", "Rahmenvertrag"),  # DROP removed, KEEP manual
        _mail("reply", "kollege@privat-mail.example", "Re: Angebot", reply_to="domain"),
        _mail("elbe", "piet@elbe.de", "Elbe"),  # another customer, untouched
        _mail("gmail", "p.brandt@gmail.com", "Privat"),  # contact P. Brandt at Alster
    )
)

CDR = (
    '"","01719998887","201","from-external","","SIP/t-1","SIP/201-1","Dial","SIP/201",'
    '"2024-01-09 14:00:00","2024-01-09 14:00:03","2024-01-09 14:05:03",303,300,"ANSWERED",'
    '"DOCUMENTATION","1704805200.1",""\n'
)


async def _synced(hub: Hub, tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_text(DIRECTORY, encoding="utf-8")
    (tmp_path / "mail.mbox").write_text(MBOX, encoding="utf-8")
    (tmp_path / "Master.csv").write_text(CDR, encoding="utf-8")
    result = await import_directory(hub, tmp_path / "d.csv")
    assert not result.errors, result.errors
    mailbox = {"path": str(tmp_path / "mail.mbox"), "owner": LEA.email}  # her mailbox
    await add_connector(hub, "mbox", "mail", mailbox, {})
    await add_connector(hub, "asterisk-cdr", "calls", {"path": str(tmp_path / "Master.csv")}, {})
    reports = await sync_all(hub)
    assert all(not r.errors for r in reports), [r.error for r in reports]


async def _ids(hub: Hub) -> tuple[dict[str, int], dict[tuple[str, str], int], dict[str, int]]:
    """Account ids by name, contact ids by (account, name), item ids by Message-ID key."""
    async with hub.sessions() as session:
        accounts = {a.name: a.id for a in (await session.execute(select(AccountRow))).scalars()}
        names = {v: k for k, v in accounts.items()}
        contacts = {
            (names.get(c.account_id or 0, ""), c.name): c.id
            for c in (await session.execute(select(ContactRow))).scalars()
        }
        items = {
            (row.message_id or "call").strip("<>").removesuffix("@test"): row.id
            for row in (await session.execute(select(InteractionRow))).scalars()
        }
    return accounts, contacts, items


async def _links(hub: Hub, item: int) -> list[tuple[int, int | None, bool, bool]]:
    """(account, contact, manual, removed) of every attribution row of one item."""
    async with hub.sessions() as session:
        rows = await session.execute(
            select(AttributionRow).where(AttributionRow.interaction_id == item)
        )
        return sorted((a.account_id, a.contact_id, a.manual, a.removed) for a in rows.scalars())


async def _correct(hub: Hub, item: int, action: str, account: int) -> None:
    async with hub.sessions() as session, session.begin():
        row = await session.get(InteractionRow, item)
        assert row is not None
        await correct(
            session, row, actor="lea@ourco.example", action=action, account_id=account,
            contact_id=None,
        )  # fmt: skip


LEA = Viewer("lea@ourco.example", Role.MANAGER)


async def _timeline(
    hub: Hub, *, account: int | None = None, contact: int | None = None
) -> set[int]:
    async with hub.sessions() as session:
        if account is not None:
            page = await queries.account_timeline(
                session, read_scope(LEA), account, queries.TimelineFilter(), None, 200
            )
        else:
            assert contact is not None
            page = await queries.contact_timeline(
                session, read_scope(LEA), contact, queries.TimelineFilter(), None, 200
            )
    return {row.id for row in page.items}


async def test_merging_accounts_moves_everything_and_keeps_peoples_decisions(
    hub: Hub, tmp_path: Path
) -> None:
    await _synced(hub, tmp_path)
    accounts, contacts, items = await _ids(hub)
    keep, drop = accounts["Isar Maschinenbau AG"], accounts["Isar MB"]
    keep_tom = contacts[("Isar Maschinenbau AG", "Tom Rieger")]
    drop_tom = contacts[("Isar MB", "Tom Rieger")]
    eva = contacts[("Isar MB", "Eva Kurz")]
    await _correct(hub, items["removed"], "remove", drop)
    await _correct(hub, items["manual"], "add", drop)
    await _correct(hub, items["disputed"], "add", keep)
    await _correct(hub, items["disputed"], "remove", drop)
    assert await _links(hub, items["both-toms"]) == [
        (keep, keep_tom, False, False),
        (drop, drop_tom, False, False),
    ]
    drop_items = await _timeline(hub, account=drop)
    assert {items[k] for k in ("domain", "both-toms", "eva", "manual", "reply", "call")} == (
        drop_items
    )

    result = await merge_accounts(hub, "Isar Maschinenbau AG", drop, actor="tester")

    merged = result.merged
    assert (merged.keep_id, merged.drop_id) == (keep, drop)
    assert merged.moved() == {
        "domains": 1,
        "contacts": 1,  # Eva
        "contacts_merged": 1,  # DROP's Tom folded into KEEP's Tom
        "emails": 1,
        "phones": 1,
        "participants": 2,  # DROP's Tom on both-toms and on the call
        "attributions": 6,  # domain, eva, removed, manual, reply, call
        "redundant_attributions": 2,  # Tom's duplicate on both-toms, DROP's tombstone on disputed
    }
    assert any("Tom Rieger" in note for note in merged.notes)
    # Only the items the merge touched are re-matched; keep-only, elbe and gmail are not.
    untouched = {items[k] for k in ("keep-only", "elbe", "gmail")}
    assert result.rematched.examined == len(items) - len(untouched)
    summary = "\n".join(result.summary())
    assert f"merged account {drop} 'Isar MB' into account {keep}" in summary
    assert "domains 1, contacts 1, contacts merged 1" in summary
    assert f"{result.rematched.examined} stored items re-matched" in summary

    async with hub.sessions() as session:
        assert await session.get(AccountRow, drop) is None
        assert await session.get(ContactRow, drop_tom) is None
        kept = await session.get(AccountRow, keep)
        assert kept is not None and kept.owner == "tom@ourco.example"
        assert sorted(d.domain for d in kept.domains) == ["isar-maschinenbau.de", "isar-mb.de"]
        tom = await session.get(ContactRow, keep_tom)
        assert tom is not None
        assert sorted(e.address for e in tom.emails) == [
            "t.rieger@isar-maschinenbau.de",
            "tom.rieger@isar-mb.de",
        ]
        assert [p.e164 for p in tom.phones] == ["+491719998887"]
        moved_eva = await session.get(ContactRow, eva)
        assert moved_eva is not None and moved_eva.account_id == keep
        call_party = await session.execute(
            select(ParticipantRow.contact_id).where(
                ParticipantRow.interaction_id == items["call"], ParticipantRow.kind == "phone"
            )
        )
        assert keep_tom in set(call_party.scalars())
        (audit,) = (
            (await session.execute(select(AuditRow).where(AuditRow.action == "account.merge")))
            .scalars()
            .all()
        )
        assert audit.actor == "tester" and audit.interaction_id is None
        assert audit.before["drop"]["name"] == "Isar MB"
        assert audit.before["drop"]["domains"] == ["isar-maschinenbau.de"]
        assert audit.after["keep"]["domains"] == ["isar-maschinenbau.de", "isar-mb.de"]
        assert audit.after["moved"] == merged.moved()
        every_link = (await session.execute(select(AttributionRow))).scalars().all()
    duplicates = Counter((a.interaction_id, a.account_id, a.contact_id) for a in every_link)
    assert [key for key, n in duplicates.items() if n > 1] == []
    assert drop not in {a.account_id for a in every_link}

    expected = {
        items[k] for k in ("domain", "both-toms", "eva", "keep-only", "manual", "disputed")
    } | {items["reply"], items["call"]}
    assert await _timeline(hub, account=keep) == expected
    assert items["removed"] not in expected, "a tombstone for DROP keeps the item off KEEP"
    assert await _links(hub, items["removed"]) == [(keep, None, True, True)]
    elbe = accounts["Elbe GmbH"]  # both mails come from elbe.de: that link is untouched
    assert await _links(hub, items["manual"]) == [
        (keep, None, True, False),
        (elbe, None, False, False),
    ]
    assert await _links(hub, items["disputed"]) == [
        (keep, None, True, False),
        (elbe, None, False, False),
    ]
    assert await _links(hub, items["both-toms"]) == [(keep, keep_tom, False, False)]
    assert await _links(hub, items["eva"]) == [(keep, eva, False, False)]
    assert await _links(hub, items["call"]) == [(keep, keep_tom, False, False)]
    assert {items["both-toms"], items["call"]} <= await _timeline(hub, contact=keep_tom)

    # Later re-matching (a directory import) keeps the result: the tombstone still holds.
    again = tmp_path / "again.csv"
    again.write_text(
        "account,domains,contact,emails,phones,owner\n"
        "Isar Maschinenbau AG,isar-maschinenbau.de,Werbung,werbung@isar-maschinenbau.de,,\n",
        encoding="utf-8",
    )
    await import_directory(hub, again)
    assert await _timeline(hub, account=keep) == expected
    async with hub.sessions() as session:
        explanations = await session.execute(
            select(AttributionRow.explanation).where(
                AttributionRow.account_id == keep, AttributionRow.removed.is_(False)
            )
        )  # a tombstone keeps the sentence of the link a person removed
        assert not [e for e in explanations.scalars() if "Isar MB" in e], "explanations updated"


async def test_merging_contacts_across_accounts_follows_keeps_account(
    hub: Hub, tmp_path: Path
) -> None:
    await _synced(hub, tmp_path)
    accounts, contacts, items = await _ids(hub)
    piet, brandt = contacts[("Elbe GmbH", "Piet Brandt")], contacts[("Alster AG", "P. Brandt")]
    elbe, alster = accounts["Elbe GmbH"], accounts["Alster AG"]
    assert await _links(hub, items["gmail"]) == [(alster, brandt, False, False)]

    result = await merge_contacts(hub, piet, brandt, actor="tester")

    assert result.merged.moved() == {
        "emails": 1,
        "phones": 0,
        "participants": 1,
        "attributions": 1,
        "redundant_attributions": 0,
    }
    (note,) = result.merged.notes
    assert "Alster AG" in note and "stays at account" in note and "Elbe GmbH" in note
    assert result.rematched.changed == 1, "the gmail item moves from Alster to Elbe"
    assert await _links(hub, items["gmail"]) == [(elbe, piet, False, False)]
    assert items["gmail"] in await _timeline(hub, contact=piet)
    assert items["gmail"] not in await _timeline(hub, account=alster)
    async with hub.sessions() as session:
        assert await session.get(ContactRow, brandt) is None
        kept = await session.get(ContactRow, piet)
        assert kept is not None
        # Stored as matching keys: Gmail ignores dots in the local part.
        assert sorted(e.address for e in kept.emails) == ["pbrandt@gmail.com", "piet@elbe.de"]
        (audit,) = (
            (await session.execute(select(AuditRow).where(AuditRow.action == "contact.merge")))
            .scalars()
            .all()
        )
        assert (audit.actor, audit.before["drop"]["id"], audit.after["keep"]["id"]) == (
            "tester",
            brandt,
            piet,
        )


async def test_a_manual_link_to_the_dropped_contact_stays_manual(hub: Hub, tmp_path: Path) -> None:
    await _synced(hub, tmp_path)
    accounts, contacts, items = await _ids(hub)
    keep_tom = contacts[("Isar Maschinenbau AG", "Tom Rieger")]
    drop_tom = contacts[("Isar MB", "Tom Rieger")]
    drop = accounts["Isar MB"]
    async with hub.sessions() as session, session.begin():
        row = await session.get(InteractionRow, items["elbe"])
        assert row is not None
        await correct(
            session, row, actor="lea@ourco.example", action="add", account_id=drop,
            contact_id=drop_tom,
        )  # fmt: skip
    await merge_contacts(hub, keep_tom, drop_tom, actor="tester")
    links = await _links(hub, items["elbe"])
    assert (drop, keep_tom, True, False) in links, "a person's link keeps its account"
    assert len(links) == len(set(links))


async def test_bad_merges_change_nothing(hub: Hub, tmp_path: Path) -> None:
    await _synced(hub, tmp_path)
    accounts, contacts, _ = await _ids(hub)
    keep = accounts["Isar Maschinenbau AG"]
    with pytest.raises(UnknownRecord) as unknown:
        await merge_accounts(hub, keep, 999999, actor="tester")
    assert unknown.value.which == "drop" and "no account 999999" in str(unknown.value)
    with pytest.raises(UnknownRecord, match="no account named 'Isar'"):
        await merge_accounts(hub, "Isar", keep, actor="tester")
    with pytest.raises(MergeError, match="both account"):
        await merge_accounts(hub, keep, "Isar Maschinenbau AG", actor="tester")
    tom = contacts[("Isar MB", "Tom Rieger")]
    with pytest.raises(MergeError, match="both contact"):
        await merge_contacts(hub, tom, tom, actor="tester")
    with pytest.raises(UnknownRecord) as missing:
        await merge_contacts(hub, 424242, tom, actor="tester")
    assert missing.value.which == "keep"
    assert await _ids(hub) == (accounts, contacts, _)
    async with hub.sessions() as session:
        assert (
            await session.execute(select(AuditRow).where(AuditRow.action.endswith(".merge")))
        ).scalars().all() == []
