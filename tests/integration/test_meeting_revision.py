"""A meeting moved, re-invited or cancelled by its organizer is revised in place: time (and
every index copy of it), parties and their answers, attributions, text, the cancelled mark;
an older SEQUENCE never overwrites a newer one. SQLite, or PostgreSQL in CI."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select

from hub.admin import add_connector, import_directory
from hub.bootstrap import Hub
from hub.pipeline import sync_all
from hub.policy import Viewer, read_scope
from storage.fulltext import search_ids
from storage.tables import (
    AttributionRow,
    InteractionRow,
    ParticipantRow,
    SourceRow,
)

DATA = Path(__file__).parent.parent / "data"


def ics(
    *,
    sequence: int,
    start: str = "20240111T090000Z",
    end: str = "20240111T100000Z",
    summary: str = "Jahresgespräch",
    attendee: str = "j.ohlsen@elbe-logistik.de",
    partstat: str = "NEEDS-ACTION",
    status: str = "CONFIRMED",
) -> str:
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\n"
        f"UID:move-1@ourco.example\r\nDTSTAMP:20240101T000000Z\r\nSEQUENCE:{sequence}\r\n"
        f"STATUS:{status}\r\nDTSTART:{start}\r\nDTEND:{end}\r\nSUMMARY:{summary}\r\n"
        "ORGANIZER;CN=Anna:mailto:anna@ourco.example\r\n"
        f"ATTENDEE;PARTSTAT={partstat}:mailto:{attendee}\r\n"
        "END:VEVENT\r\nEND:VCALENDAR\r\n"
    )


async def _sync(hub: Hub, path: Path, text: str) -> int:
    path.write_text(text, encoding="utf-8")
    (report,) = await sync_all(hub, ["team"])
    assert report.error == "", report.error
    return report.new


async def _state(hub: Hub) -> dict[str, object]:
    async with hub.sessions() as session:
        (row,) = (await session.execute(select(InteractionRow))).scalars().all()
        copies = {
            "sources": set((await session.execute(select(SourceRow.occurred_at))).scalars()),
            "participants": set(
                (await session.execute(select(ParticipantRow.occurred_at))).scalars()
            ),
            "attributions": set(
                (await session.execute(select(AttributionRow.occurred_at))).scalars()
            ),
        }
        accounts = set((await session.execute(select(AttributionRow.account_id))).scalars())
        scope = read_scope(Viewer.of("anna@ourco.example", "sales"))
        found = await search_ids(session, scope, "Preisrunde", [], None, 10)
        return {
            "id": row.id,
            "at": row.occurred_at,
            "ends": row.ends_at,
            "subject": row.subject,
            "extra": row.extra,
            "parties": sorted(p.address for p in row.participants),
            "copies": copies,
            "accounts": accounts,
            "found": list(found),
        }


async def test_a_moved_reinvited_and_cancelled_meeting_is_revised_in_place(
    hub: Hub, tmp_path: Path
) -> None:
    await import_directory(hub, DATA / "directory.csv")
    path = tmp_path / "team.ics"
    path.write_text(ics(sequence=0), encoding="utf-8")
    await add_connector(hub, "ics", "team", {"path": str(path)}, {})
    assert await _sync(hub, path, ics(sequence=0)) == 1
    first = await _state(hub)
    assert first["accounts"] == {1}  # Elbe Logistik
    assert first["extra"]["status"] == "confirmed"  # type: ignore[index]

    # Moved by a day, renamed, the attendee replaced by someone of another customer, who accepts.
    moved = ics(
        sequence=1,
        start="20240112T130000Z",
        end="20240112T140000Z",
        summary="Preisrunde",
        attendee="einkauf@isar-mb.de",
        partstat="ACCEPTED",
    )
    assert await _sync(hub, path, moved) == 0
    second = await _state(hub)
    at = datetime(2024, 1, 12, 13, tzinfo=UTC)
    assert second["id"] == first["id"]
    assert (second["at"], second["ends"], second["subject"]) == (
        at,
        datetime(2024, 1, 12, 14, tzinfo=UTC),
        "Preisrunde",
    )
    assert second["parties"] == ["anna@ourco.example", "einkauf@isar-mb.de"]
    assert second["extra"]["answers"] == {"einkauf@isar-mb.de": "accepted"}  # type: ignore[index]
    assert second["accounts"] == {2}  # Isar Maschinenbau now, Elbe gone
    assert second["copies"] == {"sources": {at}, "participants": {at}, "attributions": {at}}
    assert second["found"] == [first["id"]]  # the new subject is searched, under the new time

    cancelled = moved.replace("SEQUENCE:1", "SEQUENCE:2").replace("CONFIRMED", "CANCELLED")
    await _sync(hub, path, cancelled)
    third = await _state(hub)
    assert third["extra"]["status"] == "cancelled"  # type: ignore[index]
    assert third["extra"]["sequence"] == 2  # type: ignore[index]
    assert third["accounts"] == {2}, "a cancelled meeting stays on the customer's timeline"

    # A stale copy (SEQUENCE 1) delivered again does not undo the cancellation.
    await _sync(hub, path, moved)
    fourth = await _state(hub)
    assert fourth["extra"]["status"] == "cancelled"  # type: ignore[index]
    assert fourth["at"] == at
