"""The review queue as a person works it: mail synced through the real pipeline raises the
questions, the queue shows them with suggestions, and one answer fixes every item of a sender,
past and future, and teaches the directory.

Runs on SQLite, and on PostgreSQL when CRMHUB_TEST_DATABASE_URL is set. The directory has two
Elbe contacts, and two accounts (Isar, Alster) that both list beide.example and both have a
contact with berater@consult.example, so one mbox and one call file raise every kind of case.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from hub.admin import add_connector, import_directory
from hub.bootstrap import Hub
from hub.pipeline import sync_all
from hub.policy import Role, Viewer, read_scope
from hub.review import ReviewEntry, Settlement, review_queue, settle_case
from storage import queries
from storage.directory import DirectoryError
from storage.tables import (
    AccountDomainRow,
    AccountRow,
    AttributionRow,
    AuditRow,
    ContactEmailRow,
    ContactPhoneRow,
    ContactRow,
    InteractionRow,
    ReviewIgnoredRow,
    ReviewItemRow,
)

DIRECTORY = """account,domains,contact,emails,phones,owner
Elbe Logistik GmbH,elbe-logistik.de,Jana Ohlsen,j.ohlsen@elbe-logistik.de,040 3344556,
Elbe Logistik GmbH,elbe-logistik.de,Piet Brandt,piet@elbe-logistik.de,0171 2233445,
Isar Maschinenbau AG,isar-mb.de;beide.example,Tom Rieger,tom@isar-mb.de;berater@consult.example,,
Alster AG,alster.example;beide.example,Eva Kurz,eva@alster.example;berater@consult.example,,
"""
ACTOR = "lea@ourco.example"


def _mail(key: str, sender: str, subject: str, day: int, body: str = "") -> str:
    return (
        f"From x Mon Jan  8 09:00:00 2024\n"
        f"From: {sender}\nTo: anna@ourco.example\nSubject: {subject}\n"
        f"Date: {day:02d} Jan 2024 09:00:00 +0100\nMessage-ID: <{key}@test>\n\n"
        f"{body or subject + '.'}\n\n"
    )


JANA_SIGNATURE = "Hallo Anna,\nanbei die Liste.\n\n-- \nJana Ohlsen\nTel. 040 3344556\n"
HANSEN_SIGNATURE = "Gruß\nK. Hansen\nwww.isar-mb.de\n"
MBOX = "".join(
    (
        _mail("jana-private-1", "jana.ohlsen84@gmail.com", "Liste", 8, JANA_SIGNATURE),
        _mail("jana-private-2", "Jana Ohlsen <Jana.Ohlsen84@gmail.com>", "Nachtrag", 9),
        _mail("lookalike", "Jana Ohlsen <jana.ohlsen@rechnung-sofort.example>", "Rechnung", 10),
        _mail("shared-domain", "einkauf@beide.example", "Anfrage", 11),
        _mail("shared-address", "Berater <berater@consult.example>", "Beratung", 12),
        _mail("hansen", "K. Hansen <k.hansen@gmx.de>", "Termin", 13, HANSEN_SIGNATURE),
        _mail("spam", "Max Muster <max.muster@web.de>", "Gewinn", 14),
    )
)
CDR = (
    '"","01719998887","201","from-external","","SIP/t-1","SIP/201-1","Dial","SIP/201",'
    '"2024-01-15 14:00:00","2024-01-15 14:00:03","2024-01-15 14:05:03",303,300,"ANSWERED",'
    '"DOCUMENTATION","1705327200.1",""\n'
)
LATER = "".join(
    (
        _mail("jana-private-3", "Jana Ohlsen <jana.ohlsen84@googlemail.com>", "Neu", 20),
        _mail("spam-2", "Max Muster <max.muster@web.de>", "Gewinn 2", 21),
        _mail("shared-domain-2", "vertrieb@beide.example", "Angebot", 22),
        _mail("shared-address-2", "berater@consult.example", "Beratung 2", 23),
        _mail("hansen-2", "k.hansen@gmx.de", "Termin 2", 24),
    )
)

REVIEWER = Viewer("anna@ourco.example", Role.SALES)  # the mailbox is hers


@pytest.fixture
async def synced(hub: Hub, tmp_path: Path) -> Hub:
    (tmp_path / "d.csv").write_text(DIRECTORY, encoding="utf-8")
    (tmp_path / "mail.mbox").write_text(MBOX, encoding="utf-8")
    (tmp_path / "Master.csv").write_text(CDR, encoding="utf-8")
    result = await import_directory(hub, tmp_path / "d.csv")
    assert not result.errors, result.errors
    mine = {"owner": REVIEWER.email}
    await add_connector(hub, "mbox", "mail", {"path": str(tmp_path / "mail.mbox"), **mine}, {})
    calls = {"path": str(tmp_path / "Master.csv"), **mine}
    await add_connector(hub, "asterisk-cdr", "calls", calls, {})
    await _sync(hub)
    return hub


async def _sync(hub: Hub) -> None:
    reports = await sync_all(hub)
    assert all(not r.errors for r in reports), [r.error for r in reports]


async def _sync_later(hub: Hub, tmp_path: Path) -> None:
    with (tmp_path / "mail.mbox").open("a", encoding="utf-8") as mbox:
        mbox.write(LATER)
    await _sync(hub)


async def _ids(hub: Hub) -> tuple[dict[str, int], dict[str, int], dict[str, int]]:
    """Account ids by name, contact ids by name, item ids by Message-ID key ("call")."""
    async with hub.sessions() as session:
        accounts = {a.name: a.id for a in (await session.execute(select(AccountRow))).scalars()}
        contacts = {c.name: c.id for c in (await session.execute(select(ContactRow))).scalars()}
        items = {
            (row.message_id or "call").strip("<>").removesuffix("@test"): row.id
            for row in (await session.execute(select(InteractionRow))).scalars()
        }
    return accounts, contacts, items


async def _links(hub: Hub, item: int) -> list[tuple[int, int | None]]:
    """(account, contact) of the live attributions of one item."""
    async with hub.sessions() as session:
        rows = await session.execute(
            select(AttributionRow).where(
                AttributionRow.interaction_id == item, AttributionRow.removed.is_(False)
            )
        )
        return sorted((a.account_id, a.contact_id) for a in rows.scalars())


async def _queue(hub: Hub, kind: str | None = None) -> dict[tuple[str, str], ReviewEntry]:
    page = await review_queue(hub, REVIEWER, kind, None, 100)
    assert page.next_cursor is None
    return {(e.case.kind, e.case.key): e for e in page.items}


async def _open_rows(hub: Hub) -> set[tuple[int, str, str]]:
    async with hub.sessions() as session:
        rows = await session.execute(
            select(ReviewItemRow.interaction_id, ReviewItemRow.kind, ReviewItemRow.key).where(
                ReviewItemRow.settled_at.is_(None)
            )
        )
        return {tuple(row) for row in rows}  # type: ignore[misc]


async def _audit(hub: Hub) -> list[AuditRow]:
    async with hub.sessions() as session:
        query = select(AuditRow).where(AuditRow.action.startswith("review."))
        return list((await session.execute(query.order_by(AuditRow.id))).scalars())


async def _contact_timeline(hub: Hub, contact: int) -> set[int]:
    async with hub.sessions() as session:
        page = await queries.contact_timeline(
            session, read_scope(REVIEWER), contact, queries.TimelineFilter(), None, 200
        )
    return {row.id for row in page.items}


async def test_sync_opens_one_case_per_question_with_sensible_suggestions(synced: Hub) -> None:
    accounts, contacts, items = await _ids(synced)
    elbe, isar, alster = (
        accounts[n] for n in ("Elbe Logistik GmbH", "Isar Maschinenbau AG", "Alster AG")
    )
    queue = await _queue(synced)
    assert set(queue) == {
        ("unknown-sender", "janaohlsen84@gmail.com"),
        ("name-lookalike", "janaohlsen84@gmail.com"),  # Nachtrag's display name is hers
        ("name-lookalike", "jana.ohlsen@rechnung-sofort.example"),
        ("shared-domain", "beide.example"),
        ("shared-address", "berater@consult.example"),
        ("unknown-sender", "k.hansen@gmx.de"),
        ("unknown-sender", "max.muster@web.de"),
        ("unknown-sender", "+491719998887"),
    }
    # Most recently active first: the call of 15 January, then the spam of the 14th.
    assert [(e.case.kind, e.case.key) for e in queue.values()][:2] == [
        ("unknown-sender", "+491719998887"),
        ("unknown-sender", "max.muster@web.de"),
    ]

    jana_private = queue[("unknown-sender", "janaohlsen84@gmail.com")]
    assert jana_private.case.count == 2, "both mails of the sender are one case"
    assert [i.id for i in jana_private.items] == [items["jana-private-2"], items["jana-private-1"]]
    top = jana_private.suggestions[0]
    assert (top.account_id, top.contact_id, top.score) == (elbe, contacts["Jana Ohlsen"], 100)
    assert "+49403344556" in top.reason, "her signature's number is the evidence"

    lookalike = queue[("name-lookalike", "jana.ohlsen@rechnung-sofort.example")]
    assert lookalike.case.name == "Jana Ohlsen"
    assert lookalike.case.candidates == (contacts["Jana Ohlsen"],)
    assert [s.contact_id for s in lookalike.suggestions] == [contacts["Jana Ohlsen"]]
    assert await _links(synced, items["lookalike"]) == [], "a name alone never attributes"
    assert items["lookalike"] not in await _contact_timeline(synced, contacts["Jana Ohlsen"])

    shared_domain = queue[("shared-domain", "beide.example")]
    assert [(s.account_id, s.contact_id) for s in shared_domain.suggestions] == [
        (isar, None),
        (alster, None),
    ]
    assert await _links(synced, items["shared-domain"]) == sorted([(isar, None), (alster, None)])

    shared_address = queue[("shared-address", "berater@consult.example")]
    assert {s.contact_id for s in shared_address.suggestions} == {
        contacts["Tom Rieger"],
        contacts["Eva Kurz"],
    }
    assert await _links(synced, items["shared-address"]) == sorted(
        [(isar, contacts["Tom Rieger"]), (alster, contacts["Eva Kurz"])]
    )

    hansen = queue[("unknown-sender", "k.hansen@gmx.de")]
    assert [(s.account_id, s.contact_id, s.score) for s in hansen.suggestions] == [
        (isar, None, 85)
    ], "his signature names www.isar-mb.de"
    assert queue[("unknown-sender", "+491719998887")].suggestions == []

    only_domains = await _queue(synced, "shared-domain")
    assert list(only_domains) == [("shared-domain", "beide.example")]
    with pytest.raises(ValueError, match="kind"):
        await review_queue(synced, REVIEWER, "no-such-kind", None, 10)


async def test_paging_walks_every_case_once_even_while_people_settle(synced: Hub) -> None:
    everything = list(await _queue(synced))
    seen: list[tuple[str, str]] = []
    page = await review_queue(synced, REVIEWER, None, None, 2)
    for _ in range(10):
        seen += [(e.case.kind, e.case.key) for e in page.items]
        for entry in page.items:  # settle what this page showed before asking for the next
            await settle_case(synced, key=entry.case.key, settlement=Settlement.IGNORE, actor=ACTOR)
        if page.next_cursor is None:
            break
        page = await review_queue(synced, REVIEWER, None, page.next_cursor, 2)
    assert seen == everything
    assert await _queue(synced) == {}


async def test_assigning_an_address_teaches_the_contact_and_moves_past_and_later_mail(
    synced: Hub, tmp_path: Path
) -> None:
    accounts, contacts, items = await _ids(synced)
    elbe, jana = accounts["Elbe Logistik GmbH"], contacts["Jana Ohlsen"]
    past = {items["jana-private-1"], items["jana-private-2"]}
    assert not past & await _contact_timeline(synced, jana)

    outcome = await settle_case(
        synced,
        key="Jana.Ohlsen84@GMail.com",  # as a script might send it: the key is normalised
        settlement=Settlement.ASSIGN,
        actor=ACTOR,
        contact_id=jana,
    )

    assert outcome.settled == 3 and outcome.rematched.changed == 2
    async with synced.sessions() as session:
        emails = await session.execute(
            select(ContactEmailRow.address).where(ContactEmailRow.contact_id == jana)
        )
        assert sorted(emails.scalars()) == ["j.ohlsen@elbe-logistik.de", "janaohlsen84@gmail.com"]
    for item in past:
        assert await _links(synced, item) == [(elbe, jana)]
    assert past <= await _contact_timeline(synced, jana)
    assert ("unknown-sender", "janaohlsen84@gmail.com") not in await _queue(synced)
    (audit,) = await _audit(synced)
    assert (audit.actor, audit.action, audit.interaction_id) == (ACTOR, "review.assign", None)
    assert audit.before == {"key": "janaohlsen84@gmail.com", "contacts": []}
    assert audit.after["contact_id"] == jana and audit.after["contacts"] == [jana]
    assert audit.after["questions_settled"] == 3

    await _sync_later(synced, tmp_path)
    _, _, items = await _ids(synced)
    assert await _links(synced, items["jana-private-3"]) == [(elbe, jana)], "googlemail is gmail"
    assert not {i for i, _, _ in await _open_rows(synced)} & {items["jana-private-3"]}


async def test_assigning_a_number_attributes_the_call(synced: Hub) -> None:
    accounts, contacts, items = await _ids(synced)
    piet = contacts["Piet Brandt"]
    outcome = await settle_case(
        synced, key="0171 9998887", settlement=Settlement.ASSIGN, actor=ACTOR, contact_id=piet
    )
    assert outcome.settled == 1
    assert await _links(synced, items["call"]) == [(accounts["Elbe Logistik GmbH"], piet)]
    async with synced.sessions() as session:
        phones = await session.execute(
            select(ContactPhoneRow.e164).where(ContactPhoneRow.contact_id == piet)
        )
        assert sorted(phones.scalars()) == ["+491712233445", "+491719998887"]


async def test_a_lookalike_assigned_to_the_contact_joins_her_timeline(synced: Hub) -> None:
    accounts, contacts, items = await _ids(synced)
    jana = contacts["Jana Ohlsen"]
    await settle_case(
        synced,
        key="jana.ohlsen@rechnung-sofort.example",
        settlement=Settlement.ASSIGN,
        actor=ACTOR,
        contact_id=jana,
    )
    assert await _links(synced, items["lookalike"]) == [(accounts["Elbe Logistik GmbH"], jana)]
    assert items["lookalike"] in await _contact_timeline(synced, jana)


async def test_a_shared_domain_assigned_to_one_account_stays_there(
    synced: Hub, tmp_path: Path
) -> None:
    accounts, _, items = await _ids(synced)
    isar, alster = accounts["Isar Maschinenbau AG"], accounts["Alster AG"]
    outcome = await settle_case(
        synced, key="beide.example", settlement=Settlement.ASSIGN, actor=ACTOR, account_id=isar
    )
    assert outcome.settled == 1 and outcome.rematched.changed == 1
    assert await _links(synced, items["shared-domain"]) == [(isar, None)]
    async with synced.sessions() as session:
        owners = await session.execute(
            select(AccountDomainRow.account_id).where(AccountDomainRow.domain == "beide.example")
        )
        assert list(owners.scalars()) == [isar]
    (audit,) = await _audit(synced)
    assert audit.before["accounts"] == sorted([isar, alster]) and audit.after["accounts"] == [isar]

    await _sync_later(synced, tmp_path)
    _, _, items = await _ids(synced)
    assert await _links(synced, items["shared-domain-2"]) == [(isar, None)]
    assert "beide.example" not in {key for _, _, key in await _open_rows(synced)}


async def test_a_shared_address_assigned_to_one_contact_leaves_the_other(
    synced: Hub, tmp_path: Path
) -> None:
    accounts, contacts, items = await _ids(synced)
    eva, tom = contacts["Eva Kurz"], contacts["Tom Rieger"]
    await settle_case(
        synced,
        key="berater@consult.example",
        settlement=Settlement.ASSIGN,
        actor=ACTOR,
        contact_id=eva,
    )
    assert await _links(synced, items["shared-address"]) == [(accounts["Alster AG"], eva)]
    async with synced.sessions() as session:
        holders = await session.execute(
            select(ContactEmailRow.contact_id).where(
                ContactEmailRow.address == "berater@consult.example"
            )
        )
        assert list(holders.scalars()) == [eva]
    (audit,) = await _audit(synced)
    assert audit.before["contacts"] == sorted([eva, tom]) and audit.after["contacts"] == [eva]

    await _sync_later(synced, tmp_path)
    _, _, items = await _ids(synced)
    assert await _links(synced, items["shared-address-2"]) == [(accounts["Alster AG"], eva)]
    assert "berater@consult.example" not in {key for _, _, key in await _open_rows(synced)}


async def test_create_contact_makes_the_sender_a_contact_of_the_account(
    synced: Hub, tmp_path: Path
) -> None:
    accounts, _, items = await _ids(synced)
    isar = accounts["Isar Maschinenbau AG"]
    outcome = await settle_case(
        synced,
        key="k.hansen@gmx.de",
        settlement=Settlement.CREATE_CONTACT,
        actor=ACTOR,
        account_id=isar,
        name="  Klaus   Hansen ",
    )
    assert outcome.settled == 1
    async with synced.sessions() as session:
        (klaus,) = (
            (await session.execute(select(ContactRow).where(ContactRow.name == "Klaus Hansen")))
            .scalars()
            .all()
        )
        assert klaus.account_id == isar
        assert [e.address for e in klaus.emails] == ["k.hansen@gmx.de"]
    assert await _links(synced, items["hansen"]) == [(isar, klaus.id)]
    (audit,) = await _audit(synced)
    assert audit.action == "review.create-contact" and audit.after["contact_id"] == klaus.id

    await _sync_later(synced, tmp_path)
    _, _, items = await _ids(synced)
    assert await _links(synced, items["hansen-2"]) == [(isar, klaus.id)]
    assert "k.hansen@gmx.de" not in {key for _, _, key in await _open_rows(synced)}


async def test_ignoring_a_sender_means_later_mail_opens_no_case(
    synced: Hub, tmp_path: Path
) -> None:
    outcome = await settle_case(
        synced, key="max.muster@web.de", settlement=Settlement.IGNORE, actor=ACTOR
    )
    assert outcome.settled == 1
    assert ("unknown-sender", "max.muster@web.de") not in await _queue(synced)
    async with synced.sessions() as session:
        ignored = await session.execute(select(ReviewIgnoredRow.key, ReviewIgnoredRow.actor))
        assert ignored.all() == [("max.muster@web.de", ACTOR)]
    (audit,) = await _audit(synced)
    assert (audit.action, audit.after["settlement"]) == ("review.ignore", "ignore")

    await _sync_later(synced, tmp_path)
    _, _, items = await _ids(synced)
    assert await _links(synced, items["spam-2"]) == [], "ignored is not attributed either"
    assert not [row for row in await _open_rows(synced) if row[2] == "max.muster@web.de"]
    # Ignoring twice is harmless: still one ignored key, and one more audit entry.
    await settle_case(synced, key="max.muster@web.de", settlement=Settlement.IGNORE, actor=ACTOR)
    async with synced.sessions() as session:
        assert len((await session.execute(select(ReviewIgnoredRow))).all()) == 1
    assert [a.action for a in await _audit(synced)] == ["review.ignore", "review.ignore"]


async def test_one_answer_settles_every_kind_of_question_about_the_key(synced: Hub) -> None:
    """A free-mail sender with a contact's name is both unknown-sender and name-lookalike."""
    _, contacts, _ = await _ids(synced)
    kinds = {kind for _, kind, key in await _open_rows(synced) if key == "janaohlsen84@gmail.com"}
    assert kinds == {"unknown-sender", "name-lookalike"}
    outcome = await settle_case(
        synced,
        key="janaohlsen84@gmail.com",
        settlement=Settlement.ASSIGN,
        actor=ACTOR,
        contact_id=contacts["Jana Ohlsen"],
    )
    assert outcome.settled == 3, "two unknown-sender rows and one name-lookalike row"
    assert not [row for row in await _open_rows(synced) if row[2] == "janaohlsen84@gmail.com"]


@pytest.mark.parametrize(
    ("answer", "error", "message"),
    [
        ({"key": "max.muster@web.de", "settlement": Settlement.ASSIGN}, ValueError, "contact_id"),
        (
            {"key": "max.muster@web.de", "settlement": Settlement.ASSIGN, "contact_id": 999999},
            DirectoryError,
            "no contact 999999",
        ),
        ({"key": "beide.example", "settlement": Settlement.ASSIGN}, ValueError, "account_id"),
        (
            {"key": "beide.example", "settlement": Settlement.ASSIGN, "account_id": 1},
            DirectoryError,
            "does not list beide.example",
        ),
        (
            {"key": "k.hansen@gmx.de", "settlement": Settlement.CREATE_CONTACT, "name": "K"},
            ValueError,
            "account_id",
        ),
        (
            {"key": "k.hansen@gmx.de", "settlement": Settlement.CREATE_CONTACT, "account_id": 1},
            DirectoryError,
            "name",
        ),
        (
            {"key": "beide.example", "settlement": Settlement.CREATE_CONTACT, "account_id": 1},
            ValueError,
            "not a domain",
        ),
        ({"key": "nobody@", "settlement": Settlement.IGNORE}, ValueError, "not an email address"),
        ({"key": "12", "settlement": Settlement.IGNORE}, ValueError, "not a full phone number"),
        ({"key": "not a domain", "settlement": Settlement.IGNORE}, ValueError, "not a mail"),
    ],
)
async def test_an_answer_that_does_not_fit_changes_nothing(
    synced: Hub, answer: dict[str, object], error: type[Exception], message: str
) -> None:
    before = (await _ids(synced), await _open_rows(synced))
    with pytest.raises(error, match=message):
        await settle_case(synced, actor=ACTOR, **answer)  # type: ignore[arg-type]
    assert (await _ids(synced), await _open_rows(synced)) == before
    assert await _audit(synced) == []
    async with synced.sessions() as session:
        assert (await session.execute(select(ReviewIgnoredRow))).all() == []
