"""`crmhub blocklist ...` and `crmhub privacy ...` as an operator or a data protection officer
runs them: exit status 0 on success, 2 with one `crmhub: ...` line for a bad request, and the
database state the commands promise (on SQLite also: the file is owner-only)."""

from __future__ import annotations

import json
import stat
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

from storage import db
from tests.e2e.conftest import seed
from tests.e2e.test_cli import one_line_error, query

if TYPE_CHECKING:
    from tests.e2e.conftest import Cli


def test_blocklist_add_list_remove(crmhub: Cli, database_url: str) -> None:
    seed(database_url)
    added = crmhub("blocklist", "add", "@Elbe-Logistik.DE")
    assert added.returncode == 0, added.stderr
    assert added.stdout.strip() == (
        "elbe-logistik.de blocked for everyone; stored items deleted 2, sources removed 0"
    )
    mine = crmhub("blocklist", "add", "piet.brandt@gmail.com", "--user", "Anna@ourco.example")
    assert mine.returncode == 0, mine.stderr
    assert mine.stdout.startswith("pietbrandt@gmail.com blocked in the mailboxes of anna@ourco")
    listed = crmhub("blocklist", "list")
    assert listed.returncode == 0, listed.stderr
    rows = [line.split("\t")[:3] for line in listed.stdout.strip().splitlines()]
    assert rows == [
        ["ENTRY", "FOR", "ADDED BY"],
        ["elbe-logistik.de", "everyone", "cli"],
        ["pietbrandt@gmail.com", "anna@ourco.example", "cli"],
    ]
    removed, missing, bad = crmhub.each(
        ("blocklist", "remove", "elbe-logistik.de"),
        ("blocklist", "remove", "nobody@elbe-logistik.de"),
        ("blocklist", "add", "not an address@"),
    )
    assert removed.returncode == 0, removed.stderr
    assert "elbe-logistik.de removed" in removed.stdout
    assert one_line_error(missing) == (
        "crmhub: nobody@elbe-logistik.de is not on the blocklist (admin-wide)"
    )
    assert "is not a mail address" in one_line_error(bad)
    subjects = {row[0] for row in query(database_url, "SELECT subject FROM interactions")}
    assert "Angebot Lager Nord" not in subjects and "Re: Ersatzteile" in subjects
    actions = query(database_url, "SELECT action FROM audit_log WHERE action LIKE 'blocklist.%'")
    assert [a for (a,) in actions] == ["blocklist.add", "blocklist.add", "blocklist.remove"]


def test_export_then_erase_a_person(crmhub: Cli, database_url: str, tmp_path: Path) -> None:
    seed(database_url)
    out = tmp_path / "piet.zip"
    exported = crmhub("privacy", "export", "+49 171 2233445", "--out", str(out))
    assert exported.returncode == 0, exported.stderr
    assert exported.stdout.strip() == (
        f"+491712233445: 1 items, 1 contact records, 1 raw messages, 0 attachments, "
        f"0 quarantined items written to {out}"
    )
    with zipfile.ZipFile(out) as z:
        document = json.loads(z.read("export.json"))
    assert document["contacts"][0]["name"] == "Piet Brandt"
    assert document["items"][0]["channel"] == "call"

    shown = crmhub("privacy", "erase", "piet.brandt@gmail.com")
    assert shown.returncode == 2
    assert shown.stderr.strip() == "nothing erased yet: run again with --yes to erase this"
    assert shown.stdout.splitlines()[:3] == [
        "person: +491712233445, pietbrandt@gmail.com",
        "items deleted (no other outside party): 2",
        "items redacted (kept for their other parties): 0",
    ]
    assert query(database_url, "SELECT count(*) FROM contacts WHERE name = 'Piet Brandt'") == [(1,)]
    erased = crmhub("privacy", "erase", "piet.brandt@gmail.com", "--yes")
    assert erased.returncode == 0, erased.stderr
    assert erased.stdout.startswith("items deleted 2, items redacted 0, contacts deleted 1,")
    assert query(database_url, "SELECT count(*) FROM contacts WHERE name = 'Piet Brandt'") == [(0,)]
    audit = query(database_url, "SELECT action, target FROM audit_log ORDER BY id")
    assert ("privacy.erase", "") in audit and ("privacy.export", "[erased]") in audit
    again = crmhub("privacy", "export", "+49 171 2233445", "--out", str(out))
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith("+491712233445: 0 items, 0 contact records")

    nonsense, nowhere = crmhub.each(
        ("privacy", "erase", "Piet", "--yes"),
        ("privacy", "export", "piet.brandt@gmail.com", "--out", str(tmp_path / "no" / "x.zip")),
    )
    assert "'Piet' is neither a mail address nor a complete phone number" in one_line_error(
        nonsense
    )
    assert "the folder" in one_line_error(nowhere)


def test_retention_now_and_a_bad_setting(crmhub: Cli, database_url: str) -> None:
    seed(database_url)
    ran = crmhub("privacy", "retention", env={"CRMHUB_RETENTION_DAYS": "call=30,note=7"})
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.splitlines() == [
        "call: 1 items older than 30 days deleted",
        "note: 0 items older than 7 days deleted",
    ]
    assert query(database_url, "SELECT count(*) FROM interactions WHERE channel = 'call'") == [(0,)]
    bad = crmhub("privacy", "retention", env={"CRMHUB_RETENTION_DAYS": "calls=30"})
    assert "retention_days" in one_line_error(bad) and "'calls' is not a channel" in bad.stderr


def test_the_database_file_is_created_owner_only(crmhub: Cli, database_url: str) -> None:
    path = db.sqlite_path(database_url)
    upgraded = crmhub("db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    if path is None:
        return  # PostgreSQL: its files are the server's
    listed = crmhub("blocklist", "list")  # opens the database in WAL mode
    assert listed.returncode == 0, listed.stderr
    for name in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        if name.exists():
            assert stat.S_IMODE(name.stat().st_mode) == 0o600, name
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
