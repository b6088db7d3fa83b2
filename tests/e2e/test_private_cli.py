"""`crmhub sync` over an mbox that holds a mail marked private, as an operator runs it: the
mail is reported as skipped, in the text and in `--json`, and nothing of it is stored."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from tests.e2e.test_cli import query
from tests.stored import stored_bytes

if TYPE_CHECKING:
    from tests.e2e.conftest import Cli


def _mbox(path: Path) -> None:
    business = (
        "From: Jens Ohlsen <j.ohlsen@elbe-logistik.de>\nTo: anna@ourco.example\n"
        "Subject: Angebot\nMessage-ID: <offer-1@elbe-logistik.de>\n"
        "Date: Mon, 8 Jan 2024 09:00:00 +0100\n\nzz-business-text\n"
    )
    private = (
        "From: Jens Ohlsen <j.ohlsen@elbe-logistik.de>\nTo: anna@ourco.example\n"
        "Subject: Arzttermin\nMessage-ID: <doctor-1@elbe-logistik.de>\n"
        "Date: Mon, 8 Jan 2024 10:00:00 +0100\nSensitivity: Private\n\nzz-private-text\n"
    )
    envelope = "From MAILER-DAEMON Mon Jan  8 09:00:00 2024\n"
    path.write_text(f"{envelope}{business}\n{envelope}{private}\n", encoding="utf-8")


def test_sync_reports_a_private_mail_as_skipped_and_stores_none_of_it(
    crmhub: Cli, tmp_path: Path
) -> None:
    box = tmp_path / "inbox.mbox"
    _mbox(box)
    for name in ("mail", "copy"):
        added = crmhub("connectors", "add", "mbox", name, "--set", f"path={box}")
        assert added.returncode == 0, added.stderr

    text = crmhub("sync", "mail")
    assert text.returncode == 0, text.stderr
    assert text.stdout.strip() == (
        "mail: fetched 2, new 1, duplicates 0, matched 0, unmatched 1, quarantined 0, "
        "skipped 1, errors 0"
    )
    as_json = crmhub("sync", "copy", "--json")
    assert as_json.returncode == 0, as_json.stderr
    (report,) = json.loads(as_json.stdout)["connectors"]
    counts = ("fetched", "new", "duplicates", "quarantined", "skipped", "errors")
    assert {k: report[k] for k in counts} == dict(zip(counts, (2, 0, 1, 0, 1, 0), strict=True))

    stored = stored_bytes(crmhub.database_url)
    assert b"zz-business-text" in stored and b"<offer-1@elbe-logistik.de>" in stored
    assert b"zz-private-text" not in stored and b"<doctor-1@elbe-logistik.de>" not in stored
    assert b"Arzttermin" not in stored
    assert query(crmhub.database_url, "SELECT count(*) FROM interactions") == [(1,)]

    again = crmhub("sync", "--json")
    assert again.returncode == 0, again.stderr
    reports = json.loads(again.stdout)["connectors"]
    assert [(r["fetched"], r["skipped"]) for r in reports] == [(0, 0), (0, 0)]
