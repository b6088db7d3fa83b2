"""Bad input met the way a user meets it: through `crmhub`, against a real database.

A PNG renamed `.mbox`, a call record file that ends mid-record, links out of a mail folder,
a directory CSV with short rows, quotes left open and NUL bytes, and names carrying terminal
escape sequences: each ends in a clear message and a status a script can act on, never in a
traceback, a silent skip, or a terminal taken over by a file's contents.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tests.e2e.test_cli import query
from tests.file_sources import cdr_row
from tests.unit.test_file_connectors import PNG

if TYPE_CHECKING:
    from tests.e2e.conftest import Cli

DATA = Path(__file__).parent.parent / "data"
ESCAPES = "\x1b[2J\x1b]0;owned\x07\u202e"  # clear screen, set title, bell, right-to-left


def cursors(database_url: str) -> dict[str, Any]:
    rows = query(database_url, "SELECT name, cursor FROM connectors")
    return {name: json.loads(c) if isinstance(c, str) else c for name, c in rows}


def test_a_png_renamed_mbox_fails_the_sync_and_keeps_the_cursor(
    crmhub: Cli, tmp_path: Path
) -> None:
    photo, mail = tmp_path / "photo.mbox", tmp_path / "mail.mbox"
    photo.write_bytes(PNG)
    mail.write_bytes((DATA / "contract.mbox").read_bytes())
    for name, path in (("photo", photo), ("mail", mail)):
        added = crmhub("connectors", "add", "mbox", name, "--set", f"path={path}")
        assert added.returncode == 0, added.stderr

    first = crmhub("sync")
    assert first.returncode == 1, first.stdout
    assert "Traceback" not in first.stderr
    lines = dict(line.split(": ", 1) for line in first.stdout.strip().splitlines())
    assert lines["photo"] == (
        f"fetched 0, new 0, duplicates 0, matched 0, unmatched 0, quarantined 0, errors 1 "
        f"(photo: {photo} is not an mbox file: it does not start with a 'From ' line)"
    )
    assert lines["mail"].startswith("fetched 4, new 4,")
    before = cursors(crmhub.database_url)
    assert before["photo"] in ({}, None)
    assert before["mail"]["offset"] == mail.stat().st_size

    mail.write_bytes(PNG)  # the mbox itself replaced: read from the start, and refused
    second = crmhub("sync", "mail")
    assert second.returncode == 1
    assert "is not an mbox file" in second.stdout
    assert cursors(crmhub.database_url) == before
    assert query(crmhub.database_url, "SELECT count(*) FROM interactions") == [(4,)]
    listed = crmhub("connectors", "list")
    assert "mail\tmbox\tfailed: mail: " in listed.stdout


def test_a_cdr_file_ending_mid_record_loses_and_merges_nothing(crmhub: Cli, tmp_path: Path) -> None:
    master = tmp_path / "Master.csv"
    second = cdr_row(1)
    master.write_text(cdr_row(0) + second[:60])
    added = crmhub("connectors", "add", "asterisk-cdr", "calls", "--set", f"path={master}")
    assert added.returncode == 0, added.stderr

    partial = crmhub("sync", "calls")
    assert partial.returncode == 0, partial.stdout
    assert "fetched 1, new 1," in partial.stdout
    assert cursors(crmhub.database_url)["calls"]["offset"] == len(cdr_row(0))

    with master.open("a") as handle:  # the rest of the record, and the next one
        handle.write(second[60:] + cdr_row(2))
    completed = crmhub("sync", "calls")
    assert "fetched 2, new 2, duplicates 0, matched 0, unmatched 2, quarantined 0" in (
        completed.stdout
    )
    with master.open("a") as handle:  # cut off for good: Asterisk restarted and went on
        handle.write(cdr_row(3)[:90] + cdr_row(4))
    restarted = crmhub("sync", "calls")
    assert "fetched 2, new 1, duplicates 0, matched 0, unmatched 1, quarantined 1" in (
        restarted.stdout
    )
    assert sorted(
        query(crmhub.database_url, "SELECT external_id FROM sources WHERE connector = 'calls'")
    ) == sorted(
        (f"line:{hashlib.sha256(cdr_row(n).strip().encode()).hexdigest()[:16]}",)
        for n in (0, 1, 2, 4)
    )
    ((reason,),) = query(crmhub.database_url, "SELECT reason FROM quarantine")
    assert reason.startswith("a CDR record cut off mid-write")
    assert cursors(crmhub.database_url)["calls"]["offset"] == master.stat().st_size


def test_a_link_out_of_an_eml_folder_is_quarantined_with_its_reason(
    crmhub: Cli, tmp_path: Path
) -> None:
    folder, outside = tmp_path / "eml", tmp_path / "private"
    folder.mkdir()
    outside.mkdir()
    contract = (DATA / "contract.mbox").read_bytes().split(b"\n", 1)[1].split(b"\nFrom ")[0]
    (folder / "mail.eml").write_bytes(contract)
    (outside / "diagnosis.eml").write_bytes(contract.replace(b"Subject:", b"Subject: Befund"))
    (folder / "diagnosis.eml").symlink_to(outside / "diagnosis.eml")
    added = crmhub("connectors", "add", "eml", "files", "--set", f"path={folder}")
    assert added.returncode == 0, added.stderr
    synced = crmhub("sync")
    assert synced.returncode == 0, synced.stdout
    assert "fetched 2, new 1," in synced.stdout and "quarantined 1" in synced.stdout
    assert query(crmhub.database_url, "SELECT reason FROM quarantine") == [
        (
            f"link leads outside the folder: diagnosis.eml -> {outside / 'diagnosis.eml'}; "
            "it is not read",
        )
    ]
    subjects = query(crmhub.database_url, "SELECT subject FROM interactions")
    assert not any("Befund" in s for (s,) in subjects)


def test_escape_sequences_from_sources_never_reach_the_terminal(
    crmhub: Cli, tmp_path: Path
) -> None:
    gone = tmp_path / f"mail{ESCAPES}.mbox"
    added = crmhub("connectors", "add", "mbox", "mail", "--set", f"path={gone}")
    assert added.returncode == 0, added.stderr
    bad_csv = tmp_path / f"partners{ESCAPES}.csv"
    bad_csv.write_text(
        "account,domains,contact,emails,phones,owner\n"
        f"Alster Bau GmbH,alster.example,Uwe,uwe{ESCAPES}@alster.example,,\n"
    )
    synced, tested, imported = crmhub.each(
        ("sync",), ("connectors", "test", "mail"), ("directory", "import", str(bad_csv))
    )
    listed = crmhub("connectors", "list")  # after the sync, which stored the error
    shown = "mail\\x1b[2J\\x1b]0;owned\\x07\\u202e.mbox"
    for result in (synced, listed, tested, imported):
        output = result.stdout + result.stderr
        assert "Traceback" not in output
        assert not any(c in output for c in "\x1b\x07\u202e"), output
    assert synced.returncode == 1 and shown in synced.stdout
    name, kind, state, settings = listed.stdout.rstrip("\n").split("\t")
    assert (name, kind) == ("mail", "mbox")
    assert state.startswith("failed: mail: ") and shown in state
    assert settings == f"path={tmp_path}/{shown}"
    assert tested.returncode == 2 and shown in tested.stderr
    assert imported.returncode == 1
    assert "partners\\x1b[2J\\x1b]0;owned\\x07\\u202e.csv:2: emails:" in imported.stderr
