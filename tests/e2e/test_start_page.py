"""The start page in a real Chromium: a salesperson sees their own accounts, what happened on
them lately, and what waits for them; nobody sees another user's unmatched mail there.

The site: sales@ owns Elbe Logistik (a mail two days old and one forty days old, a call
yesterday) but not Isar (a mail yesterday, owned by tom@); sales' mailbox also holds a mail
from an unknown sender (unmatched, and a review question) and a newsletter.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Browser, Page, expect

from hub.admin import add_connector, import_directory
from hub.bootstrap import build_hub
from hub.pipeline import sync_all
from storage.users import add_user
from tests.e2e.conftest import PASSWORD, USERS, Server, _settings, start_server, stop_server

pytestmark = pytest.mark.browser
SALES = USERS["sales"]
NOW = datetime.now(UTC).replace(microsecond=0)
# The page shows days in the site's time zone (tests.e2e.conftest._settings): in UTC, a mail
# sent two days ago fell on another day from 22:00 or 23:00 UTC on.
SITE_ZONE = ZoneInfo("Europe/Berlin")
DIRECTORY = f"""account,domains,contact,emails,phones,owner
Elbe Logistik GmbH,elbe-logistik.de,Jana Ohlsen,j.ohlsen@elbe-logistik.de,040 3344556,{SALES}
Isar Maschinenbau AG,isar-mb.de,Tom Rieger,tom@isar-mb.de,,tom@ourco.example
Alster AG,alster.example,,,,{SALES}
"""


def _mail(key: str, sender: str, subject: str, days_ago: float) -> str:
    when = format_datetime(NOW - timedelta(days=days_ago))
    return (
        f"From x Mon Jan  8 09:00:00 2024\nFrom: {sender}\nTo: {SALES}\nSubject: {subject}\n"
        f"Date: {when}\nMessage-ID: <{key}@start.test>\n\nText of {subject}.\n\n"
    )


MBOX = (
    _mail("fresh", "Jana Ohlsen <j.ohlsen@elbe-logistik.de>", "Angebot Kühlhaus", 2)
    + _mail("old", "Jana Ohlsen <j.ohlsen@elbe-logistik.de>", "Rahmenvertrag 2025", 40)
    + _mail("isar", "Tom Rieger <tom@isar-mb.de>", "Ersatzteile Isar", 1)
    + _mail("stranger", "Karl Unbekannt <karl@gmail.com>", "Anfrage Lagerregal", 3)
)


async def _seed(database_url: str, workdir: Path) -> None:
    (workdir / "d.csv").write_text(DIRECTORY, encoding="utf-8")
    (workdir / "sales.mbox").write_text(MBOX, encoding="utf-8")
    hub = build_hub(_settings(database_url))
    try:
        assert not (await import_directory(hub, workdir / "d.csv")).errors
        await add_connector(
            hub, "mbox", "sales-mail", {"path": str(workdir / "sales.mbox"), "owner": SALES}, {}
        )
        reports = await sync_all(hub)
        assert all(not r.errors for r in reports), [r.error for r in reports]
        async with hub.sessions() as session, session.begin():
            for role, email in USERS.items():
                await add_user(session, email, role, PASSWORD)
    finally:
        await hub.close()


@pytest.fixture(scope="module")
def start_site(
    module_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    workdir = tmp_path_factory.mktemp("start")
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, _seed(module_database_url, workdir)).result()
    server = start_server(module_database_url, workdir)
    try:
        yield server
    finally:
        stop_server(server)
    assert "Traceback" not in server.output(), f"the server failed a request:\n{server.output()}"


@pytest.fixture
def page(browser: Browser, start_site: Server) -> Iterator[Page]:
    context = browser.new_context(base_url=start_site.url)
    context.set_default_timeout(10_000)
    yield context.new_page()
    context.close()


def _log_in(page: Page, email: str) -> None:
    page.goto("/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Start", level=1)).to_be_visible()


def test_the_start_page_shows_my_accounts_their_news_and_what_waits(page: Page) -> None:
    _log_in(page, SALES)
    mine = page.locator("section[aria-labelledby=my-accounts] tbody tr")
    # Most recently in touch first; Alster has no item at all.
    expect(mine.locator("td:first-child")).to_have_text(["Elbe Logistik GmbH", "Alster AG"])
    expect(mine.first.locator("td").nth(1)).to_have_text(
        (NOW - timedelta(days=2)).astimezone(SITE_ZONE).strftime("%Y-%m-%d")
    )
    expect(mine.first.locator("td").nth(2)).to_have_text("1 item")  # the 40-day-old one is not
    expect(mine.nth(1).locator("td").nth(1)).to_have_text("never")
    activity = page.locator("section[aria-labelledby=activity] table.timeline a")
    expect(activity).to_have_text(["Angebot Kühlhaus"])  # not Isar's, not the old one
    expect(page.locator("[data-count=unmatched]")).to_have_text("1")
    expect(page.locator("section[aria-labelledby=waiting]")).to_contain_text("Anfrage Lagerregal")
    expect(page.locator("[data-count=review]")).to_have_text("1")
    expect(page.locator("section[aria-labelledby=waiting]")).to_contain_text("karl@gmail.com")
    mine.first.get_by_role("link").click()
    expect(page).to_have_url(re.compile(r"/accounts/\d+$"))


def test_another_user_sees_their_own_start_page_not_mine(page: Page) -> None:
    _log_in(page, USERS["manager"])
    expect(page.locator("section[aria-labelledby=my-accounts]")).to_contain_text(
        "No account names you as its owner"
    )
    expect(page.locator("[data-count=unmatched]")).to_have_text("0")
    expect(page.locator("section[aria-labelledby=waiting]")).not_to_contain_text("Lagerregal")
    expect(page.locator("[data-count=review]")).to_have_text("0")  # sales' mail, not theirs


def test_roles_that_do_not_review_see_no_review_questions(page: Page) -> None:
    _log_in(page, USERS["callcenter"])
    expect(page.locator("[data-count=review]")).to_have_count(0)
    expect(page.get_by_role("link", name="Open review questions")).to_have_count(0)
