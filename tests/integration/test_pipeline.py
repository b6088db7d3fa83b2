"""The sync pipeline over real files and a real database (SQLite, or PostgreSQL in CI)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sqlalchemy import func, select

from hub.admin import add_connector
from hub.bootstrap import Hub
from hub.model import Account, Contact
from hub.pipeline import sync_all
from matching.identities import normalize_email
from storage.directory import upsert_directory
from storage.tables import InteractionRow, QuarantineRow, SourceRow

DATA = Path(__file__).parent.parent / "data"


async def _directory(hub: Hub) -> None:
    entries = [
        (
            Account("Elbe Logistik GmbH", ("elbe-logistik.de",)),
            Contact("Jana Ohlsen", None, ("j.ohlsen@elbe-logistik.de",), ("+49403344556",)),
        ),
        (
            Account("Elbe Logistik GmbH", ("elbe-logistik.de",)),
            Contact(
                "Piet Brandt", None, (normalize_email("piet.brandt@gmail.com"),), ("+491712233445",)
            ),
        ),
        (Account("Isar Maschinenbau AG", ("isar-mb.de", "isar-maschinenbau.de")), None),
    ]
    async with hub.sessions() as session, session.begin():
        await upsert_directory(session, entries)


async def _count(hub: Hub, model: type) -> int:
    async with hub.sessions() as session:
        return int((await session.execute(select(func.count()).select_from(model))).scalar_one())


async def test_sync_attributes_mail_meetings_and_calls(hub: Hub, tmp_path: Path) -> None:
    await _directory(hub)
    for kind, name, file in (
        ("mbox", "mail", "contract.mbox"),
        ("ics", "cal", "contract.ics"),
        ("asterisk-cdr", "calls", "Master.csv"),
    ):
        shutil.copy(DATA / file, tmp_path / file)
        await add_connector(hub, kind, name, {"path": str(tmp_path / file)}, {})
    reports = {r.connector: r for r in await sync_all(hub)}
    assert (reports["mail"].new, reports["cal"].new, reports["calls"].new) == (4, 1, 1)
    assert reports["mail"].matched == 2 and reports["mail"].unmatched == 2
    assert reports["cal"].matched == 1 and reports["calls"].matched == 1
    async with hub.sessions() as session:
        rows = {r.message_id: r for r in (await session.execute(select(InteractionRow))).scalars()}
    m1 = rows["<m1@elbe-logistik.de>"]
    assert [(a.rule, a.contact_id is not None) for a in m1.attributions] == [
        ("contact-email", True)
    ]
    assert "Jana Ohlsen" in m1.attributions[0].explanation
    m2 = rows["<m2@ourco.example>"]
    assert m2.direction == "outbound"
    assert [a.rule for a in m2.attributions] == ["account-domain"]
    assert rows["<m3@elbe-logistik.de>"].attributions == []
    assert rows["<m3@elbe-logistik.de>"].not_logged.startswith("bulk")
    assert rows["<m4@ourco.example>"].direction == "internal"

    again = await sync_all(hub)
    assert sum(r.new for r in again) == 0 and sum(r.fetched for r in again) == 0
    assert await _count(hub, InteractionRow) == 6


async def test_same_message_in_two_sources_is_one_interaction(hub: Hub, tmp_path: Path) -> None:
    for name in ("inbox", "archive"):
        shutil.copy(DATA / "contract.mbox", tmp_path / f"{name}.mbox")
        await add_connector(hub, "mbox", name, {"path": str(tmp_path / f"{name}.mbox")}, {})
    reports = await sync_all(hub)
    assert [r.new for r in reports] == [4, 0]
    assert [r.duplicates for r in reports] == [0, 4]
    assert await _count(hub, InteractionRow) == 4
    assert await _count(hub, SourceRow) == 8


async def test_grown_mbox_ingests_only_the_new_part(hub: Hub, tmp_path: Path) -> None:
    mbox = tmp_path / "grow.mbox"
    text = (DATA / "contract.mbox").read_text()
    first, _, rest = text.partition("\nFrom MAILER-DAEMON")
    mbox.write_text(first + "\n")
    await add_connector(hub, "mbox", "grow", {"path": str(mbox)}, {})
    assert [r.new for r in await sync_all(hub)] == [1]
    with mbox.open("a") as handle:
        handle.write("From MAILER-DAEMON" + rest)
    report = (await sync_all(hub))[0]
    assert (report.fetched, report.new) == (3, 3)


async def test_unreadable_items_are_quarantined_and_the_sync_goes_on(
    hub: Hub, tmp_path: Path
) -> None:
    mbox = tmp_path / "bad.mbox"
    good = (DATA / "contract.mbox").read_bytes()
    mbox.write_bytes(b"From x Mon Jan  8 09:00:00 2024\n\x00\x01garbage without headers\n\n" + good)
    cdr = tmp_path / "Master.csv"
    cdr.write_text('"only","three","columns"\n' + (DATA / "Master.csv").read_text())
    await add_connector(hub, "mbox", "bad", {"path": str(mbox)}, {})
    await add_connector(hub, "asterisk-cdr", "cdr", {"path": str(cdr)}, {})
    reports = await sync_all(hub)
    assert [(r.new, r.quarantined, r.errors) for r in reports] == [(4, 1, 0), (1, 1, 0)]
    async with hub.sessions() as session:
        reasons = sorted(r.reason for r in (await session.execute(select(QuarantineRow))).scalars())
    assert "CDR row has 3 columns" in reasons[0]
    assert "not a mail message" in reasons[1]
    assert sum(r.quarantined for r in await sync_all(hub)) == 0


async def test_missing_file_fails_the_connector_with_a_clear_error(
    hub: Hub, tmp_path: Path
) -> None:
    await add_connector(hub, "mbox", "gone", {"path": str(tmp_path / "nope.mbox")}, {})
    report = (await sync_all(hub))[0]
    assert report.errors == 1
    assert "nope.mbox is not a readable mbox file" in report.error


THREAD_MBOX = """From x Mon Jan  8 09:00:00 2024
From: Jana Ohlsen <j.ohlsen@elbe-logistik.de>
To: anna@ourco.example
Subject: Lager
Date: Mon, 8 Jan 2024 09:00:00 +0100
Message-ID: <t1@elbe-logistik.de>

Anfrage.

From x Mon Jan  8 10:00:00 2024
From: Neue Kollegin <neu@privat-mail.example>
To: anna@ourco.example
Subject: Re: Lager
Date: Mon, 8 Jan 2024 10:00:00 +0100
Message-ID: <t2@privat-mail.example>
In-Reply-To: <t1@elbe-logistik.de>
References: <t1@elbe-logistik.de>

Ich übernehme.

From x Mon Jan  8 11:00:00 2024
From: Noch Jemand <jemand@anders.example>
To: anna@ourco.example
Subject: Re: Re: Lager
Date: Mon, 8 Jan 2024 11:00:00 +0100
Message-ID: <t3@anders.example>
In-Reply-To: <t2@privat-mail.example>

Ich auch.

"""

LATER_REPLY = """From x Mon Jan  9 10:00:00 2024
From: Fremd <fremd@woanders.example>
To: anna@ourco.example
Subject: Re: Lager
Date: Tue, 9 Jan 2024 10:00:00 +0100
Message-ID: <t4@woanders.example>
References: <t1@elbe-logistik.de> <t3@anders.example>

Spät.

"""


async def test_thread_chains_carry_replies_from_unknown_addresses(hub: Hub, tmp_path: Path) -> None:
    await _directory(hub)
    mbox = tmp_path / "thread.mbox"
    mbox.write_text(THREAD_MBOX, encoding="utf-8")
    await add_connector(hub, "mbox", "thread", {"path": str(mbox)}, {})
    assert (await sync_all(hub))[0].matched == 3
    with mbox.open("a", encoding="utf-8") as handle:
        handle.write(LATER_REPLY)
    assert (await sync_all(hub))[0].matched == 1
    async with hub.sessions() as session:
        rows = {r.message_id: r for r in (await session.execute(select(InteractionRow))).scalars()}
    assert [a.rule for a in rows["<t1@elbe-logistik.de>"].attributions] == ["contact-email"]
    for reply in ("<t2@privat-mail.example>", "<t3@anders.example>", "<t4@woanders.example>"):
        assert [a.rule for a in rows[reply].attributions] == ["thread"], reply
        assert {a.account_id for a in rows[reply].attributions} == {
            a.account_id for a in rows["<t1@elbe-logistik.de>"].attributions
        }


def _mail(n: int, sender: str, *, reply_to: int | None = None) -> str:
    answer = f"In-Reply-To: <m{reply_to}@test>\n" if reply_to is not None else ""
    return (
        f"From x Mon Jan  8 09:00:00 2024\nFrom: {sender}\nTo: anna@ourco.example\n"
        f"Subject: Nr. {n}\nDate: Mon, 8 Jan 2024 09:00:00 +0100\nMessage-ID: <m{n}@test>\n"
        f"{answer}\nText {n}.\n\n"
    )


async def test_replies_inherit_across_batches_in_either_order(hub: Hub, tmp_path: Path) -> None:
    """The pipeline decides one batch while it stores the one before (an mbox batch is 500
    mails): a reply right after its parent's batch, and a reply stored a whole batch before its
    parent arrives, both end up with the parent's account."""
    await _directory(hub)
    unknown = "Fremd <fremd@privat-mail.example>"
    mails = [_mail(n, f"kunde{n}@nowhere.example") for n in range(1100)]
    mails[499] = _mail(499, "j.ohlsen@elbe-logistik.de")  # last of batch 1
    mails[500] = _mail(500, unknown, reply_to=499)  # first of batch 2
    mails[10] = _mail(10, unknown, reply_to=1050)  # batch 1, its parent is in batch 3
    mails[1050] = _mail(1050, "j.ohlsen@elbe-logistik.de")
    mails[700] = _mail(700, unknown, reply_to=701)  # parent later in the same batch
    mails[701] = _mail(701, "j.ohlsen@elbe-logistik.de")
    mbox = tmp_path / "many.mbox"
    mbox.write_text("".join(mails), encoding="utf-8")
    await add_connector(hub, "mbox", "many", {"path": str(mbox)}, {})
    [report] = await sync_all(hub)
    assert (report.new, report.error) == (1100, "")
    async with hub.sessions() as session:
        rows = {
            r.message_id: r
            for r in (
                await session.execute(
                    select(InteractionRow).where(
                        InteractionRow.message_id.in_(
                            [f"<m{n}@test>" for n in (10, 499, 500, 700, 701, 1050)]
                        )
                    )
                )
            ).scalars()
        }
    elbe = {a.account_id for a in rows["<m499@test>"].attributions}
    assert len(elbe) == 1
    for reply in (500, 10, 700):
        links = rows[f"<m{reply}@test>"].attributions
        assert [a.rule for a in links] == ["thread"], reply
        assert {a.account_id for a in links} == elbe, reply


async def test_two_mailboxes_with_the_same_mail_synced_at_once_store_it_once(
    hub: Hub, tmp_path: Path
) -> None:
    """Colleagues on one thread hold the same mails; their connectors sync concurrently, each
    may find a mail missing and insert it. Nothing fails, nothing is stored twice."""
    import asyncio

    from hub.pipeline import sync_connector

    await _directory(hub)
    text = "".join(_mail(n, "j.ohlsen@elbe-logistik.de") for n in range(1200))
    for name in ("anna", "tom"):
        (tmp_path / f"{name}.mbox").write_text(text, encoding="utf-8")
        await add_connector(hub, "mbox", name, {"path": str(tmp_path / f"{name}.mbox")}, {})
    index = await hub.identity_index()
    reports = await asyncio.gather(
        sync_connector(hub, "anna", index), sync_connector(hub, "tom", index)
    )
    assert [r.error for r in reports] == ["", ""]
    assert sum(r.new for r in reports) == 1200
    assert sum(r.duplicates for r in reports) == 1200
    assert await _count(hub, InteractionRow) == 1200
    assert await _count(hub, SourceRow) == 2400


async def test_attachments_packed_by_the_workers_are_stored_and_read_back(
    hub: Hub, tmp_path: Path
) -> None:
    """A batch of at least POOL_THRESHOLD items is translated in worker processes, which hash
    and compress attachment bodies there; what storage keeps must still be the body."""
    import base64

    from hub.translation import POOL_THRESHOLD
    from storage.blobs import read_blob
    from storage.tables import AttachmentRow

    count = POOL_THRESHOLD + 20
    mails = []
    for n in range(count):
        body = f"Anhang {n} äöü ".encode() * 50
        mails.append(
            f"From x Mon Jan  8 09:00:00 2024\nFrom: j.ohlsen@elbe-logistik.de\n"
            f"To: anna@ourco.example\nSubject: Anhang {n}\nMessage-ID: <att{n}@test>\n"
            "Date: Mon, 8 Jan 2024 09:00:00 +0100\n"
            'MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="b"\n\n'
            "--b\nContent-Type: text/plain\n\nSiehe Anhang.\n"
            f"--b\nContent-Type: application/octet-stream\nContent-Disposition: attachment; "
            f'filename="a{n}.bin"\nContent-Transfer-Encoding: base64\n\n'
            f"{base64.encodebytes(body).decode()}--b--\n\n"
        )
    mbox = tmp_path / "att.mbox"
    mbox.write_text("".join(mails), encoding="utf-8")
    await add_connector(hub, "mbox", "att", {"path": str(mbox)}, {})
    [report] = await sync_all(hub)
    assert (report.new, report.error) == (count, "")
    async with hub.sessions() as session:
        rows = (await session.execute(select(AttachmentRow))).scalars().all()
        assert len(rows) == count and all(r.blob_id is not None for r in rows)
        sample = {r.filename: r for r in rows}["a7.bin"]
        assert await read_blob(session, sample.blob_id) == "Anhang 7 äöü ".encode() * 50
        assert sample.size == len("Anhang 7 äöü ".encode() * 50)


async def test_the_first_big_batch_is_translated_at_once_and_the_workers_agree(
    hub: Hub,
) -> None:
    """The first big batch is translated in a thread while the worker processes start; later
    ones go to the workers. Both paths must give the same items, attachments included."""
    import asyncio
    import hashlib
    import os

    from connectors.registry import connector_class
    from hub.model import RawItem, Translated
    from hub.translation import POOL_THRESHOLD
    from storage.packing import (
        PackedAttachment,
        PackedInteraction,
        PackedRaw,
        unpack,
        unpack_text,
    )

    connector = connector_class("eml")("files", {"path": "/nonexistent"}, None, hub.context)
    raws = [
        RawItem(
            f"m{n}.eml",
            (
                f"From: Jana <j.ohlsen@elbe-logistik.de>\r\nTo: anna@ourco.example\r\n"
                f"Subject: Nr. {n} Grüße\r\nMessage-ID: <w{n}@test>\r\n"
                "Date: Mon, 8 Jan 2024 09:00:00 +0100\r\nMIME-Version: 1.0\r\n"
                'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
                "--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nText äöü\r\n"
                '--b\r\nContent-Type: text/csv\r\nContent-Disposition: attachment; filename="a.csv"'
                f"\r\n\r\n{n};1;2\r\n--b--\r\n"
            ).encode(),
        )
        for n in range(POOL_THRESHOLD)
    ]
    in_thread = await hub.translate(connector, raws)
    assert hub.pool is not None, "the first big batch starts the workers"
    worker_pid = await asyncio.wrap_future(hub._pool_started)
    assert worker_pid != os.getpid()
    in_worker = await hub.translate(connector, raws)
    assert in_worker == in_thread
    first = in_worker[0]
    assert isinstance(first, Translated) and isinstance(first.raw, PackedRaw)
    assert first.raw.data == raws[0].data and unpack(first.raw.packed) == raws[0].data
    assert first.raw.digest == hashlib.sha256(raws[0].data).hexdigest()
    (attachment,) = first.interaction.attachments
    assert isinstance(attachment, PackedAttachment) and attachment.content is None
    assert unpack(attachment.packed) == b"0;1;2"
    assert isinstance(first.interaction, PackedInteraction) and not first.interaction.body_text
    assert unpack_text(first.interaction.packed_body).strip() == "Text äöü"


async def test_workers_started_early_are_the_ones_the_first_big_batch_uses(hub: Hub) -> None:
    """`crmhub sync` starts the workers while it is still loading (hub/__main__.py); the hub
    must take that pool, not start a second one, and translate in it at once."""
    import asyncio
    import os

    from connectors.registry import connector_class
    from hub import translation
    from hub.model import RawItem
    from hub.translation import POOL_THRESHOLD

    translation.start_workers_early()
    early_pool = translation._early_pool
    connector = connector_class("eml")("files", {"path": "/nonexistent"}, None, hub.context)
    raw = (
        b"From: j.ohlsen@elbe-logistik.de\r\nTo: anna@ourco.example\r\nSubject: early\r\n"
        b"Message-ID: <early@test>\r\nDate: Mon, 8 Jan 2024 09:00:00 +0100\r\n\r\nText\r\n"
    )
    translated = await hub.translate(connector, [RawItem("m.eml", raw)] * POOL_THRESHOLD)
    assert translated[0].interaction.subject == "early"
    assert hub.pool is not None and not early_pool, "the hub took the early pool"
    assert await asyncio.wrap_future(hub._pool_started) != os.getpid()


def test_an_early_pool_no_batch_needed_is_shut_down() -> None:
    from hub import translation

    translation.start_workers_early()
    assert translation._early is not None
    translation._early.join()
    pool, started = translation._early_pool[0]
    assert started.result(timeout=30) != 0
    translation.stop_early_workers()
    assert not translation._early_pool and translation._early is None
    with pytest.raises(RuntimeError):
        pool.submit(int)  # shut down


def test_translation_workers_run_at_a_lower_priority_than_the_main_process() -> None:
    import os

    from hub.translation import WORKER_NICENESS, translation_pool

    pool = translation_pool()
    try:
        assert pool.submit(os.nice, 0).result(timeout=60) == min(19, os.nice(0) + WORKER_NICENESS)
    finally:
        pool.shutdown()
