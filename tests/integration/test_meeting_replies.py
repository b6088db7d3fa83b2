"""An attendee's iMIP reply by mail (RFC 6047: `text/calendar; method=REPLY`) updates that
attendee's answer on the stored meeting, and the mail is not logged as a conversation. A
reply cannot answer for someone else, nor for a stale SEQUENCE. SQLite, or PostgreSQL in CI."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from hub.admin import add_connector, import_directory
from hub.bootstrap import Hub
from hub.meeting_replies import NOT_LOGGED
from hub.pipeline import sync_all
from storage.tables import AttributionRow, InteractionRow
from tests.file_sources import reply_mail

DATA = Path(__file__).parent.parent / "data"
UID = "offer-7@ourco.example"
INVITE = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\n"
    f"UID:{UID}\r\nDTSTAMP:20240101T000000Z\r\nSEQUENCE:1\r\n"
    "DTSTART:20240111T090000Z\r\nDTEND:20240111T100000Z\r\nSUMMARY:Angebot\r\n"
    "ORGANIZER;CN=Anna:mailto:anna@ourco.example\r\n"
    "ATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:j.ohlsen@elbe-logistik.de\r\n"
    "ATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:piet.brandt@gmail.com\r\n"
    "END:VEVENT\r\nEND:VCALENDAR\r\n"
)


async def test_a_reply_by_mail_answers_for_its_sender_and_is_not_logged(
    hub: Hub, tmp_path: Path
) -> None:
    await import_directory(hub, DATA / "directory.csv")
    (tmp_path / "team.ics").write_text(INVITE, encoding="utf-8")
    mail = tmp_path / "mail"
    mail.mkdir()
    jana = "j.ohlsen@elbe-logistik.de"
    (mail / "1.eml").write_text(reply_mail(jana, jana, "ACCEPTED", 1, 1, uid=UID), encoding="utf-8")
    # Someone else answering for Piet, and Jana answering an older revision: both ignored.
    forged = reply_mail(jana, "piet.brandt@gmail.com", "DECLINED", 1, 2, uid=UID)
    (mail / "2.eml").write_text(forged, encoding="utf-8")
    (mail / "3.eml").write_text(reply_mail(jana, jana, "DECLINED", 0, 3, uid=UID), encoding="utf-8")
    await add_connector(hub, "ics", "team", {"path": str(tmp_path / "team.ics")}, {})
    await add_connector(hub, "eml", "inbox", {"path": str(mail), "owner": "anna@ourco.example"}, {})
    reports = await sync_all(hub, ["team", "inbox"])
    assert [(r.new, r.error) for r in reports] == [(1, ""), (3, "")]

    async with hub.sessions() as session:
        meeting = (
            await session.execute(select(InteractionRow).where(InteractionRow.channel == "meeting"))
        ).scalar_one()
        mails = (
            (await session.execute(select(InteractionRow).where(InteractionRow.channel == "email")))
            .scalars()
            .all()
        )
        linked = set(
            (
                await session.execute(
                    select(AttributionRow.interaction_id).where(AttributionRow.removed.is_(False))
                )
            ).scalars()
        )
    assert meeting.extra["answers"] == {jana: "accepted", "piet.brandt@gmail.com": "needs-action"}
    assert {m.not_logged for m in mails} == {NOT_LOGGED}
    assert NOT_LOGGED.startswith("bulk"), "listed in the owner's bulk tab"
    assert linked == {meeting.id}, "the reply mails are attributed to no customer"
