"""Meetings and answers that arrive out of order (issue 16).

The same meeting sits in two users' calendars (two ics sources, or one source's calendar that
holds two versions of it): whichever delivers the newer SEQUENCE first revises the meeting,
and an older copy arriving later never undoes it. An attendee's iMIP reply synced before its
meeting, or before the revision it answers, is kept and given to the meeting when that is
stored. Real sources: ics files and an eml mailbox, and raw events pushed through
hub.pipeline.ingest_pushed. SQLite, or PostgreSQL in CI.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, event, func, insert, select, text

from hub.admin import add_connector, import_directory
from hub.bootstrap import Hub
from hub.meeting_replies import NOT_LOGGED
from hub.model import RawItem
from hub.pipeline import SyncReport, ingest_pushed, sync_all
from hub.policy import Viewer, read_scope
from hub.privacy import erase_subject
from storage import db
from storage.fulltext import search_ids
from storage.meeting_answers import answer_from_replies
from storage.tables import InteractionRow, MeetingReplyRow, SourceRow
from tests.file_sources import calendar, reply_mail
from tests.rows import item_row

DATA = Path(__file__).parent.parent / "data"
UID = "review-3@ourco.example"
JANA, PIET = "j.ohlsen@elbe-logistik.de", "piet.brandt@gmail.com"
FIRST_AT = datetime(2024, 1, 11, 9, tzinfo=UTC)
MOVED_AT = datetime(2024, 1, 12, 13, tzinfo=UTC)


def vevent(
    *,
    sequence: int,
    moved: bool = False,
    jana: str = "NEEDS-ACTION",
    piet: str = "NEEDS-ACTION",
    description: str = "",
) -> str:
    """The meeting as one calendar holds it: revision 1 and later moved a day and renamed."""
    start = MOVED_AT if moved else FIRST_AT
    stamp = "%Y%m%dT%H%M%SZ"
    return (
        f"BEGIN:VEVENT\r\nUID:{UID}\r\nDTSTAMP:20240101T000000Z\r\nSEQUENCE:{sequence}\r\n"
        f"DTSTART:{start.strftime(stamp)}\r\n"
        f"DTEND:{(start + timedelta(hours=1)).strftime(stamp)}\r\n"
        f"SUMMARY:{'Preisrunde' if moved else 'Jahresgespräch'}\r\n"
        f"DESCRIPTION:{description}\r\n"
        "ORGANIZER;CN=Anna:mailto:anna@ourco.example\r\n"
        f"ATTENDEE;PARTSTAT={jana}:mailto:{JANA}\r\n"
        f"ATTENDEE;PARTSTAT={piet}:mailto:{PIET}\r\n"
        "END:VEVENT\r\n"
    )


async def _calendar(hub: Hub, tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.ics"
    path.write_bytes(calendar())
    await add_connector(hub, "ics", name, {"path": str(path)}, {})
    return path


async def _sync(hub: Hub, name: str, path: Path, content: bytes) -> SyncReport:
    path.write_bytes(content)
    (report,) = await sync_all(hub, [name])
    assert report.error == "", report.error
    return report


async def _meeting(hub: Hub) -> dict[str, Any]:
    """The one meeting as the timeline, its sources' index copies and the search see it."""
    async with hub.sessions() as session:
        meetings = select(InteractionRow).where(InteractionRow.channel == "meeting")
        row = (await session.execute(meetings)).scalar_one()
        sources = await session.execute(select(SourceRow.connector, SourceRow.occurred_at))
        scope = read_scope(Viewer.of("anna@ourco.example", "sales"))
        return {
            "at": row.occurred_at,
            "subject": row.subject,
            "sequence": row.extra.get("sequence"),
            "answers": row.extra.get("answers"),
            "sources": sorted((name, at) for name, at in sources),
            "found": list(await search_ids(session, scope, row.subject, [], None, 10)),
            "id": row.id,
        }


def _newest(meeting: dict[str, Any], *calendars: str) -> None:
    assert (meeting["at"], meeting["subject"], meeting["sequence"]) == (
        MOVED_AT,
        "Preisrunde",
        1,
    )
    assert meeting["sources"] == [(name, MOVED_AT) for name in calendars]
    assert meeting["found"] == [meeting["id"]], "searched by its new subject"


@pytest.mark.parametrize("first", ["anna-cal", "tom-cal"])
async def test_the_newest_revision_wins_whichever_calendar_delivers_it_first(
    hub: Hub, tmp_path: Path, first: str
) -> None:
    """Anna's calendar still holds revision 0, Tom's has revision 1 (moved and renamed)."""
    await import_directory(hub, DATA / "directory.csv")
    paths = {name: await _calendar(hub, tmp_path, name) for name in ("anna-cal", "tom-cal")}
    held = {"anna-cal": vevent(sequence=0), "tom-cal": vevent(sequence=1, moved=True)}
    second = "tom-cal" if first == "anna-cal" else "anna-cal"
    assert (await _sync(hub, first, paths[first], calendar(held[first]))).new == 1
    report = await _sync(hub, second, paths[second], calendar(held[second]))
    assert (report.new, report.duplicates) == (0, 1), "one meeting, one more source"
    _newest(await _meeting(hub), "anna-cal", "tom-cal")

    # Anna's calendar changes its old copy without a new SEQUENCE (Jana's answer as it sees
    # it): a revision older than the stored one, it undoes nothing.
    stale = calendar(vevent(sequence=0, jana="DECLINED"))
    assert (await _sync(hub, "anna-cal", paths["anna-cal"], stale)).fetched == 1
    after = await _meeting(hub)
    _newest(after, "anna-cal", "tom-cal")
    assert after["answers"] == {JANA: "needs-action", PIET: "needs-action"}


async def test_another_calendars_copy_of_the_same_revision_keeps_what_is_stored(
    hub: Hub, tmp_path: Path
) -> None:
    """Same SEQUENCE, different answers: which copy is newer nothing says, so the stored one
    stays; Tom's calendar changing its own copy later is newer news, and revises it."""
    await import_directory(hub, DATA / "directory.csv")
    anna = await _calendar(hub, tmp_path, "anna-cal")
    tom = await _calendar(hub, tmp_path, "tom-cal")
    await _sync(hub, "anna-cal", anna, calendar(vevent(sequence=1, moved=True, jana="ACCEPTED")))
    await _sync(hub, "tom-cal", tom, calendar(vevent(sequence=1, moved=True)))
    assert (await _meeting(hub))["answers"] == {JANA: "accepted", PIET: "needs-action"}

    await _sync(hub, "tom-cal", tom, calendar(vevent(sequence=1, moved=True, piet="DECLINED")))
    assert (await _meeting(hub))["answers"] == {JANA: "needs-action", PIET: "declined"}


@pytest.mark.parametrize("order", ["older first", "newer first"])
async def test_two_versions_in_one_batch_the_newer_is_stored(hub: Hub, order: str) -> None:
    """A calendar that holds two versions of one event (an export with both, or the event in
    two calendars of one source), pushed in one batch."""
    await import_directory(hub, DATA / "directory.csv")
    await add_connector(hub, "ics", "team", {"path": "/nonexistent/team.ics"}, {})
    versions = [vevent(sequence=0), vevent(sequence=1, moved=True)]
    if order == "newer first":
        versions.reverse()
    raws = [RawItem(UID, v.encode(), "text/calendar") for v in versions]
    report = await ingest_pushed(hub, "team", raws)
    assert (report.new, report.duplicates, report.quarantined) == (1, 1, 0)
    _newest(await _meeting(hub), "team")


async def _replies(hub: Hub, tmp_path: Path, mails: list[str]) -> SyncReport:
    inbox = tmp_path / "mail"
    inbox.mkdir()
    for n, mail in enumerate(mails, 1):
        (inbox / f"{n}.eml").write_text(mail, encoding="utf-8")
    await add_connector(
        hub, "eml", "inbox", {"path": str(inbox), "owner": "anna@ourco.example"}, {}
    )
    (report,) = await sync_all(hub, ["inbox"])
    assert (report.new, report.error) == (len(mails), "")
    return report


async def test_a_reply_synced_before_its_meeting_gives_the_meeting_its_answer(
    hub: Hub, tmp_path: Path
) -> None:
    await import_directory(hub, DATA / "directory.csv")
    await _replies(
        hub,
        tmp_path,
        [
            reply_mail(JANA, JANA, "ACCEPTED", 1, 1, uid=UID),
            reply_mail(PIET, PIET, "DECLINED", 0, 2, uid=UID),  # answers an older revision: stale
            reply_mail(JANA, PIET, "TENTATIVE", 1, 3, uid=UID),  # for someone else: never counts
        ],
    )
    async with hub.sessions() as session:
        mails = (await session.execute(select(InteractionRow.not_logged))).scalars().all()
    assert mails == [NOT_LOGGED] * 3, "stored, not logged, before any meeting is"

    team = await _calendar(hub, tmp_path, "team")
    assert (await _sync(hub, "team", team, calendar(vevent(sequence=1, moved=True)))).new == 1
    assert (await _meeting(hub))["answers"] == {JANA: "accepted", PIET: "needs-action"}


async def test_a_kept_reply_survives_revisions_until_its_revision_is_outdated(
    hub: Hub, tmp_path: Path
) -> None:
    """A revision replaces the answers its calendar gives; a reply kept for it fills in where
    the calendar knows none, a calendar that knows one (it arrived last) keeps it, and a new
    SEQUENCE makes the reply stale."""
    await import_directory(hub, DATA / "directory.csv")
    team = await _calendar(hub, tmp_path, "team")
    await _sync(hub, "team", team, calendar(vevent(sequence=0)))
    # Jana answers revision 1 before the calendar has it: her answer goes to revision 0 now...
    await _replies(hub, tmp_path, [reply_mail(JANA, JANA, "ACCEPTED", 1, 1, uid=UID)])
    assert (await _meeting(hub))["answers"] == {JANA: "accepted", PIET: "needs-action"}
    # ...and stays when revision 1 arrives from a calendar that never saw her mail.
    await _sync(hub, "team", team, calendar(vevent(sequence=1, moved=True)))
    meeting = await _meeting(hub)
    assert (meeting["sequence"], meeting["answers"]) == (
        1,
        {JANA: "accepted", PIET: "needs-action"},
    )
    # The calendar later knows an answer of hers (a later one it processed): it arrived last.
    await _sync(hub, "team", team, calendar(vevent(sequence=1, moved=True, jana="DECLINED")))
    assert (await _meeting(hub))["answers"] == {JANA: "declined", PIET: "needs-action"}
    # Revision 2 asks everyone again: her reply to revision 1 no longer counts.
    await _sync(hub, "team", team, calendar(vevent(sequence=2, moved=True)))
    assert (await _meeting(hub))["answers"] == {JANA: "needs-action", PIET: "needs-action"}


async def test_an_erased_senders_kept_answer_goes_with_the_redacted_mail(
    hub: Hub, tmp_path: Path
) -> None:
    """Jana's reply went to a second customer too: the mail stays for them, redacted, and the
    answer kept of it is hers: gone."""
    await import_directory(hub, DATA / "directory.csv")
    cc = reply_mail(JANA, JANA, "ACCEPTED", 1, 1, uid=UID).replace(
        "To: anna@ourco.example\r\n", "To: anna@ourco.example\r\nCc: einkauf@isar-mb.de\r\n"
    )
    await _replies(hub, tmp_path, [cc])
    assert await _count(hub, MeetingReplyRow) == 1
    counts = await erase_subject(hub, JANA, "dpo@ourco.example")
    assert counts.items_redacted == 1
    assert await _count(hub, MeetingReplyRow) == 0


async def _count(hub: Hub, table: Any) -> int:
    async with hub.sessions() as session:
        return int((await session.execute(select(func.count()).select_from(table))).scalar_one())


async def test_a_meetings_replies_are_an_index_range_of_its_uid(hub: Hub) -> None:
    """Thousands of kept replies: a meeting stored reads its own UID's, not the table."""
    at = datetime(2024, 1, 9, tzinfo=UTC)
    async with hub.sessions() as session, session.begin():
        await session.execute(insert(InteractionRow), [item_row(n, at) for n in range(1, 3001)])
        meeting = item_row(5000, at, "meeting") | {"dedupe_key": "ics:m-7", "thread_id": "ics:m-7"}
        await session.execute(insert(InteractionRow), [meeting])
        await session.execute(
            insert(MeetingReplyRow),
            [
                {
                    "interaction_id": n,
                    "uid": f"m-{n % 1000}",
                    "occurrence": None,
                    "sequence": 0,
                    "address": f"p{n}@x.example",
                    "answer": "accepted",
                    "sent_at": at,
                }
                for n in range(1, 3001)
            ],
        )
    sent: list[tuple[str, Any]] = []

    def record(_c: Any, _cur: Any, statement: str, params: Any, *_: Any) -> None:
        if "FROM meeting_replies" in statement:
            sent.append((statement, params))

    event.listen(hub.engine.sync_engine, "before_cursor_execute", record)
    try:
        async with hub.sessions() as session:
            await answer_from_replies(session, [5000])
    finally:
        event.remove(hub.engine.sync_engine, "before_cursor_execute", record)
    assert len(sent) == 1, sent
    async with hub.engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        await connection.exec_driver_sql("ANALYZE")
        if not sqlite:
            await connection.exec_driver_sql("SET enable_seqscan = off")
        explain = "EXPLAIN QUERY PLAN " if sqlite else "EXPLAIN (FORMAT JSON) "
        rows = (await connection.exec_driver_sql(explain + sent[0][0], sent[0][1])).all()
    plan = "\n".join(str(row[-1]) for row in rows) if sqlite else json.dumps(rows[0][0])
    assert "ix_meeting_replies_uid" in plan, plan
    assert "SCAN" not in plan and "Seq Scan" not in plan, plan


def test_upgrade_to_0019_keeps_the_stored_replies_senders_answers(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/old.db"
    db.upgrade(url, "0018")
    engine = create_engine(url)
    facts = {
        "uid": UID,
        "occurrence": None,
        "sequence": 1,
        "answers": {JANA: "accepted", PIET: "declined"},
    }
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO interactions (id, dedupe_key, channel, direction, occurred_at,"
                ' subject, snippet, in_reply_to, "references", not_logged, extra) VALUES'
                " (1, 'mid:<r1@x>', 'email', 'inbound', '2024-01-09 10:00:00', '', '', '[]',"
                " '[]', :not_logged, :extra), (2, 'mid:<m2@x>', 'email', 'inbound',"
                " '2024-01-09 11:00:00', '', '', '[]', '[]', '', :extra)"
            ),
            {"not_logged": NOT_LOGGED, "extra": json.dumps({"imip_reply": facts})},
        )
        connection.execute(
            text(
                "INSERT INTO participants (interaction_id, role, kind, address, normalized, name)"
                f" VALUES (1, 'from', 'email', '{JANA}', '{JANA}', ''),"
                " (1, 'to', 'email', 'anna@ourco.example', 'anna@ourco.example', '')"
            )
        )
    db.upgrade(url)
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT interaction_id, uid, occurrence, sequence, address, answer"
                " FROM meeting_replies"
            )
        ).all()
    engine.dispose()
    assert [tuple(r) for r in rows] == [(1, UID, None, 1, JANA, "accepted")]
