"""What the translation workers send back travels as tuples (hub/translation.py): every field of
every item must arrive as it left, whatever the domain model gains later."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from hub.model import (
    AddressKind,
    Attachment,
    Channel,
    Direction,
    Interaction,
    Participant,
    Quarantined,
    RawItem,
    Role,
    Skipped,
    Translated,
)
from hub.translation import _as_tuple, received, with_raws
from storage.packing import PackedAttachment, PackedInteraction, PackedRaw, kept, unpack


def _every_field_set() -> PackedInteraction:
    """An interaction whose fields all differ from their defaults; fails if one is missed.

    Packed as a translation worker sends it: body text compressed, no HTML body."""
    item = PackedInteraction(
        channel=Channel.CALL,
        occurred_at=datetime(2024, 1, 8, 9, 0, tzinfo=timezone(timedelta(hours=1))),
        dedupe_key="call:1",
        direction=Direction.OUTBOUND,
        subject="Rückruf",
        snippet="kurz",
        body_text="",
        body_html="",
        participants=[
            Participant(Role.CALLER, "+4940123", AddressKind.PHONE, "Jana"),
            Participant(Role.CALLEE, "anna@ourco.example"),
        ],
        message_id="<m@x>",
        in_reply_to=["<a@x>"],
        references=["<r@x>", "<a@x>"],
        thread_key="<r@x>",
        attachments=[
            PackedAttachment("a.pdf", "application/pdf", 3, digest="ab" * 32, packed=b"packed"),
            Attachment("b.txt", "text/plain", 0),
        ],
        headers={"list-id": "<l.x>"},
        duration_seconds=42,
        ends_at=datetime(2024, 1, 8, 9, 1, tzinfo=UTC),
        extra={"pbx": {"uniqueid": "1.2"}},
        packed_body=b"body",
    )
    defaults = Interaction(Channel.EMAIL, datetime(2000, 1, 1, tzinfo=UTC), "k")
    unset = [
        f.name
        for f in dataclasses.fields(Interaction)
        if getattr(item, f.name) == getattr(defaults, f.name)
        and f.name not in ("body_text", "body_html")  # never sent: packed, or not kept
    ]
    assert unset == [], f"give these fields a value in this test: {unset}"
    return item


def test_items_arrive_as_they_left() -> None:
    raws = [
        RawItem("INBOX/7/1", b"raw one", "message/rfc822"),
        RawItem("INBOX/7/2", b"raw two", "message/rfc822"),
        RawItem("INBOX/7/3", b"Sensitivity: Private\r\n", "message/rfc822"),
    ]
    sent = [
        Translated(PackedRaw("", b"", "", digest="d1" * 32, packed=b"p1"), _every_field_set()),
        Quarantined(PackedRaw("", b"", "", digest="d2" * 32, packed=b"p2"), "cannot be read: boom"),
        Skipped(RawItem("", b""), "marked Sensitivity: Private"),
    ]
    back = with_raws(received([_as_tuple(item) for item in sent]), raws)
    assert back == with_raws(sent, raws)
    assert back[0].raw == PackedRaw(
        "INBOX/7/1", b"raw one", "message/rfc822", digest="d1" * 32, packed=b"p1"
    )
    assert back[1].raw == PackedRaw(
        "INBOX/7/2", b"raw two", "message/rfc822", digest="d2" * 32, packed=b"p2"
    )
    first = back[0].interaction
    assert isinstance(first, PackedInteraction) and first.packed_body == b"body"
    assert first.participants[0].role is Role.CALLER and first.channel is Channel.CALL
    assert isinstance(first.attachments[0], PackedAttachment)
    assert first.attachments[0].packed == b"packed" and kept(first.attachments[1]) is False
    assert back[2] == Skipped(raws[2], "marked Sensitivity: Private")


def test_a_private_item_travels_to_the_worker_and_back_as_its_reason_alone() -> None:
    """Through the spool file and through the pipe: the mark set by the fetcher arrives, and
    nothing of a skipped mail (no digest, no packed bytes) comes back to be stored."""
    from connectors.base import ConnectorContext
    from connectors.registry import connector_class
    from hub.translation import Spool, spooled, translate_sent

    raws = [
        RawItem("Private/a.eml", b"", private="in the private folder 'Private'"),
        RawItem("b.eml", MAIL.replace(b"Subject:", b"Sensitivity: personal\r\nSubject:")),
        RawItem("c.eml", MAIL),
    ]
    eml = connector_class("eml")
    with spooled(raws) as batch:
        assert isinstance(batch, Spool)
        pipe = [(r.external_id, r.data, r.content_type, r.private) for r in raws]
        for sent in (batch, pipe):
            tuples = translate_sent(eml, "files", {"path": "/x"}, ConnectorContext(), sent)
            assert tuples[:2] == [
                ("in the private folder 'Private'",),
                ("marked Sensitivity: Personal",),
            ]
            back = with_raws(received(tuples), raws)
            assert back[:2] == [
                Skipped(raws[0], "in the private folder 'Private'"),
                Skipped(raws[1], "marked Sensitivity: Personal"),
            ]
            assert isinstance(back[2], Translated) and isinstance(back[2].raw, PackedRaw)
            assert back[2].raw.data == MAIL and unpack(back[2].raw.packed) == MAIL


MAIL = (
    b"From: j.ohlsen@elbe-logistik.de\r\nTo: anna@ourco.example\r\nSubject: Angebot\r\n"
    b"Message-ID: <a@test>\r\nDate: Mon, 8 Jan 2024 09:00:00 +0100\r\n\r\nText\r\n"
)


def test_a_batch_goes_to_the_worker_in_a_private_file_that_is_gone_afterwards() -> None:
    import os
    import stat

    from hub.translation import Spool, spooled

    raws = [RawItem(f"INBOX/1/{n}", f"mail {n} äöü".encode() * n) for n in range(5)]
    with spooled(raws) as batch:
        assert isinstance(batch, Spool)
        assert stat.S_IMODE(os.stat(batch.path).st_mode) == 0o600
        assert batch.raws() == raws
    assert not os.path.exists(batch.path)


def test_without_a_writable_spool_directory_the_batch_goes_through_the_pipe(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from hub import translation
    from hub.model import RawItem as Raw

    monkeypatch.setattr(translation, "_SPOOL_DIR", str(tmp_path / "missing"))
    raws = [Raw("m1", b"From: a@b.example\r\n\r\nx")]
    with translation.spooled(raws) as batch:
        assert batch == [("m1", raws[0].data, "message/rfc822", "")]


def test_the_worker_removes_the_batch_file_once_read() -> None:
    import os

    from connectors.base import ConnectorContext
    from connectors.registry import connector_class
    from hub.translation import Spool, received, spooled, translate_sent

    raw = RawItem(
        "m.eml",
        b"From: j.ohlsen@elbe-logistik.de\r\nTo: anna@ourco.example\r\nSubject: Angebot\r\n"
        b"Message-ID: <a@test>\r\nDate: Mon, 8 Jan 2024 09:00:00 +0100\r\n\r\nText\r\n",
    )
    eml = connector_class("eml")
    with spooled([raw]) as batch:
        assert isinstance(batch, Spool)
        (item,) = received(translate_sent(eml, "files", {"path": "/x"}, ConnectorContext(), batch))
        assert not os.path.exists(batch.path), "read: a crash now leaves no mail behind"
    assert item.interaction.subject == "Angebot" and isinstance(item.raw, PackedRaw)


def test_batch_files_of_killed_processes_are_removed_and_live_ones_kept(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import os
    import subprocess
    import sys

    from hub import translation

    monkeypatch.setattr(translation, "_SPOOL_DIR", str(tmp_path))
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead = tmp_path / f"crmhub-batch-{gone.stdout.strip()}-abc"
    live = tmp_path / f"crmhub-batch-{os.getpid()}-def"
    other = tmp_path / "unrelated-123-x"
    for path in (dead, live, other):
        path.write_bytes(b"mail")
    assert translation.remove_stale_spools() == 1
    assert not dead.exists() and live.exists() and other.exists()
