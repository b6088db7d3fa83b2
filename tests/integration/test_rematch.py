"""Retroactive attribution: a directory change reaches the items already stored, and only them."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from hub.admin import add_connector, import_directory
from hub.bootstrap import Hub
from hub.pipeline import sync_all
from storage.tables import InteractionRow

MBOX = """From x Mon Jan  8 09:00:00 2024
From: Einkauf <einkauf@sued.isar-mb.de>
To: anna@ourco.example
Subject: Ersatzteile
Date: Mon, 8 Jan 2024 09:00:00 +0100
Message-ID: <r1@isar-mb.de>

Bitte um Angebot.

From x Mon Jan  8 10:00:00 2024
From: Privat <kollege@privat-mail.example>
To: anna@ourco.example
Subject: Re: Ersatzteile
Date: Mon, 8 Jan 2024 10:00:00 +0100
Message-ID: <r2@privat-mail.example>
In-Reply-To: <r1@isar-mb.de>

Ich übernehme.

From x Mon Jan  8 11:00:00 2024
From: Fremd <info@notisar-mb.de>
To: anna@ourco.example
Subject: Werbung
Date: Mon, 8 Jan 2024 11:00:00 +0100
Message-ID: <r3@notisar-mb.de>

Nicht Isar.

"""

CDR = (
    '"","01719998887","201","from-external","","SIP/t-1","SIP/201-1","Dial","SIP/201",'
    '"2024-01-09 14:00:00","2024-01-09 14:00:03","2024-01-09 14:05:03",303,300,"ANSWERED",'
    '"DOCUMENTATION","1704805200.1",""\n'
)


async def _rules(hub: Hub) -> dict[str, list[tuple[str, bool]]]:
    async with hub.sessions() as session:
        rows = (await session.execute(select(InteractionRow))).scalars().all()
        return {
            row.message_id or row.dedupe_key: sorted(
                (a.rule, a.manual) for a in row.attributions if not a.removed
            )
            for row in rows
        }


async def _two_customers_synced(hub: Hub, tmp_path: Path) -> None:
    """Isar and Elbe in the directory, MBOX synced: r1 goes to Isar by domain."""
    (tmp_path / "mail.mbox").write_text(MBOX, encoding="utf-8")
    directory = tmp_path / "d.csv"
    directory.write_text(
        "account,domains,contact,emails,phones,owner\n"
        "Isar Maschinenbau AG,isar-mb.de,,,,\nElbe GmbH,elbe.de,,,,\n"
    )
    await import_directory(hub, directory)
    mailbox = {"path": str(tmp_path / "mail.mbox"), "owner": "lea@ourco.example"}  # hers
    await add_connector(hub, "mbox", "mail", mailbox, {})
    await sync_all(hub)


async def test_a_new_domain_and_phone_reattribute_stored_items_and_their_replies(
    hub: Hub, tmp_path: Path
) -> None:
    (tmp_path / "mail.mbox").write_text(MBOX, encoding="utf-8")
    (tmp_path / "Master.csv").write_text(CDR, encoding="utf-8")
    first = tmp_path / "first.csv"
    first.write_text("account,domains,contact,emails,phones,owner\nElbe GmbH,elbe.de,,,,\n")
    await import_directory(hub, first)
    await add_connector(hub, "mbox", "mail", {"path": str(tmp_path / "mail.mbox")}, {})
    await add_connector(hub, "asterisk-cdr", "calls", {"path": str(tmp_path / "Master.csv")}, {})
    await sync_all(hub)
    before = await _rules(hub)
    assert all(rules == [] for rules in before.values()), before

    more = tmp_path / "more.csv"
    more.write_text(
        "account,domains,contact,emails,phones,owner\n"
        "Isar Maschinenbau AG,isar-mb.de,Tom Rieger,,0171 9998887,\n"
    )
    result = await import_directory(hub, more)
    assert result.rematched.changed == 3, result.summary("more.csv")
    assert "3 stored items attributed anew" in result.summary("more.csv")
    after = await _rules(hub)
    assert after["<r1@isar-mb.de>"] == [("account-domain", False)]
    assert after["<r2@privat-mail.example>"] == [("thread", False)]
    assert after["<r3@notisar-mb.de>"] == [], "only whole labels make a subdomain"
    (call,) = [key for key in after if key.startswith("asterisk")]
    assert after[call] == [("contact-phone", False)]

    again = await import_directory(hub, more)
    assert again.rematched.changed == 0, "re-importing the same file changes nothing"


async def test_manual_links_and_tombstones_survive_rematching(hub: Hub, tmp_path: Path) -> None:
    await _two_customers_synced(hub, tmp_path)
    async with hub.sessions() as session, session.begin():
        mail = (
            await session.execute(
                select(InteractionRow).where(InteractionRow.message_id == "<r1@isar-mb.de>")
            )
        ).scalar_one()
        (isar_link,) = mail.attributions
        isar_link.removed = isar_link.manual = True  # a person said: not Isar
    grown = tmp_path / "grown.csv"
    grown.write_text(
        "account,domains,contact,emails,phones,owner\n"
        "Isar Maschinenbau AG,isar-mb.de;isar-maschinenbau.de,,,,\n"
        "Isar Maschinenbau AG,,Einkauf,einkauf@sued.isar-mb.de,,\n"
    )
    await import_directory(hub, grown)
    after = await _rules(hub)
    assert after["<r1@isar-mb.de>"] == [], "the tombstone keeps Isar away"


async def test_corrections_through_the_api_win_over_rematching_and_are_audited(
    hub: Hub, tmp_path: Path
) -> None:
    import httpx
    from sqlalchemy import func

    from hub.web.app import build_app
    from storage.tables import AccountRow, AuditRow
    from storage.tokens import create_token
    from storage.users import add_user

    await _two_customers_synced(hub, tmp_path)
    async with hub.sessions() as session, session.begin():
        user = await add_user(session, "lea@ourco.example", "manager", "pw-lea-1234")
        token = await create_token(session, user)
        ids = {a.name: a.id for a in (await session.execute(select(AccountRow))).scalars()}
        mail_id = (
            await session.execute(
                select(InteractionRow.id).where(InteractionRow.message_id == "<r3@notisar-mb.de>")
            )
        ).scalar_one()
        isar_mail = (
            await session.execute(
                select(InteractionRow.id).where(InteractionRow.message_id == "<r1@isar-mb.de>")
            )
        ).scalar_one()
    transport = httpx.ASGITransport(app=build_app(hub))
    async with httpx.AsyncClient(
        transport=transport, base_url="http://hub", headers={"Authorization": f"Bearer {token}"}
    ) as api:
        added = await api.post(
            f"/api/interactions/{mail_id}/attributions",
            json={"action": "add", "account_id": ids["Elbe GmbH"]},
        )
        assert added.status_code == 200, added.text
        assert [(a["rule"], a["manual"]) for a in added.json()["attributions"]] == [
            ("manual", True)
        ]
        removed = await api.post(
            f"/api/interactions/{isar_mail}/attributions",
            json={"action": "remove", "account_id": ids["Isar Maschinenbau AG"]},
        )
        assert removed.status_code == 200 and removed.json()["attributions"] == []
        bad = await api.post(
            f"/api/interactions/{isar_mail}/attributions",
            json={"action": "add", "account_id": 999999},
        )
        assert (bad.status_code, bad.json()["error"]["code"]) == (422, "bad_correction")
        unknown = await api.post(
            "/api/interactions/999999/attributions",
            json={"action": "add", "account_id": ids["Elbe GmbH"]},
        )
        assert unknown.status_code == 404
    grown = tmp_path / "grown.csv"
    grown.write_text(
        "account,domains,contact,emails,phones,owner\n"
        "Isar Maschinenbau AG,isar-mb.de;notisar-mb.de,Einkauf,einkauf@sued.isar-mb.de,,\n"
    )
    await import_directory(hub, grown)
    rules = await _rules(hub)
    assert rules["<r1@isar-mb.de>"] == [], "a removed account is not re-added"
    assert ("manual", True) in rules["<r3@notisar-mb.de>"], "a manual link is kept"
    async with hub.sessions() as session:
        audits = (await session.execute(select(AuditRow).order_by(AuditRow.id))).scalars().all()
        assert [(a.actor, a.action) for a in audits] == [
            ("cli", "connector.add"),  # the set-up's connector, user and token
            ("cli", "user.add"),
            ("cli", "token.create"),
            ("lea@ourco.example", "attribution.add"),
            ("lea@ourco.example", "attribution.remove"),
        ]
        assert audits[4].before["attributions"][0]["rule"] == "account-domain"
        assert audits[4].after == {"attributions": []}
        assert (await session.execute(select(func.count()).select_from(AuditRow))).scalar() == 5


async def test_the_interaction_page_buttons_correct_links(hub: Hub, tmp_path: Path) -> None:
    import re

    from tests.integration.conftest import logged_in

    await _two_customers_synced(hub, tmp_path)
    async with hub.sessions() as session:
        mail_id = (
            await session.execute(
                select(InteractionRow.id).where(InteractionRow.message_id == "<r1@isar-mb.de>")
            )
        ).scalar_one()
    async with logged_in(hub, "lea@ourco.example") as browser:
        page = (await browser.get(f"/interactions/{mail_id}")).text
        assert "Isar Maschinenbau AG" in page and "Not this customer" in page
        csrf = re.search(r'name="csrf" value="([^"]+)"', page)
        assert csrf is not None
        wrong = await browser.post(
            f"/interactions/{mail_id}/attributions",
            data={"csrf": csrf.group(1), "action": "add", "account": "Nobody GmbH"},
        )
        assert wrong.status_code == 422 and "Nobody GmbH" in wrong.text
        moved = await browser.post(  # named as people know it: here by its domain
            f"/interactions/{mail_id}/attributions",
            data={"csrf": csrf.group(1), "action": "add", "account": "elbe.de"},
        )
        assert moved.status_code == 200
        account_id = re.search(r'name="account_id" value="(\d+)"', moved.text)
        assert account_id is not None
        removed = await browser.post(
            f"/interactions/{mail_id}/attributions",
            data={"csrf": csrf.group(1), "action": "remove", "account_id": account_id.group(1)},
        )
        assert removed.status_code == 200
    rules = await _rules(hub)
    assert len(rules["<r1@isar-mb.de>"]) == 1, "one account removed, the other kept"
