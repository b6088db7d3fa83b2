"""The web view in a real headless Chromium, driven the way a sales person uses it.

Server-rendered pages can look right in a template test and still fail in a browser: a form that
submits to the wrong place, a filter that is not applied, a table that makes a phone scroll
sideways. So these tests log in through the form, click and type, and check what is on screen.
Chromium is Debian's (/usr/bin/chromium); when it is missing the tests fail rather than skip, so
that a CI image without it cannot pass unnoticed.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from playwright.sync_api import Browser, Page, expect

if TYPE_CHECKING:
    from tests.e2e.conftest import Site

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}
MAIL = "Angebot Lager Nord"
CALL = "Call from Piet Brandt to 201"  # the contact by name, not 01712233445


@pytest.fixture
def page(browser: Browser, site: Site) -> Iterator[Page]:
    context = browser.new_context(base_url=site.url)
    context.set_default_timeout(10_000)
    yield context.new_page()
    context.close()


@pytest.fixture
def phone(browser: Browser, site: Site) -> Iterator[Page]:
    context = browser.new_context(
        base_url=site.url, viewport=PHONE, is_mobile=True, has_touch=True, device_scale_factor=3
    )
    context.set_default_timeout(10_000)
    yield context.new_page()
    context.close()


def log_in(page: Page, email: str, password: str, start: str = "/") -> None:
    page.goto(start)
    expect(page).to_have_url(re.compile(r"/login\?next="))
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()


def timeline_rows(page: Page) -> list[tuple[str, str]]:
    """(channel, subject) of each timeline row on screen."""
    rows = page.locator("table.timeline tbody tr[data-channel]")
    return [
        (str(row.get_attribute("data-channel")), row.locator("a").first.inner_text())
        for row in rows.all()
    ]


def filter_channel(page: Page, channel: str) -> None:
    page.get_by_label("Channel").select_option(channel)
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(rf"channel={channel}"))


def horizontal_overflow(page: Page) -> int:
    """How many CSS pixels the page is wider than the screen (0 when nothing scrolls sideways)."""
    return int(page.evaluate("document.scrollingElement.scrollWidth - window.innerWidth"))


def test_log_in_search_open_a_timeline_filter_it_and_read_a_mail(page: Page, site: Site) -> None:
    log_in(page, site.email, site.password)
    expect(page.get_by_role("heading", name="Start", level=1)).to_be_visible()
    page.get_by_role("link", name="Accounts", exact=True).click()
    expect(page.get_by_role("heading", name="Accounts")).to_be_visible()
    accounts = page.locator("main table tbody td:first-child a")
    expect(accounts).to_have_text(["Elbe Logistik GmbH", "Isar Maschinenbau AG"])
    expect(page.get_by_role("button", name=f"Log out {site.email}")).to_be_visible()

    # The one search, in the header of every page: accounts by domain or name.
    header_search = page.get_by_role("searchbox", name="Search accounts, contacts and interactions")
    header_search.fill("isar-mb")
    header_search.press("Enter")
    expect(page).to_have_url(re.compile(r"/search\?q=isar-mb"))
    found = page.locator("section[aria-labelledby=found-accounts] a")
    expect(found).to_have_text(["Isar Maschinenbau AG"])

    header_search.fill("elbe")
    header_search.press("Enter")
    expect(found).to_have_text(["Elbe Logistik GmbH"])
    found.first.click()

    expect(page.get_by_role("heading", name="Elbe Logistik GmbH", level=1)).to_be_visible()
    assert timeline_rows(page) == [("meeting", "Jahresgespraech"), ("call", CALL), ("email", MAIL)]

    filter_channel(page, "call")
    expect(page.locator("table.timeline tbody tr")).to_have_count(1)
    assert timeline_rows(page) == [("call", CALL)]
    expect(page.get_by_label("Channel")).to_have_value("call")

    offered = page.get_by_label("Channel").locator("option").all_inner_texts()
    assert offered == ["all", "call (1)", "email (1)", "meeting (1)"], "only channels present"
    page.goto(page.url.replace("channel=call", "channel=sms"))  # a link kept from elsewhere
    assert timeline_rows(page) == []
    expect(page.locator("table.timeline")).to_contain_text("Nothing here for this filter")

    filter_channel(page, "email")
    assert timeline_rows(page) == [("email", MAIL)]

    page.get_by_role("link", name=MAIL).click()
    expect(page.get_by_role("heading", name=MAIL, level=1)).to_be_visible()
    expect(page.locator(".mail")).to_contain_text("Guten Tag, anbei unsere Anfrage.")
    expect(page.locator("ul.attributions")).to_contain_text("Elbe Logistik GmbH")
    expect(page.get_by_role("link", name="Jana Ohlsen")).to_be_visible()


def test_a_date_range_narrows_the_timeline(page: Page, site: Site) -> None:
    log_in(page, site.email, site.password)
    page.get_by_role("link", name="Accounts", exact=True).click()
    page.get_by_role("link", name="Elbe Logistik GmbH").click()
    page.get_by_label("From").fill("2024-01-09")
    page.get_by_label("Until").fill("2024-01-10")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"since=2024-01-09&until=2024-01-10"))
    assert timeline_rows(page) == [("call", CALL)]


def test_a_deep_link_survives_the_login(page: Page, site: Site) -> None:
    log_in(page, site.email, site.password, start="/unmatched?tab=bulk")
    expect(page).to_have_url(re.compile(r"/unmatched\?tab=bulk$"))
    expect(page.locator("main")).to_contain_text("Newsletter 1/2024")


def test_a_wrong_password_shows_an_error_and_lets_nobody_in(page: Page, site: Site) -> None:
    log_in(page, site.email, "not the password")
    expect(page.get_by_role("alert")).to_have_text("Wrong email or password.")
    expect(page).to_have_url(re.compile(r"/login$"))
    expect(page.get_by_label("Email")).to_have_value(site.email)
    expect(page.get_by_role("button", name=re.compile("Log out"))).to_have_count(0)

    page.goto("/accounts/1")
    expect(page).to_have_url(re.compile(r"/login\?next=%2Faccounts%2F1$"))
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    assert "Elbe Logistik" not in page.content()


def test_the_pages_fit_a_phone_screen(phone: Page, site: Site) -> None:
    log_in(phone, site.email, site.password)
    expect(phone.get_by_role("heading", name="Start", level=1)).to_be_visible()
    assert phone.evaluate("window.innerWidth") == PHONE["width"]
    assert horizontal_overflow(phone) <= 0, "the start page scrolls sideways"
    phone.goto("/accounts")
    expect(phone.get_by_role("heading", name="Accounts")).to_be_visible()
    assert horizontal_overflow(phone) <= 0, "the account list scrolls sideways"

    phone.get_by_role("link", name="Elbe Logistik GmbH").click()
    expect(phone.locator("table.timeline tbody tr")).to_have_count(3)
    assert horizontal_overflow(phone) <= 0, "the timeline scrolls sideways"
    expect(phone.get_by_role("button", name="Filter")).to_be_in_viewport()

    phone.get_by_role("link", name=MAIL).click()
    expect(phone.locator(".mail")).to_contain_text("anbei unsere Anfrage")
    assert horizontal_overflow(phone) <= 0, "the mail scrolls sideways"


def test_times_are_shown_in_the_configured_zone_and_say_so(page: Page, site: Site) -> None:
    """The mail was sent at 09:00 +0100 (08:00 UTC): Berlin reads 09:00, and the page says
    which zone its times are in (issue 13: UTC was printed without saying so)."""
    log_in(page, site.email, site.password)
    page.get_by_role("link", name="Accounts", exact=True).click()
    page.get_by_role("link", name="Elbe Logistik GmbH").click()
    row = page.locator("table.timeline tbody tr", has=page.get_by_role("link", name=MAIL))
    expect(row.locator("td.when")).to_have_text("2024-01-08 09:00")
    expect(page.get_by_text("Times are in Europe/Berlin.")).to_be_visible()
