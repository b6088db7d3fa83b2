"""The demo generator writes files the real connectors can read, with the counts it claims.

The demo is the first thing a new user sees, so these tests check the files against the formats
(CSV header, mboxrd, RFC 5545 line length, Asterisk's 18 columns) and the promised mix, not
against crmhub's parsers: those have their own tests.
"""

from __future__ import annotations

import csv
import email
import mailbox
from datetime import UTC, datetime
from email import policy
from pathlib import Path

import pytest

from hub.demo_data import FREE_MAIL, DemoFiles, write_demo_files


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoFiles:
    return write_demo_files(tmp_path_factory.mktemp("demo"))


def test_counts_are_in_the_requested_ranges(demo: DemoFiles) -> None:
    ranges = {
        "accounts": (45, 55),
        "contacts": (180, 220),
        "mails": (1900, 2100),
        "malformed_mails": (8, 12),
        "meetings": (90, 110),
        "calls": (280, 320),
    }
    for name, (low, high) in ranges.items():
        assert low <= demo.counts[name] <= high, name
    assert demo.internal_domain == "nordwind-systeme.example"


def test_directory_rows_belong_to_their_account(demo: DemoFiles) -> None:
    with demo.directory_csv.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    assert reader.fieldnames == ["account", "domains", "contact", "emails", "phones", "owner"]
    people = [r for r in rows if r["contact"]]
    assert len(people) == demo.counts["contacts"]
    assert len({r["account"] for r in rows}) == demo.counts["accounts"]
    assert len([r for r in rows if not r["contact"]]) >= 2
    assert any("ü" in r["contact"] for r in people)
    free = 0
    for row in rows:
        domains = row["domains"].split(";")
        assert all(d.endswith(".example") for d in domains)
        assert row["owner"].endswith("@nordwind-systeme.example")
        for address in filter(None, row["emails"].split(";")):
            domain = address.rsplit("@", 1)[1]
            assert domain in domains or domain in FREE_MAIL, (row["account"], address)
            free += domain in FREE_MAIL
    assert 5 <= free <= 15
    assert any(len(r["domains"].split(";")) == 2 for r in rows)


def test_mbox_holds_the_claimed_mails(demo: DemoFiles) -> None:
    box = mailbox.mbox(demo.mbox, create=False)
    try:
        messages = list(box)
    finally:
        box.close()
    assert len(messages) == demo.counts["mails"]
    required = ("Message-ID", "Date", "From", "To", "Subject", "MIME-Version", "Content-Type")
    parsed = [email.message_from_bytes(m.as_bytes(), policy=policy.compat32) for m in messages]
    incomplete = [p for p in parsed if any(p[h] is None for h in required)]
    assert 0 < len(incomplete) <= demo.counts["malformed_mails"]
    assert sum(p["Precedence"] == "bulk" for p in parsed) >= 30
    assert sum(p["In-Reply-To"] is not None for p in parsed) >= 100
    assert sum(p.get_content_type() == "multipart/alternative" for p in parsed) >= 50
    raw = demo.mbox.read_bytes()
    assert b"\n>From " in raw and b"=?utf-8?q?" in raw and b"=?iso-8859-1?q?" in raw
    assert b"filename*=utf-8''" in raw


def test_ics_has_the_claimed_events_and_short_lines(demo: DemoFiles) -> None:
    data = demo.ics.read_bytes()
    assert data.startswith(b"BEGIN:VCALENDAR\r\n") and data.endswith(b"END:VCALENDAR\r\n")
    lines = data.split(b"\r\n")
    assert all(len(line) <= 75 for line in lines)
    assert all(b"\n" not in line and b"\r" not in line for line in lines)
    assert lines.count(b"BEGIN:VEVENT") == demo.counts["meetings"]
    assert 3 <= sum(line.startswith(b"RRULE:") for line in lines) <= 10


def test_cdr_rows_have_18_fields(demo: DemoFiles) -> None:
    with demo.cdr.open(encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    assert len(rows) == demo.counts["calls"]
    assert all(len(row) == 18 for row in rows)
    assert len({row[16] for row in rows}) == len(rows)
    for row in rows:
        assert int(row[12]) >= int(row[13]) >= 0
        assert (row[10] == "") == (row[14] != "ANSWERED")
        datetime.strptime(row[9], "%Y-%m-%d %H:%M:%S")  # local time, as Asterisk writes it
    for line, row in zip(demo.cdr.read_text(encoding="utf-8").splitlines(), rows, strict=True):
        assert line.startswith('"",') and f',{row[12]},{row[13]},"{row[14]}",' in line
    assert {row[14] for row in rows} == {"ANSWERED", "NO ANSWER", "BUSY"}
    assert any(row[1] == "anonymous" for row in rows)


def test_same_seed_and_now_give_identical_files(tmp_path: Path) -> None:
    now = datetime(2025, 3, 15, 12, tzinfo=UTC)
    first = write_demo_files(tmp_path / "a", seed=7, now=now)
    second = write_demo_files(tmp_path / "b", seed=7, now=now)
    for name in ("directory_csv", "mbox", "ics", "cdr"):
        assert getattr(first, name).read_bytes() == getattr(second, name).read_bytes(), name
    assert first.counts == second.counts
    other = write_demo_files(tmp_path / "c", seed=8, now=now)
    assert other.mbox.read_bytes() != first.mbox.read_bytes()
