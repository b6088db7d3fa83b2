"""A long timeline in a real headless Chromium: the head counts what is there, the channel
filter offers only the channels present, and the reader pages towards older items and back
to the newest, seeing the same pages again (Debian's Chromium; missing, the tests fail)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.e2e.test_browser import log_in, timeline_rows

if TYPE_CHECKING:
    from tests.e2e.conftest import Cli, Server

pytestmark = pytest.mark.browser

MAILS = 60  # more than two pages of 25
THREADED = 56  # mails 57-59 answer it: the first page folds four mails into one row
DIRECTORY = (
    "account,domains,contact,emails,phones,owner\n"
    "Weser Werft AG,weser-werft.example,Ole Janssen,ole@weser-werft.example,+49 421 555010,"
    "sales@ourco.example\n"
)
CDR = (
    '"","0421 555010","201","from-trunk","""Ole"" <0421 555010>","PJSIP/t-1","PJSIP/201-1",'
    '"Dial","PJSIP/201,30","2024-03-01 10:00:00","2024-03-01 10:00:05","2024-03-01 10:03:05",'
    '185,180,"ANSWERED","DOCUMENTATION","1709283600.1",""\n'
)


def _mbox() -> str:
    start = datetime(2024, 1, 1, 9, tzinfo=UTC)
    mails = []
    for n in range(MAILS):
        at = start + timedelta(days=n)
        # The last THREAD mails answer mail 56 and each other: one thread of THREAD + 1.
        subject = f"Re: Rumpf {THREADED:02d}" if n > THREADED else f"Rumpf {n:02d}"
        chain = " ".join(f"<rumpf-{i}@weser-werft.example>" for i in range(THREADED, n))
        threading = f"In-Reply-To: <rumpf-{n - 1}@weser-werft.example>\nReferences: {chain}\n"
        mails.append(
            f"From x {at:%a %b %d %H:%M:%S %Y}\n"
            f"From: Ole Janssen <ole@weser-werft.example>\nTo: sales@ourco.example\n"
            f"Subject: {subject}\nDate: {format_datetime(at)}\n"
            f"Message-ID: <rumpf-{n}@weser-werft.example>\n"
            + (threading if n > THREADED else "")
            + f"\nStand {n}.\n\n"
        )
    return "".join(mails)


PASSWORD = "correct horse 42"


@contextmanager
def _browsing(browser: Browser, site: Server) -> Iterator[Page]:
    """A fresh browser context (its own cookies: its own login) on `site`."""
    context = browser.new_context(base_url=site.url)
    context.set_default_timeout(10_000)
    try:
        yield context.new_page()
    finally:
        context.close()


def _site(
    crmhub: Cli,
    serve: Callable[[str, Path], Server],
    tmp_path: Path,
    files: dict[str, str],
    *commands: tuple[str, ...],
) -> Server:
    """A site of its own: `files` written, the directory imported, `commands` run through
    the CLI as an operator would (users' passwords are PASSWORD), then served."""
    for name, text in files.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    for args in (("directory", "import", str(tmp_path / "directory.csv")), *commands):
        done = crmhub(*args, env={"PW": PASSWORD})
        assert done.returncode == 0, (args, done.stdout, done.stderr)
    return serve(crmhub.database_url, tmp_path)


def _user(email: str, role: str) -> tuple[str, ...]:
    return ("users", "add", email, "--role", role, "--password-env", "PW")


def _mailbox(tmp_path: Path) -> tuple[str, ...]:
    """mail.mbox as the mailbox of sales@ourco.example."""
    path = f"path={tmp_path / 'mail.mbox'}"
    return (
        "connectors",
        "add",
        "mbox",
        "mail",
        "--set",
        path,
        "--set",
        "owner=sales@ourco.example",
    )


@pytest.fixture
def long_site(crmhub: Cli, serve: Callable[[str, Path], Server], tmp_path: Path) -> Server:
    pbx = ("connectors", "add", "asterisk-cdr", "pbx", "--set", f"path={tmp_path / 'Master.csv'}")
    files = {"directory.csv": DIRECTORY, "mail.mbox": _mbox(), "Master.csv": CDR}
    return _site(crmhub, serve, tmp_path, files, _mailbox(tmp_path), pbx, ("sync",),
                 _user("sales@ourco.example", "sales"))  # fmt: skip


def test_a_long_timeline_counts_filters_and_pages_both_ways(
    browser: Browser, long_site: Server
) -> None:
    with _browsing(browser, long_site) as page:
        log_in(page, "sales@ourco.example", PASSWORD)
        page.get_by_placeholder(re.compile("Search")).fill("Weser Werft")
        page.keyboard.press("Enter")
        page.get_by_role("link", name="Weser Werft AG").first.click()
        expect(page.get_by_role("heading", name="Weser Werft AG", level=1)).to_be_visible()
        summary = page.locator("dl.summary")
        expect(summary).to_contain_text("email")
        expect(summary).to_contain_text(str(MAILS))
        options = page.get_by_label("Channel").locator("option").all_inner_texts()
        assert options == ["all", f"email ({MAILS})", "call (1)"], options
        expect(page.locator("nav.pages .total")).to_have_text(f"{MAILS + 1} items")
        expect(page.get_by_role("link", name="← Newer")).to_have_count(0)

        thread = page.locator("table.timeline tbody tr.thread")
        expect(thread).to_have_count(1)
        expect(thread.locator(".count")).to_have_text("4")
        expect(thread.locator("a").first).to_have_text(f"Re: Rumpf {THREADED}")
        earlier = thread.locator("details.thread li")
        expect(earlier.first).to_be_hidden()
        thread.get_by_text("3 earlier on this page").click()  # expands in place
        expect(earlier).to_have_count(3)
        expect(earlier.first).to_be_visible()
        expect(earlier.last.locator("a")).to_have_text(f"Rumpf {THREADED}")
        pages = [timeline_rows(page)]
        for _ in range(2):
            page.get_by_role("link", name="Older →").click()
            expect(page).to_have_url(re.compile(r"cursor="))
            pages.append(timeline_rows(page))
        # 25 items a page; on the first, the thread's four mails are one row
        assert [len(p) for p in pages] == [22, 25, MAILS + 1 - 50]
        expect(page.get_by_role("link", name="Older →")).to_have_count(0)
        back = [pages[-1]]
        for _ in range(2):
            page.get_by_role("link", name="← Newer").click()
            back.append(timeline_rows(page))
        assert back == pages[::-1]
        expect(page.get_by_role("link", name="← Newer")).to_have_count(0)

        page.get_by_label("Channel").select_option("call")
        page.get_by_role("button", name="Filter").click()
        expect(page.locator("nav.pages .total")).to_have_text("1 item in this filter")
        assert timeline_rows(page) == [("call", "Call from Ole Janssen to 201")]


UNMATCHED_MBOX = "".join(
    f"From x Mon Jan  {8 + n} 09:00:00 2024\nFrom: {sender}\nTo: sales@ourco.example\n"
    f"Subject: {subject}\nDate: Mon, {8 + n} Jan 2024 09:00:00 +0100\n"
    f"Message-ID: <u{n}@test>\n{extra}\nText {n}.\n\n"
    for n, (sender, subject, extra) in enumerate(
        [
            ("Fremd <anfrage@neukunde.example>", "Anfrage Schiffsschrauben", ""),
            ("Kollege <kollege@ourco.example>", "Mittagessen?", ""),
            ("Werft News <news@weser-werft.example>", "Newsletter 1/2024", "Precedence: bulk\n"),
        ]
    )
)


@pytest.fixture
def unmatched_site(crmhub: Cli, serve: Callable[[str, Path], Server], tmp_path: Path) -> Server:
    files = {"directory.csv": DIRECTORY, "mail.mbox": UNMATCHED_MBOX}
    users = _user("sales@ourco.example", "sales"), _user("other@ourco.example", "sales")
    return _site(crmhub, serve, tmp_path, files, _mailbox(tmp_path), ("sync",), *users)


def test_unmatched_has_tabs_and_an_item_is_assigned_from_the_list(
    browser: Browser, unmatched_site: Server
) -> None:
    with _browsing(browser, unmatched_site) as page:
        listed = page.locator("table.unmatched tbody tr td:nth-child(2) > a")
        log_in(page, "sales@ourco.example", PASSWORD, start="/unmatched")
        tabs = page.get_by_role("navigation", name="Why unmatched")
        expect(tabs.get_by_role("link")).to_have_text(
            ["Unknown senders", "Internal", "Bulk and automated"]
        )
        expect(listed).to_have_text(["Anfrage Schiffsschrauben"])
        tabs.get_by_role("link", name="Internal").click()
        expect(listed).to_have_text(["Mittagessen?"])
        tabs.get_by_role("link", name="Bulk and automated").click()
        expect(listed).to_have_text(["Newsletter 1/2024"])
        tabs.get_by_role("link", name="Unknown senders").click()
        page.get_by_label("Assign to account").fill("weser-werft.example")
        page.get_by_role("button", name="Assign").click()
        expect(page).to_have_url(re.compile(r"/unmatched\?tab=unknown$"))
        expect(page.locator("table.unmatched")).to_contain_text("Nothing here.")
        page.goto("/accounts")
        page.get_by_role("link", name="Weser Werft AG").click()
        assert ("email", "Anfrage Schiffsschrauben") in timeline_rows(page)
    # Another user's Unmatched holds none of it: unattributed mail is its owner's alone.
    with _browsing(browser, unmatched_site) as mine:
        log_in(mine, "other@ourco.example", PASSWORD, start="/unmatched?tab=bulk")
        expect(mine.locator("table.unmatched")).to_contain_text("Nothing here.")


DUPLICATES = (
    "account,domains,contact,emails,phones,owner\n"
    "Weser Werft AG,weser-werft.example,Ole Janssen,ole@weser-werft.example,,\n"
    "Weserwerft Bremen,werft-bremen.example,Maren Stock,maren@werft-bremen.example,,\n"
)


@pytest.fixture
def duplicate_site(crmhub: Cli, serve: Callable[[str, Path], Server], tmp_path: Path) -> Server:
    users = _user("chefin@ourco.example", "manager"), _user("sales@ourco.example", "sales")
    return _site(crmhub, serve, tmp_path, {"directory.csv": DUPLICATES}, *users)


def test_a_manager_merges_a_duplicate_account_picked_by_typeahead(
    browser: Browser, duplicate_site: Server
) -> None:
    with _browsing(browser, duplicate_site) as page:
        log_in(page, "chefin@ourco.example", PASSWORD, start="/accounts")
        page.get_by_role("link", name="Weser Werft AG").click()
        page.get_by_text("Merge a duplicate into this account").click()
        field = page.get_by_label("Duplicate account")
        with page.expect_response(lambda r: "kinds=account" in r.url and r.status == 200):
            field.press_sequentially("werft-br", delay=30)
        options = page.locator(f"datalist#{field.get_attribute('list')} option")
        expect(options).to_have_count(1)
        expect(options.first).to_have_attribute("value", "Weserwerft Bremen")
        field.fill("Weserwerft Bremen")
        page.get_by_role("button", name="Merge into Weser Werft AG").click()
        expect(page.get_by_role("status")).to_contain_text("Weserwerft Bremen")
        expect(page.locator("table.contacts")).to_contain_text("Maren Stock")
        page.goto("/accounts")
        expect(page.get_by_role("link", name="Weserwerft Bremen")).to_have_count(0)
    # Merging is the managers' (DESIGN.md "Who sees what"): no form for sales.
    with _browsing(browser, duplicate_site) as mine:
        log_in(mine, "sales@ourco.example", PASSWORD, start="/accounts")
        mine.get_by_role("link", name="Weser Werft AG").click()
        expect(mine.get_by_text("Merge a duplicate")).to_have_count(0)
