"""The directory's search terms follow every change, and a search finds what people type.

Runs on SQLite, and on PostgreSQL when CRMHUB_TEST_DATABASE_URL is set. The terms are written
from the session's flush and by the few bulk deletes (storage.directory_search); after an
import, a re-import, a review settlement that moves an address and a domain, a new contact, a
merge and an erasure, the table must equal a rebuild from scratch: a write path that forgot
the terms would leave a record unfindable, or findable by what it no longer holds.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import delete, select

from hub.admin import import_directory, merge_contacts
from hub.bootstrap import Hub
from hub.privacy import erase_subject
from hub.review import Settlement, settle_case
from hub.search import NotOneRecord, one_record
from storage import directory_search
from storage.directory_search import ACCOUNT, CONTACT, parse
from storage.tables import AccountRow, ContactRow, DirectoryTermRow

DIRECTORY = """account,domains,contact,emails,phones,owner
Elbe Logistik GmbH,elbe-logistik.de,Jana Ohlsen,j.ohlsen@elbe-logistik.de,040 3344556,
Elbe Logistik GmbH,elbe-logistik.de,Jürgen Zimmermann,jz@elbe-logistik.de,0221 7322098,
Isar Maschinenbau AG,isar-mb.de;shared.example,Tom Rieger,tom@isar-mb.de,,
Alster Zimmerei AG,alster.example;shared.example,Eva Kurz,eva@alster.example,,
Alster Zimmerei AG,alster.example,Eva Kurz-Berger,eva.kb@gmail.com,0171 5550000,
Isar Maschinenbau AG,isar-mb.de,Anna Langer,anna@isar-mb.de,,
Isar Maschinenbau AG,isar-mb.de,Zoe Lang,zoe@isar-mb.de,,
"""
CHANGED = DIRECTORY.replace("Tom Rieger,tom@isar-mb.de,,", "Tom Rieger,tom@isar-mb.de,089 123456,")


async def _terms(hub: Hub) -> set[tuple[str, str, int]]:
    async with hub.sessions() as session:
        rows = await session.execute(
            select(DirectoryTermRow.kind, DirectoryTermRow.term, DirectoryTermRow.record_id)
        )
        return {tuple(r) for r in rows}  # type: ignore[misc]


async def _rebuilt(hub: Hub) -> set[tuple[str, str, int]]:
    """The terms as a rebuild from scratch writes them (rolled back afterwards)."""
    async with hub.sessions() as session, session.begin():
        accounts = list((await session.execute(select(AccountRow.id))).scalars())
        contacts = list((await session.execute(select(ContactRow.id))).scalars())
        await session.execute(delete(DirectoryTermRow))
        await directory_search.refresh(session, accounts, contacts)
        rows = await session.execute(
            select(DirectoryTermRow.kind, DirectoryTermRow.term, DirectoryTermRow.record_id)
        )
        found = {tuple(r) for r in rows}
        await session.rollback()
    return found  # type: ignore[return-value]


async def _ids(hub: Hub) -> tuple[dict[str, int], dict[str, int]]:
    async with hub.sessions() as session:
        accounts = {n: i for i, n in await session.execute(select(AccountRow.id, AccountRow.name))}
        contacts = {n: i for i, n in await session.execute(select(ContactRow.id, ContactRow.name))}
    return accounts, contacts


async def _find(hub: Hub, kind: str, q: str) -> list[str]:
    async with hub.reads() as session:
        ids = await directory_search.search(session, kind, parse(q, "DE"), 10)
        table = AccountRow if kind == ACCOUNT else ContactRow
        names = dict((await session.execute(select(table.id, table.name))).all())
    return [names[i] for i in ids]


async def test_the_terms_follow_every_change_of_the_directory(hub: Hub, tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_text(DIRECTORY, encoding="utf-8")
    assert not (await import_directory(hub, tmp_path / "d.csv")).errors
    assert await _terms(hub) == await _rebuilt(hub) != set()
    (tmp_path / "d.csv").write_text(CHANGED, encoding="utf-8")  # Tom gains a number
    assert not (await import_directory(hub, tmp_path / "d.csv")).errors
    assert await _find(hub, CONTACT, "089 123456") == ["Tom Rieger"]
    accounts, contacts = await _ids(hub)

    # Review: the shared address moves to Tom alone, the shared domain to Isar alone, and a
    # new contact is created for an unknown sender.
    await settle_case(
        hub, key="eva@alster.example", settlement=Settlement.ASSIGN, actor="t",
        contact_id=contacts["Eva Kurz-Berger"],
    )  # fmt: skip
    await settle_case(
        hub, key="shared.example", settlement=Settlement.ASSIGN, actor="t",
        account_id=accounts["Isar Maschinenbau AG"],
    )  # fmt: skip
    await settle_case(
        hub, key="k.lang@web.de", settlement=Settlement.CREATE_CONTACT, actor="t",
        account_id=accounts["Isar Maschinenbau AG"], name="Karin Lang",
    )  # fmt: skip
    assert await _terms(hub) == await _rebuilt(hub)
    assert await _find(hub, CONTACT, "eva@alster.example") == ["Eva Kurz-Berger"]
    assert await _find(hub, ACCOUNT, "shared.example") == ["Isar Maschinenbau AG"]
    assert await _find(hub, CONTACT, "Karin") == ["Karin Lang"]
    assert await _find(hub, CONTACT, "k.lang@web.de") == ["Karin Lang"]

    # A merge moves Eva Kurz's addresses to Eva Kurz-Berger and deletes her.
    _, contacts = await _ids(hub)
    await merge_contacts(hub, contacts["Eva Kurz-Berger"], contacts["Eva Kurz"], actor="t")
    assert await _terms(hub) == await _rebuilt(hub)
    assert await _find(hub, CONTACT, "Eva") == ["Eva Kurz-Berger"]

    # Erasure deletes the person with bulk statements.
    await erase_subject(hub, "jz@elbe-logistik.de", actor="t")
    assert await _terms(hub) == await _rebuilt(hub)
    assert await _find(hub, CONTACT, "Zimmermann") == []
    assert await _find(hub, CONTACT, "0221 7322098") == []


async def test_a_search_finds_what_people_type_whole_words_first(hub: Hub, tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_text(DIRECTORY, encoding="utf-8")
    assert not (await import_directory(hub, tmp_path / "d.csv")).errors
    for typed in (
        "Zimmermann",
        "zimmerm",
        "Jürgen",
        "juergen",
        "jurgen zimm",
        "jz@elbe-logistik.de",
    ):
        assert await _find(hub, CONTACT, typed) == ["Jürgen Zimmermann"], typed
    for typed in ("+49 221 7322098", "0221 7322098", "0221/73 22 098", "221 732"):
        assert await _find(hub, CONTACT, typed) == ["Jürgen Zimmermann"], typed
    assert await _find(hub, CONTACT, "Eva") == ["Eva Kurz", "Eva Kurz-Berger"]
    assert await _find(hub, CONTACT, "lang") == ["Zoe Lang", "Anna Langer"]  # whole word first
    assert await _find(hub, CONTACT, "Zimmermann Ohlsen") == []  # every word must match
    # "Zimmer": no whole word of either account; "zimmerei" is a whole word of Alster's name.
    assert await _find(hub, ACCOUNT, "zimmerei") == ["Alster Zimmerei AG"]
    assert await _find(hub, ACCOUNT, "elbe-logistik") == ["Elbe Logistik GmbH"]
    assert await _find(hub, ACCOUNT, "AG") == ["Alster Zimmerei AG", "Isar Maschinenbau AG"]
    assert await _find(hub, ACCOUNT, "Alster AG") == ["Alster Zimmerei AG"]
    assert await _find(hub, ACCOUNT, "Kurz") == []


async def test_a_record_is_picked_by_what_people_type(hub: Hub, tmp_path: Path) -> None:
    """Forms name records as people know them (hub.search.one_record): one match is it, a
    whole name among several matches is it, anything else is refused with the candidates."""
    (tmp_path / "d.csv").write_text(DIRECTORY, encoding="utf-8")
    assert not (await import_directory(hub, tmp_path / "d.csv")).errors
    _, contacts = await _ids(hub)
    async with hub.reads() as session:
        assert (
            await one_record(hub, session, CONTACT, "Zimmermann") == contacts["Jürgen Zimmermann"]
        )
        assert (
            await one_record(hub, session, CONTACT, "0221 7322098") == contacts["Jürgen Zimmermann"]
        )
        assert await one_record(hub, session, CONTACT, "eva kurz") == contacts["Eva Kurz"]
        with pytest.raises(NotOneRecord, match=r"several contacts \(Eva Kurz, Eva Kurz-Berger\)"):
            await one_record(hub, session, CONTACT, "Eva")
        with pytest.raises(NotOneRecord, match="No account matches 'Nordwind'"):
            await one_record(hub, session, ACCOUNT, "Nordwind")
