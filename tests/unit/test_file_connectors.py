"""The file connectors (mbox, Maildir, .eml folder, iCalendar, Asterisk CDR).

They are what a new user imports first and what the demo runs on. What every kind promises
the pipeline (resuming, re-running, quarantining, readable source errors) is checked for all
kinds at once by tests/integration/test_connector_contract.py; the tests here check what is
specific to files and to each format, through the path a sync takes (tests/fetching.py).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from connectors.asterisk_cdr import AsteriskCdrConnector
from connectors.base import (
    ConfigurationError,
    Connector,
    ConnectorContext,
    ConnectorError,
    FileConnector,
)
from connectors.eml import EmlConnector
from connectors.ics import IcsConnector
from connectors.maildir import MaildirConnector
from connectors.mbox import MboxConnector
from connectors.registry import KINDS, connector_class
from hub.model import (
    Account,
    AddressKind,
    Channel,
    Contact,
    Direction,
    Interaction,
    Quarantined,
    RawItem,
    Role,
    Translated,
)
from matching.engine import attribute
from matching.index import IdentityIndex
from storage.packing import body_text
from tests.fetching import fetched_batches
from tests.file_sources import (
    ENVELOPE,
    SOURCES,
    EmlSource,
    FileSource,
    MaildirSource,
    MboxSource,
    calendar,
    cdr_row,
    mail_key,
    message,
    vevent,
)

FILE_KINDS = sorted(k for k in KINDS if issubclass(connector_class(k), FileConnector))


class SyncResult:
    """What one pass over a connector yielded, and the cursor to commit afterwards."""

    def __init__(self, cursor: dict[str, Any]) -> None:
        self.cursor = cursor
        self.translated: list[Translated] = []
        self.quarantined: list[Quarantined] = []
        self.batches = 0

    @property
    def keys(self) -> set[str]:
        return {t.interaction.dedupe_key for t in self.translated}

    @property
    def interactions(self) -> list[Interaction]:
        return [t.interaction for t in self.translated]


async def _sync(connector: Connector, cursor: Mapping[str, Any] | None = None) -> SyncResult:
    """One pass as the pipeline runs it, keeping the last cursor as it would commit it."""
    result = SyncResult(dict(cursor or {}))
    async for batch in fetched_batches(connector, result.cursor):
        assert batch.fetched == len(batch.items)
        result.cursor = batch.cursor
        result.batches += 1
        for item in batch.items:
            if isinstance(item, Translated):
                result.translated.append(item)
            else:
                result.quarantined.append(item)
    return result


def _connector(
    kind: str, path: Path, context: ConnectorContext | None = None, batch_size: int | None = None
) -> Connector:
    cls = connector_class(kind)
    if batch_size is not None:
        cls = type(f"Small{cls.__name__}", (cls,), {"batch_size": batch_size})
    return cls(f"test-{kind}", {"path": str(path)}, context=context)


@pytest.mark.parametrize("source_type", SOURCES, ids=lambda s: s.kind)
async def test_resuming_from_any_batch_cursor_loses_nothing(
    source_type: type[FileSource], tmp_path: Path
) -> None:
    """A crash after committing batch k must resume with every item after batch k."""
    source = source_type(tmp_path)
    for n in range(4):
        source.add(n)
    connector = _connector(source.kind, source.path, batch_size=1)
    batches: list[tuple[set[str], dict[str, Any]]] = []
    async for batch in fetched_batches(connector):
        keys = {i.interaction.dedupe_key for i in batch.items if isinstance(i, Translated)}
        batches.append((keys, batch.cursor))
    assert set().union(*(keys for keys, _ in batches)) == {source.key(n) for n in range(4)}
    assert all(len(keys) <= 1 for keys, _ in batches)
    for k, (_, cursor) in enumerate(batches):
        later = set().union(*(keys for keys, _ in batches[k + 1 :]))
        resumed = (await _sync(connector, cursor)).keys
        assert later <= resumed
        if source.grows:
            assert resumed == later


def test_registry_resolves_kinds_and_dotted_paths() -> None:
    assert connector_class("mbox") is MboxConnector
    assert connector_class("asterisk-cdr") is AsteriskCdrConnector
    assert connector_class("maildir") is MaildirConnector
    assert connector_class("eml") is EmlConnector
    assert connector_class("connectors.ics:IcsConnector") is IcsConnector
    with pytest.raises(ConfigurationError, match="unknown connector kind 'pop3'"):
        connector_class("pop3")
    with pytest.raises(ConfigurationError, match="cannot load"):
        connector_class("connectors.nowhere:Thing")
    with pytest.raises(ConfigurationError, match="not a crmhub Connector"):
        connector_class("hub.model:Interaction")


def test_settings_are_validated_with_help() -> None:
    with pytest.raises(ConfigurationError, match="missing setting path"):
        MboxConnector("m", {})
    with pytest.raises(ConfigurationError, match="unknown setting folder"):
        MboxConnector("m", {"path": "x", "folder": "y"})


@pytest.mark.parametrize("kind", FILE_KINDS)
async def test_a_missing_source_fails_with_a_clear_error(kind: str, tmp_path: Path) -> None:
    connector = _connector(kind, tmp_path / "missing")
    with pytest.raises(ConnectorError, match="missing"):
        await _sync(connector)


async def test_mbox_unescapes_from_lines_and_uses_the_envelope_date(tmp_path: Path) -> None:
    source = MboxSource(tmp_path)
    source.add(0)
    with source.path.open("ab") as handle:
        handle.write(b"From someone Tue Jan  9 10:30:00 2024\n" + message(1, date_header=False))
    result = await _sync(_connector("mbox", source.path))
    by_key = {i.dedupe_key: i for i in result.interactions}
    assert "\nFrom the warehouse, greetings." in body_text(by_key[mail_key(0)])
    assert ">From" not in body_text(by_key[mail_key(0)])
    assert by_key[mail_key(1)].occurred_at == datetime(2024, 1, 9, 10, 30, tzinfo=UTC)


async def test_mbox_external_id_is_a_content_address(tmp_path: Path) -> None:
    """Identical copies share an id and a rewritten mbox does not change the ids."""
    first, second = MboxSource(tmp_path / "a"), MboxSource(tmp_path / "b")
    for source in (first, second):
        source.root.mkdir()
    first.add(0)
    first.add(1)
    second.add(1)
    a = await _sync(_connector("mbox", first.path))
    b = await _sync(_connector("mbox", second.path))
    ids = {t.interaction.dedupe_key: t.raw.external_id for t in a.translated}
    assert ids[mail_key(1)] == b.translated[0].raw.external_id
    assert ids[mail_key(0)] != ids[mail_key(1)]


async def test_rewritten_mbox_is_read_again_from_the_start(tmp_path: Path) -> None:
    source = MboxSource(tmp_path)
    source.add(0)
    source.add(1)
    connector = _connector("mbox", source.path)
    first = await _sync(connector)
    source.path.unlink()
    source.add(2)
    source.add(3)
    source.add(4)
    rewritten = await _sync(connector, first.cursor)
    assert rewritten.keys == {mail_key(2), mail_key(3), mail_key(4)}


async def test_maildir_reads_subfolders_and_skips_dotfiles(tmp_path: Path) -> None:
    source = MaildirSource(tmp_path)
    source.add(0)
    sent = source.path / ".Sent" / "cur"
    sent.mkdir(parents=True)
    (sent / "1704700101.M1P1.host:2,S").write_bytes(message(1, date_header=False))
    (source.path / "new" / ".hidden").write_bytes(message(2))
    (source.path / "tmp" / "1704700103.M3P1.host").write_bytes(message(3))
    result = await _sync(_connector("maildir", source.path))
    assert result.keys == {mail_key(0), mail_key(1)}
    undated = next(i for i in result.interactions if i.dedupe_key == mail_key(1))
    assert undated.occurred_at == datetime.fromtimestamp(1704700101, UTC)


async def test_maildir_message_moved_to_cur_keeps_its_dedupe_key(tmp_path: Path) -> None:
    source = MaildirSource(tmp_path)
    source.add(0)
    connector = _connector("maildir", source.path)
    first = await _sync(connector)
    new_file = next((source.path / "new").iterdir())
    new_file.rename(source.path / "cur" / (new_file.name + ":2,S"))
    moved = await _sync(connector, first.cursor)
    assert moved.keys == first.keys
    assert moved.translated[0].raw.external_id != first.translated[0].raw.external_id


async def test_eml_folder_rereads_changed_files_and_ignores_others(tmp_path: Path) -> None:
    source = EmlSource(tmp_path)
    source.add(0)
    (source.path / "notes.txt").write_bytes(message(5))
    connector = _connector("eml", source.path)
    first = await _sync(connector)
    assert first.keys == {mail_key(0)}
    changed = source.path / "mail-0.eml"
    changed.write_bytes(message(0).replace(b"Text 0", b"Text 0, corrected"))
    os.utime(changed, (1_800_000_000, 1_800_000_000))
    again = await _sync(connector, first.cursor)
    assert again.keys == {mail_key(0)}
    assert "corrected" in body_text(again.interactions[0])


async def test_eml_without_date_falls_back_to_the_file_time(tmp_path: Path) -> None:
    folder = tmp_path / "eml"
    folder.mkdir()
    file = folder / "undated.EML"
    file.write_bytes(message(0, date_header=False))
    os.utime(file, (1_704_700_000, 1_704_700_000))
    result = await _sync(_connector("eml", folder))
    assert result.interactions[0].occurred_at == datetime.fromtimestamp(1_704_700_000, UTC)


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


async def test_ics_expands_recurring_events_inside_the_window(tmp_path: Path) -> None:
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    first = now - timedelta(days=70)
    moved = first + timedelta(weeks=10)
    weekly = vevent(
        1,
        start=_stamp(first),
        extra="RRULE:FREQ=WEEKLY\r\nATTENDEE;CN=Tom:mailto:tom@ourco.example\r\n",
    ).replace("UID:event-1@", "UID:jour-fixe@")
    exception = (
        "BEGIN:VEVENT\r\nUID:jour-fixe@ourco.example\r\nDTSTAMP:20240101T080000Z\r\n"
        f"RECURRENCE-ID:{_stamp(moved)}\r\nDTSTART:{_stamp(moved + timedelta(hours=2))}\r\n"
        "SUMMARY:Jour fixe (verschoben)\r\nEND:VEVENT\r\n"
    )
    path = tmp_path / "c.ics"
    path.write_bytes(calendar(vevent(0), weekly, exception))
    context = ConnectorContext(calendar_window_days=30)
    result = await _sync(_connector("ics", path, context))

    assert result.quarantined == []
    single = [i for i in result.interactions if i.dedupe_key == "ics:event-0@ourco.example"]
    assert len(single) == 1
    series = sorted(
        (i for i in result.interactions if "jour-fixe" in i.dedupe_key),
        key=lambda i: i.occurred_at,
    )
    window = (now - timedelta(days=30), now + timedelta(days=30))
    assert all(window[0] <= i.occurred_at <= window[1] for i in series)
    assert len(series) == 9
    assert len({i.dedupe_key for i in series}) == len(series)
    assert all(i.dedupe_key.startswith("ics:jour-fixe@ourco.example|") for i in series)
    assert all(i.thread_key == "ics:jour-fixe@ourco.example" for i in series)
    rescheduled = [i for i in series if i.subject == "Jour fixe (verschoben)"]
    assert len(rescheduled) == 1
    assert rescheduled[0].occurred_at == moved + timedelta(hours=2)
    assert rescheduled[0].dedupe_key == f"ics:jour-fixe@ourco.example|{_stamp(moved)}"
    regular = next(i for i in series if i.subject == "Termin 1")
    assert [(p.role, p.address, p.name) for p in regular.participants] == [
        (Role.ORGANIZER, "anna@ourco.example", "Anna"),
        (Role.ATTENDEE, "kunde1@elbe-logistik.de", "Kunde 1"),
        (Role.ATTENDEE, "tom@ourco.example", "Tom"),
    ]
    assert all(i.channel is Channel.MEETING for i in result.interactions)


async def test_ics_broken_series_is_quarantined_not_fatal(tmp_path: Path) -> None:
    """A series that cannot be expanded must not hide the rest of the calendar."""
    broken = (
        "BEGIN:VEVENT\r\nUID:broken-series@ourco.example\r\nRRULE:FREQ=DAILY\r\n"
        "SUMMARY:no start\r\nEND:VEVENT\r\n"
    )
    path = tmp_path / "c.ics"
    path.write_bytes(calendar(vevent(0), broken, vevent(1)))
    result = await _sync(_connector("ics", path))
    assert result.keys == {"ics:event-0@ourco.example", "ics:event-1@ourco.example"}
    assert [q.raw.external_id for q in result.quarantined] == ["broken-series@ourco.example"]
    assert "DTSTART" in result.quarantined[0].reason


async def test_ics_dates_and_times_in_the_configured_zone(tmp_path: Path) -> None:
    all_day = "BEGIN:VEVENT\r\nUID:day@x\r\nDTSTART;VALUE=DATE:20240115\r\nEND:VEVENT\r\n"
    floating = (
        "BEGIN:VEVENT\r\nUID:floating@x\r\nDTSTART:20240116T090000\r\n"
        "DTEND:20240116T100000\r\nLOCATION:Hamburg\r\nDESCRIPTION:Agenda:\\n  Preise\r\n"
        "END:VEVENT\r\n"
    )
    path = tmp_path / "c.ics"
    path.write_bytes(calendar(all_day, floating))
    context = ConnectorContext(timezone="Europe/Berlin")
    result = await _sync(_connector("ics", path, context))
    by_key = {i.dedupe_key: i for i in result.interactions}
    berlin = ZoneInfo("Europe/Berlin")
    assert by_key["ics:day@x"].occurred_at == datetime(2024, 1, 15, tzinfo=berlin)
    meeting = by_key["ics:floating@x"]
    assert meeting.occurred_at == datetime(2024, 1, 16, 9, tzinfo=berlin)
    assert meeting.ends_at == datetime(2024, 1, 16, 10, tzinfo=berlin)
    assert meeting.extra == {"location": "Hamburg"}
    assert meeting.snippet == "Agenda: Preise"
    assert meeting.participants == []


async def test_ics_that_is_not_a_calendar_fails_the_connector(tmp_path: Path) -> None:
    path = tmp_path / "c.ics"
    path.write_bytes(b"this is not iCalendar\n")
    with pytest.raises(ConnectorError, match="not an iCalendar file"):
        await _sync(_connector("ics", path))


def _index() -> IdentityIndex:
    return IdentityIndex.build(
        [Account("Elbe Logistik GmbH", ("elbe-logistik.de",), id=1)],
        [Contact("Piet Brandt", 1, (), ("+491712233445",), id=10)],
        internal_domains=["ourco.example"],
        region="DE",
    )


async def test_cdr_row_becomes_a_call_with_both_parties(tmp_path: Path) -> None:
    path = tmp_path / "Master.csv"
    path.write_text(cdr_row(0, billsec=185))
    context = ConnectorContext(timezone="Europe/Berlin")
    (call,) = (await _sync(_connector("asterisk-cdr", path, context))).interactions
    assert call.channel is Channel.CALL
    assert call.occurred_at == datetime(2024, 1, 9, 14, 0, tzinfo=ZoneInfo("Europe/Berlin"))
    assert call.duration_seconds == 185
    assert "3:05" in call.subject and "answered" in call.subject
    assert call.dedupe_key == "asterisk:1704808800.0:201"
    assert [(p.role, p.address, p.kind, p.name) for p in call.participants] == [
        (Role.CALLER, "01712233445", AddressKind.PHONE, "Piet"),
        (Role.CALLEE, "201", AddressKind.PHONE, ""),
    ]


async def test_cdr_numbers_normalise_with_the_region_and_extensions_are_ours(
    tmp_path: Path,
) -> None:
    """The CDR keeps numbers as dialled; matching reads them with the default region."""
    path = tmp_path / "Master.csv"
    path.write_text(cdr_row(0) + cdr_row(1, src="201", dst="0171 2233445"))
    inbound, outbound = (await _sync(_connector("asterisk-cdr", path))).interactions
    index = _index()
    first = attribute(inbound, index)
    assert [(p.normalized, p.internal) for p in first.participants] == [
        ("+491712233445", False),
        ("201", True),
    ]
    assert [(a.account_id, a.contact_id, a.rule) for a in first.attributions] == [
        (1, 10, "contact-phone")
    ]
    assert first.direction is Direction.INBOUND
    second = attribute(outbound, index)
    assert second.direction is Direction.OUTBOUND
    assert [a.contact_id for a in second.attributions] == [10]


async def test_cdr_partial_last_line_is_read_once_complete(tmp_path: Path) -> None:
    path = tmp_path / "Master.csv"
    complete, partial = cdr_row(0), cdr_row(1)
    path.write_text(complete + partial[:40])
    connector = _connector("asterisk-cdr", path)
    first = await _sync(connector)
    assert first.keys == {"asterisk:1704808800.0:201"}
    assert first.quarantined == []
    assert first.cursor["offset"] == len(complete)
    waiting = await _sync(connector, first.cursor)
    assert waiting.translated == [] and waiting.quarantined == []
    with path.open("a") as handle:
        handle.write(partial[40:])
    finished = await _sync(connector, waiting.cursor)
    assert finished.keys == {"asterisk:1704808800.1:201"}


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ('"only","three","columns"', "3 columns, expected 18"),
        (",".join(['""'] * 19), "19 columns"),
        (cdr_row(0).replace("2024-01-09 14:00:00", "yesterday", 1).strip(), "bad start time"),
        (cdr_row(0).replace(",180,", ",lots,", 1).strip(), "billsec"),
    ],
)
def test_cdr_bad_rows_are_malformed(line: str, reason: str) -> None:
    connector = AsteriskCdrConnector("cdr", {"path": "unused"})
    (item,) = connector.translate_all([RawItem("line:x", line.encode() + b"\n", "text/csv")])
    assert isinstance(item, Quarantined)
    assert reason in item.reason


def test_translation_crash_is_quarantined_with_its_type() -> None:
    """An unexpected exception in a connector's translate() still only costs one item."""

    class Exploding(MboxConnector):
        def translate(self, raw: RawItem) -> Interaction:
            raise KeyError("surprise")

    (item,) = Exploding("x", {"path": "unused"}).translate_all([RawItem("1", b"")])
    assert isinstance(item, Quarantined)
    assert item.reason.startswith("cannot be read: KeyError")


PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02\x00\x00\x00"


@pytest.mark.parametrize(
    "data", [PNG, b"Subject: no envelope\n\nFrom here on\n", b"\n\nReturn-Path: <a@b.de>\n"]
)
async def test_a_file_that_is_not_an_mbox_fails_the_connector(data: bytes, tmp_path: Path) -> None:
    """It used to sync as an empty mbox: "ok, 0 items", and the cursor moved past it."""
    path = tmp_path / "photo.mbox"
    path.write_bytes(data)
    with pytest.raises(ConnectorError) as failed:
        await _sync(_connector("mbox", path))
    assert str(failed.value) == (
        f"test-mbox: {path} is not an mbox file: it does not start with a 'From ' line"
    )


@pytest.mark.parametrize(
    "prefix", [b"", b"\n", b"\r\n\n", b"  \n"], ids=["none", "lf", "crlf-lf", "spaces"]
)
async def test_mbox_variants_are_still_read(prefix: bytes, tmp_path: Path) -> None:
    """Leading blank lines, CRLF line ends and mboxrd's `>>From ` escapes are all mbox."""
    body = (
        b"From: kunde@elbe-logistik.de\r\nSubject: Anfrage\r\n"
        b"Message-ID: <crlf@elbe-logistik.de>\r\n\r\n>>From quoted\r\n"
    )
    path = tmp_path / "inbox.mbox"
    path.write_bytes(
        prefix + ENVELOPE + message(0) + b"\n" + ENVELOPE.replace(b"\n", b"\r\n") + body
    )
    result = await _sync(_connector("mbox", path))
    assert result.keys == {mail_key(0), "mid:<crlf@elbe-logistik.de>"}
    assert result.quarantined == []
    crlf = next(i for i in result.interactions if i.dedupe_key.startswith("mid:<crlf"))
    assert body_text(crlf).strip() == ">From quoted"


@pytest.mark.parametrize("data", [b"", b"\n\n"], ids=["empty", "blank"])
async def test_an_empty_mbox_is_fine(data: bytes, tmp_path: Path) -> None:
    path = tmp_path / "empty.mbox"
    path.write_bytes(data)
    result = await _sync(_connector("mbox", path))
    assert result.translated == [] and result.quarantined == []


async def test_mbox_bytes_before_the_next_separator_are_quarantined_not_dropped(
    tmp_path: Path,
) -> None:
    """The end of a message written while the last sync read the file comes after the cursor
    without a `From ` line of its own."""
    source = MboxSource(tmp_path)
    source.add(0)
    connector = _connector("mbox", source.path)
    first = await _sync(connector)
    with source.path.open("ab") as handle:
        handle.write(b"rest of the previous message\n\n")
    source.add(1)
    second = await _sync(connector, first.cursor)
    assert second.keys == {mail_key(1)}
    (fragment,) = second.quarantined
    assert fragment.raw.data == b"rest of the previous message\n"
    assert fragment.reason.startswith(
        f"29 bytes at offset {first.cursor['offset']} come before any 'From ' line"
    )
    assert (await _sync(connector, second.cursor)).quarantined == []


async def test_cdr_record_cut_off_mid_write_does_not_swallow_the_next_one(
    tmp_path: Path,
) -> None:
    """Asterisk stopped mid-record and, restarted, appended the next call to the cut line."""
    path = tmp_path / "Master.csv"
    cut = cdr_row(1)[:70]
    path.write_text(cdr_row(0) + cut)
    connector = _connector("asterisk-cdr", path)
    first = await _sync(connector)
    assert first.keys == {"asterisk:1704808800.0:201"}
    with path.open("a") as handle:
        handle.write(cdr_row(2) + cdr_row(3))
    second = await _sync(connector, first.cursor)
    assert second.keys == {"asterisk:1704808800.2:201", "asterisk:1704808800.3:201"}
    (quarantined,) = second.quarantined
    assert quarantined.raw.data == cut.encode()
    assert quarantined.reason.startswith("a CDR record cut off mid-write")
    again = await _sync(connector)
    assert again.keys == {f"asterisk:1704808800.{n}:201" for n in (0, 2, 3)}
    assert [q.raw.external_id for q in again.quarantined] == [quarantined.raw.external_id]


async def test_cdr_bad_line_that_holds_no_whole_record_is_one_quarantined_item(
    tmp_path: Path,
) -> None:
    path = tmp_path / "Master.csv"
    path.write_text('"a","b"' + cdr_row(0).replace("2024-01-09 14:00:00", "gestern"))
    result = await _sync(_connector("asterisk-cdr", path))
    assert result.translated == []
    assert [q.reason for q in result.quarantined] == ["CDR row has 19 columns, expected 18"]


def _outside_links(folder: Path, outside: Path, name: str) -> None:
    """A link to a mail file outside and a link to a folder of mail outside."""
    (outside / "mail-9.eml").write_bytes(message(9))
    (folder / name).symlink_to(outside / "mail-9.eml")
    (folder / "elsewhere").symlink_to(outside, target_is_directory=True)


@pytest.mark.parametrize("source_type", [EmlSource, MaildirSource], ids=lambda s: s.kind)
async def test_links_out_of_the_folder_are_quarantined_unread(
    source_type: type[FileSource], tmp_path: Path
) -> None:
    source = source_type(tmp_path / "in")
    source.add(0)
    folder = source.path / ("new" if source.kind == "maildir" else "")
    outside = tmp_path / "outside"
    outside.mkdir()
    name = "1704700009.M9P1.host" if source.kind == "maildir" else "mail-9.eml"
    _outside_links(folder, outside, name)
    connector = _connector(source.kind, source.path)
    first = await _sync(connector)
    assert first.keys == {mail_key(0)}
    reasons = {q.reason for q in first.quarantined}
    base = "new/" if source.kind == "maildir" else ""
    assert reasons == {
        f"link leads outside the folder: {base}{name} -> {outside / 'mail-9.eml'}; it is not read",
        f"link leads outside the folder: {base}elsewhere -> {outside}; it is not read",
    }
    assert all(b"Anfrage 9" not in q.raw.data for q in first.quarantined)
    assert (await _sync(connector, first.cursor)).quarantined == []


@pytest.mark.parametrize("source_type", [EmlSource, MaildirSource], ids=lambda s: s.kind)
async def test_links_inside_the_folder_are_fine(
    source_type: type[FileSource], tmp_path: Path
) -> None:
    source = source_type(tmp_path)
    source.add(0)
    source.add(1)
    folder = source.path / ("new" if source.kind == "maildir" else "")
    first = sorted(p for p in folder.iterdir() if p.is_file())[0]
    (folder / ("1704700020.M20P1.host" if source.kind == "maildir" else "link.eml")).symlink_to(
        first
    )
    (source.path / "again").symlink_to(source.path, target_is_directory=True)
    result = await _sync(_connector(source.kind, source.path))
    assert result.quarantined == []
    assert result.keys == {mail_key(0), mail_key(1)}
    assert len(result.translated) == 3, "the file link is read; the folder link is not walked"
