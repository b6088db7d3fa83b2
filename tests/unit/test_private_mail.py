"""Mail marked private is skipped, never stored (DESIGN.md "Who sees what": "Never stored").

The Sensitivity header is read by the shared mail translator, on the fast MIME path and the
standard one alike; a fetcher's own mark (IMAP keyword, folder) skips an item untranslated;
Maildir++ and eml subfolders named by `private_marker` are not even read; and the IMAP client
reads FLAGS and the hierarchy delimiter it needs for the same.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.base import Connector, MalformedItem, PrivateItem
from connectors.eml import EmlConnector
from connectors.imap_client import FetchedMessage, parse_fetch, parse_list
from connectors.mail import marked_private, translate_message
from connectors.maildir import MaildirConnector
from connectors.mime import split_message
from hub.model import Interaction, Quarantined, RawItem, Skipped, Translated
from tests.fetching import fetched_batches

HEAD = (
    b"From: Jana Kurz <jana@kunde.example>\r\nTo: anna@ourco.example\r\nSubject: Befund\r\n"
    b"Message-ID: <p1@kunde.example>\r\nDate: Mon, 8 Jan 2024 09:00:00 +0100\r\n"
)
PLAIN = HEAD + b"\r\nText\r\n"
MULTIPART = HEAD + (
    b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n"
    b"--B\r\nContent-Type: text/plain\r\n\r\nText\r\n"
    b"--B\r\nContent-Type: application/pdf; name=a.pdf\r\nContent-Transfer-Encoding: base64\r\n"
    b"\r\nJVBERi0=\r\n--B--\r\n"
)


def outcome(data: bytes, *, fast: bool) -> str:
    """What translate_message makes of `data`: private, malformed or translated, with why."""
    try:
        translate_message(data, fast=fast)
    except PrivateItem as e:
        return f"private: {e}"
    except MalformedItem as e:
        return f"malformed: {e}"
    return "translated"


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (b"Sensitivity: Private\r\n", "Private"),
        (b"Sensitivity: private\r\n", "Private"),
        (b"SENSITIVITY:PERSONAL\r\n", "Personal"),
        (b"Sensitivity:   Personal (set by Outlook)\r\n", "Personal"),
        (b"Sensitivity:\r\n Private\r\n", "Private"),
        (b"Sensitivity: Normal\r\nSensitivity: Private\r\n", "Private"),
    ],
)
@pytest.mark.parametrize("body", [PLAIN, MULTIPART], ids=["plain", "multipart"])
def test_mail_marked_private_or_personal_is_private_on_both_mime_paths(
    header: bytes, reason: str, body: bytes
) -> None:
    data = header + body
    assert split_message(data) is not None, "the fast path reads this mail itself"
    expected = f"private: marked Sensitivity: {reason}"
    assert outcome(data, fast=True) == outcome(data, fast=False) == expected


@pytest.mark.parametrize(
    "header",
    [
        b"Sensitivity: Company-Confidential\r\n",
        b"Sensitivity: Normal\r\n",
        b"Sensitivity: Privately\r\n",
        b"X-Sensitivity: Private\r\n",
        b"",
    ],
)
def test_other_sensitivities_are_business_mail(header: bytes) -> None:
    data = header + MULTIPART
    assert outcome(data, fast=True) == outcome(data, fast=False) == "translated"


def test_a_private_mark_wins_over_anything_that_would_quarantine_the_mail() -> None:
    """Quarantine keeps the raw bytes: a private mail must not get there by being odd."""
    no_parties = b"Sensitivity: Personal\r\nX-Mailer: script\r\n\r\nno sender, no date\r\n"
    unusual = b"Sensitivity: Private\r\n" + HEAD + b"no colon here\r\n\r\nbody\r\n"
    assert split_message(unusual) is None, "the standard parse decides this one"
    for data, reason in ((no_parties, "Personal"), (unusual, "Private")):
        expected = f"private: marked Sensitivity: {reason}"
        assert outcome(data, fast=True) == outcome(data, fast=False) == expected


def test_a_mark_behind_an_over_long_header_block_still_counts() -> None:
    filler = b"".join(b"X-Filler-%d: %s\r\n" % (n, b"x" * 70) for n in range(1000))
    business = HEAD + filler + b"\r\nText\r\n"
    private = HEAD + filler + b"Sensitivity: Personal\r\n\r\nText\r\n"
    assert len(filler) > 64_000, "past the header cap, where the parser no longer looks"
    for fast in (True, False):
        assert translate_message(business, fast=fast).subject == "Befund"
        with pytest.raises(PrivateItem, match="Sensitivity: Personal"):
            translate_message(private, fast=fast, max_header_bytes=64_000)


def test_marked_private_reads_the_header_block_only() -> None:
    assert marked_private(b"Sensitivity: private\r\n" + PLAIN) == "marked Sensitivity: Private"
    assert marked_private(PLAIN + b"Sensitivity: Private\r\n") == ""
    assert marked_private(b"Sensitivity: Company-Confidential\r\n" + PLAIN) == ""


@given(st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=30))
def test_both_mime_paths_agree_on_any_sensitivity_value(value: str) -> None:
    data = b"Sensitivity: " + value.encode() + b"\r\n" + MULTIPART
    fast = outcome(data, fast=True)
    assert fast == outcome(data, fast=False)
    if fast.startswith("private"):
        assert "private" in value.lower() or "personal" in value.lower()


def test_translate_all_skips_what_the_fetcher_or_the_translator_found_private() -> None:
    translated: list[str] = []

    class Watched(EmlConnector):
        def translate(self, raw: RawItem) -> Interaction:
            translated.append(raw.external_id)
            return super().translate(raw)

    raws = [
        RawItem("a.eml", b"", private="IMAP keyword $Private (private_marker)"),
        RawItem("b.eml", b"Sensitivity: Personal\r\n" + PLAIN),
        RawItem("c.eml", PLAIN),
        RawItem("d.eml", b"\x00garbage\r\n"),
    ]
    items = Watched("files", {"path": "/nowhere"}).translate_all(raws)
    assert items[:2] == [
        Skipped(raws[0], "IMAP keyword $Private (private_marker)"),
        Skipped(raws[1], "marked Sensitivity: Personal"),
    ]
    assert isinstance(items[2], Translated) and isinstance(items[3], Quarantined)
    assert translated == ["b.eml", "c.eml", "d.eml"], "a fetcher's mark is never translated"


def test_private_marker_names_folders_at_any_depth_in_any_case() -> None:
    connector = EmlConnector("files", {"path": "/x", "private_marker": " Private , $Personal,"})
    assert connector.private_markers == {"private", "$personal"}
    assert connector.private_folder(["Kunden", "PRIVATE"]) == (
        "in the private folder 'PRIVATE' (private_marker)"
    )
    assert connector.private_folder(["Privates", "Kunden"]) == ""
    assert EmlConnector("files", {"path": "/x"}).private_folder(["Private"]) == ""


def _mail(subject: str) -> bytes:
    return PLAIN.replace(b"Befund", subject.encode()).replace(
        b"<p1@", f"<{subject.lower()}@".encode()
    )


async def _drain(connector: Connector, cursor: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
    items: list[Any] = []
    async for batch in fetched_batches(connector, cursor):
        assert batch.fetched == len(batch.items)
        items += batch.items
        cursor = batch.cursor
    return items, cursor


def _split(items: list[Any]) -> tuple[dict[str, Skipped], set[str]]:
    skipped = {i.raw.external_id: i for i in items if isinstance(i, Skipped)}
    subjects = {i.interaction.subject for i in items if isinstance(i, Translated)}
    assert len(skipped) + len(subjects) == len(items), "nothing quarantined"
    return skipped, subjects


def _maildir(root: Path, folders: dict[str, str]) -> Iterator[str]:
    """Deliver one mail (subject = value) into each Maildir++ folder (key); yields the keys."""
    for number, (folder, subject) in enumerate(folders.items(), start=1):
        for sub in ("cur", "new", "tmp"):
            (root / folder / sub).mkdir(parents=True, exist_ok=True)
        name = f"17047000{number:02d}.M{number}P1.host:2,S"
        (root / folder / "cur" / name).write_bytes(_mail(subject))
        yield (Path(folder) / "cur" / name).as_posix()


async def test_a_maildir_subfolder_named_by_the_marker_is_skipped_unread(tmp_path: Path) -> None:
    root = tmp_path / "Maildir"
    keys = list(
        _maildir(
            root, {"": "Inbox", ".Private": "Arzt", ".Private.Bank": "Konto", ".Kunden": "Auftrag"}
        )
    )
    connector = MaildirConnector("md", {"path": str(root), "private_marker": "private"})
    items, cursor = await _drain(connector, {})
    skipped, subjects = _split(items)
    assert subjects == {"Inbox", "Auftrag"}
    assert sorted(skipped) == sorted(keys[1:3])
    assert all(item.raw.data == b"" for item in skipped.values()), "the files were not read"
    assert skipped[keys[2]].reason == "in the private folder 'Private' (private_marker)"
    assert await _drain(connector, cursor) == ([], cursor), "the cursor moved past them"


async def test_an_eml_subfolder_named_by_the_marker_is_skipped_unread(tmp_path: Path) -> None:
    root = tmp_path / "eml"
    for path, subject in (
        ("a.eml", "Inbox"),
        ("Privat/b.eml", "Arzt"),
        ("2024/privat/c.eml", "Bank"),
        ("Kunden/d.eml", "Auftrag"),
    ):
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(_mail(subject))
    connector = EmlConnector("files", {"path": str(root), "private_marker": "Privat"})
    items, cursor = await _drain(connector, {})
    skipped, subjects = _split(items)
    assert subjects == {"Inbox", "Auftrag"}
    assert sorted(skipped) == ["2024/privat/c.eml", "Privat/b.eml"]
    assert all(item.raw.data == b"" for item in skipped.values()), "the files were not read"
    assert await _drain(connector, cursor) == ([], cursor), "the cursor moved past them"


def test_fetch_answers_carry_their_flags() -> None:
    lines: list[Any] = [
        b"1 FETCH (UID 7 RFC822.SIZE 120 FLAGS (\\Seen $Private))",
        b"2 FETCH (FLAGS () UID 8 RFC822.SIZE 99)",
        b"3 FETCH (UID 9 RFC822.SIZE 5)",
        b"Fetch completed.",
    ]
    assert parse_fetch(lines) == [
        FetchedMessage(7, 120, None, frozenset({"\\Seen", "$Private"})),
        FetchedMessage(8, 99, None, frozenset()),
        FetchedMessage(9, 5, None),
    ]


def test_list_answers_carry_the_hierarchy_delimiter() -> None:
    lines: list[Any] = [
        b'(\\HasNoChildren) "/" INBOX',
        b'(\\HasChildren) "." "Private"',
        b"(\\Noselect) NIL Flat",
        b'(\\HasNoChildren) "/" "Private/Arzt"',
        b'(\\HasNoChildren) "\\\\" "A\\\\B"',
    ]
    assert [(f.name, f.delimiter, f.levels) for f in parse_list(lines)] == [
        ("INBOX", "/", ["INBOX"]),
        ("Private", ".", ["Private"]),
        ("Flat", "", ["Flat"]),
        ("Private/Arzt", "/", ["Private", "Arzt"]),
        ("A\\B", "\\", ["A", "B"]),
    ]
