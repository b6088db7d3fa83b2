"""Data-subject requests on a real database (SQLite, or PostgreSQL in CI): the export holds
everything about the person, and after an erasure a byte search of the database files (WAL
and shared memory included) or of a pg_dump finds nothing of them."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import zipfile
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from hub.admin import add_connector
from hub.bootstrap import Hub
from hub.pipeline import sync_all
from hub.privacy import erase_subject, export_subject, plan_erasure
from storage import db
from storage.audit import record
from storage.packing import unpack
from storage.tables import (
    AttributionRow,
    AuditRow,
    BlobRow,
    ContactRow,
    ErasedIdentityRow,
    InteractionRow,
    QuarantineRow,
    ReviewItemRow,
)
from tests.integration.person import (
    ADDRESS,
    ATTACHMENT_PHRASE,
    BODY_PHRASE,
    E164,
    NAME,
    NEEDLES,
    OTHER_PHRASE,
    WRITTEN,
    store_person,
)


async def test_export_holds_items_contacts_raw_messages_attachments_and_quarantine(
    hub: Hub, tmp_path: Path
) -> None:
    await store_person(hub, tmp_path)
    out = tmp_path / "jane.zip"
    summary = await export_subject(hub, "Jane.Roe@Praxis-Example.de", out, "dpo@ourco.example")
    assert summary.as_json() == {
        "items": 2,
        "contacts": 2,
        "raw_messages": 2,
        "attachments": 1,
        "quarantined": 1,
    }
    assert out.stat().st_mode & 0o077 == 0
    with zipfile.ZipFile(out) as z:
        document = json.loads(z.read("export.json"))
        files = {name: z.read(name) for name in z.namelist()}
    assert document["identity"] == ADDRESS
    assert sorted(c["account"] for c in document["contacts"]) == ["Klinik Nord", "Praxis Dr. R."]
    assert {c["name"] for c in document["contacts"]} == {NAME}
    first, referral = document["items"]
    assert BODY_PHRASE in first["body"] and first["subject"] == f"Befund fuer {NAME}"
    assert {p["address"] for p in first["participants"]} == {ADDRESS, "anna@ourco.example"}
    assert {a["account"] for a in first["attributions"]} == {"Praxis Dr. R.", "Klinik Nord"}
    assert first["sources"][0]["connector"] == "mail"
    assert ATTACHMENT_PHRASE.encode() in files[first["attachments"][0]["file"]]
    assert b"\nFrom: Jane Roe <jane.roe@praxis-example.de>\n" in files[first["raw"]]
    assert referral["subject"] == f"Referral of {NAME}"
    (quarantined,) = document["quarantined"]
    assert BODY_PHRASE.encode() in files[quarantined["raw"]]
    assert OTHER_PHRASE not in json.dumps(document)  # the unrelated order is not hers
    async with hub.sessions() as session:
        audit = (
            (await session.execute(select(AuditRow).where(AuditRow.action == "privacy.export")))
            .scalars()
            .one()
        )
    assert (audit.action, audit.target, audit.actor) == (
        "privacy.export",
        ADDRESS,
        "dpo@ourco.example",
    )


async def test_by_number_as_written_into_an_open_file(hub: Hub, tmp_path: Path) -> None:
    await store_person(hub, tmp_path)
    buffer = io.BytesIO()
    summary = await export_subject(hub, WRITTEN, buffer, "admin@ourco.example")
    assert (summary.key, summary.items, summary.raw_messages, summary.contacts) == (E164, 1, 1, 2)
    with zipfile.ZipFile(buffer) as z:
        (call,) = json.loads(z.read("export.json"))["items"]
        assert z.read(call["raw"]).startswith(f'"","{WRITTEN}","201"'.encode())
    assert call["channel"] == "call" and call["participants"][0]["normalized"] == E164


async def test_erasure_leaves_no_byte_of_the_person(hub: Hub, tmp_path: Path) -> None:
    await store_person(hub, tmp_path)
    await export_subject(hub, ADDRESS, tmp_path / "before.zip", "dpo@ourco.example")
    async with hub.sessions() as session, session.begin():
        first = (
            await session.execute(
                select(InteractionRow.id).where(
                    InteractionRow.message_id == "<p1@praxis-example.de>"
                )
            )
        ).scalar_one()
        record(
            session,
            "anna@ourco.example",
            "attribution.set",
            before={"contact": NAME},
            after={"address": ADDRESS, "note": "kept"},
            interaction_id=first,
        )
        record(session, "admin@ourco.example", "user.add", target="tom@ourco.example")
    assert _found(await _database_bytes(hub)) == list(NEEDLES), "the search must see them before"

    plan = await plan_erasure(hub, WRITTEN)
    assert (len(plan.doomed), len(plan.redacted)) == (2, 1)
    assert sorted(plan.subject.keys) == [E164, ADDRESS]
    assert await _count(hub, ContactRow) == 2, "planning changes nothing"

    counts = await erase_subject(hub, WRITTEN, "dpo@ourco.example")
    assert counts.as_json() == {
        "items_deleted": 2,
        "items_redacted": 1,
        "contacts_deleted": 2,
        "review_questions_removed": 3,
        "quarantined_removed": 1,
        "blocklist_entries_removed": 0,
        "audit_entries_redacted": 2,
        "blobs_deleted": 5,  # 3 raw mails (one quarantined), 1 attachment, 1 call record
    }
    assert _found(await _database_bytes(hub)) == []
    async with hub.sessions() as session:
        for data in (await session.execute(select(BlobRow.data))).scalars():
            assert _found(unpack(data)) == []
        kept = {
            row.subject: row for row in (await session.execute(select(InteractionRow))).scalars()
        }
        review = list((await session.execute(select(ReviewItemRow.key))).scalars())
        audit = [
            row
            for row in (await session.execute(select(AuditRow).order_by(AuditRow.id))).scalars()
            if row.action != "connector.add"
        ]
        links = list((await session.execute(select(AttributionRow))).scalars())
    assert set(kept) == {"[erased]", "Order 17", "Call 01712233445 → 202 (answered, 1:00)"}
    referral = kept["[erased]"]
    assert referral.body is None and referral.snippet == "" and referral.raw_blob_id is None
    assert [p.address for p in referral.participants] == [
        "buyer@acme.example",
        "anna@ourco.example",
        "[erased]",
    ]
    assert {a.explanation for a in links if a.interaction_id == referral.id} == {
        "acme.example belongs to Acme"
    }, "only the link through the remaining customer stays"
    assert kept["Order 17"].body_text.startswith(f"An {OTHER_PHRASE}")
    assert review == ["+491712233445"]
    assert [a.action for a in audit] == [
        "privacy.export",
        "attribution.set",
        "user.add",
        "privacy.erase",
    ]
    assert audit[1].after == {"address": "[erased]", "note": "kept"}
    assert audit[1].interaction_id is None
    assert audit[2].target == "tom@ourco.example", "entries about others are untouched"
    assert audit[3].target == "" and audit[3].after == counts.as_json()
    assert await _count(hub, QuarantineRow) == 0
    assert await _count(hub, ErasedIdentityRow) == 2


async def test_a_reread_mailbox_does_not_bring_the_person_back(hub: Hub, tmp_path: Path) -> None:
    await store_person(hub, tmp_path)
    await erase_subject(hub, ADDRESS, "cli")
    archive = tmp_path / "archive"
    archive.mkdir()
    for name in ("mail.mbox", "Master.csv"):
        shutil.copy(tmp_path / name, archive / name)
    await add_connector(hub, "mbox", "archive", {"path": str(archive / "mail.mbox")}, {})
    await add_connector(hub, "asterisk-cdr", "pbx", {"path": str(archive / "Master.csv")}, {})
    reports = {r.connector: r for r in await sync_all(hub, ["archive", "pbx"])}
    mail, calls = reports["archive"], reports["pbx"]
    assert (mail.fetched, mail.skipped, mail.duplicates, mail.new, mail.quarantined) == (
        4,
        3,
        1,
        0,
        0,
    )
    assert (calls.skipped, calls.duplicates, calls.new) == (1, 1, 0)
    assert _found(await _database_bytes(hub)) == []


async def _count(hub: Hub, table: type) -> int:
    async with hub.sessions() as session:
        return int((await session.execute(select(func.count()).select_from(table))).scalar_one())


def _found(data: bytes) -> list[str]:
    """The needles in `data`, case-insensitively, also as PostgreSQL prints bytea (hex)."""
    lowered = data.lower()
    return [
        needle
        for needle in NEEDLES
        if needle.lower().encode() in lowered or needle.encode().hex().encode() in lowered
    ]


async def _database_bytes(hub: Hub) -> bytes:
    """The SQLite file with its -wal and -shm, or a plain pg_dump of the PostgreSQL database."""
    path = db.sqlite_path(hub.settings.database_url)
    if path is not None:
        return b"".join(
            Path(f"{path}{suffix}").read_bytes()
            for suffix in ("", "-wal", "-shm")
            if Path(f"{path}{suffix}").exists()
        )
    url = make_url(hub.settings.database_url).set(drivername="postgresql")
    dump = subprocess.run(
        ["pg_dump", "--no-owner", url.render_as_string(hide_password=False)],
        check=True,
        capture_output=True,
    )
    return dump.stdout
