"""The screen pop (`/pop?phone=`) in a real headless Chromium, as a softphone opens it in the
agent's browser, and the open review questions of `/api/lookup` per role.

The site is tests/data (Piet Brandt of Elbe Logistik calls through the PBX, nobody's) plus a
desk phone owned by the sales user, which took a call from a number nobody knows: that call is
sales' alone, and so is the open question about its number.
"""

from __future__ import annotations

import asyncio
import re
import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from hub.admin import add_connector
from hub.bootstrap import build_hub
from hub.pipeline import sync_all
from tests.e2e.conftest import (
    DATA,
    PASSWORD,
    SALES,
    USERS,
    Site,
    _settings,
    role_tokens,
    seed,
    start_server,
    stop_server,
)
from tests.e2e.test_browser import log_in

STRANGER = "+49301234567"
DESK_CDR = (
    '"","0301234567","202","from-trunk","""Fremd"" <0301234567>","PJSIP/t-1","PJSIP/202-1",'
    '"Dial","PJSIP/202,30","2024-03-05 10:00:00","2024-03-05 10:00:05","2024-03-05 10:01:05",'
    '65,60,"ANSWERED","DOCUMENTATION","1709629200.9",""\n'
)


async def _add_desk_phone(database_url: str, cdr: Path) -> None:
    hub = build_hub(_settings(database_url))
    try:
        await add_connector(hub, "asterisk-cdr", "desk", {"path": str(cdr), "owner": SALES}, {})
        reports = await sync_all(hub)
        assert all(not r.errors for r in reports), [r.error for r in reports]
    finally:
        await hub.close()


@pytest.fixture(scope="module")
def pop_site(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    workdir = tmp_path_factory.mktemp("pop")
    shutil.copy(DATA / "Master.csv", workdir / "Master.csv")
    (workdir / "desk.csv").write_text(DESK_CDR, encoding="utf-8")
    token = seed(module_database_url, workdir / "Master.csv")
    with ThreadPoolExecutor(1) as pool:
        desk = _add_desk_phone(module_database_url, workdir / "desk.csv")
        pool.submit(asyncio.run, desk).result()
    tokens = {**role_tokens(module_database_url), "sales": token}
    server = start_server(module_database_url, workdir)
    try:
        yield Site(server, module_database_url, SALES, PASSWORD, token, tokens)
    finally:
        stop_server(server)
    assert "Traceback" not in server.output(), f"the server failed a request:\n{server.output()}"


@pytest.fixture
def page(browser: Browser, pop_site: Site) -> Iterator[Page]:
    context = browser.new_context(base_url=pop_site.url)
    context.set_default_timeout(10_000)
    yield context.new_page()
    context.close()


def _lookup(site: Site, role: str, phone: str) -> Any:
    headers = {"Authorization": f"Bearer {site.tokens[role]}"}
    answer = httpx.get(f"{site.url}/api/lookup", params={"phone": phone}, headers=headers)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_only_the_calls_owner_sees_the_question_about_the_number(pop_site: Site) -> None:
    own = _lookup(pop_site, "sales", "030 123 45 67")
    (question,) = own["questions"]
    assert (question["kind"], question["key"], question["count"]) == (
        "unknown-sender",
        STRANGER,
        1,
    )
    assert own["latest"] == [] and own["contacts"] == []
    for role in ("manager", "callcenter", "admin"):
        assert _lookup(pop_site, role, "0301234567")["questions"] == [], role


def test_a_known_caller_pops_up_with_account_owner_and_history(page: Page, pop_site: Site) -> None:
    log_in(page, pop_site.email, pop_site.password, start="/pop?phone=0171%20223%2034%2045")
    expect(page).to_have_url(re.compile(r"/pop\?phone="))
    expect(page.get_by_role("heading", name="Piet Brandt", level=1)).to_be_visible()
    expect(page.locator("a[data-role=account]")).to_have_text("Elbe Logistik GmbH")
    expect(page.locator("[data-role=owner]")).to_have_text("anna@ourco.example")
    latest = page.locator("section[aria-labelledby=latest] table.timeline tr[data-channel=call]")
    expect(latest).to_have_count(1)
    expect(latest).to_contain_text("Piet")  # the call, however its subject is worded
    expect(page.get_by_role("heading", name="Open questions")).to_be_visible()
    page.locator("section.caller").get_by_role("link", name="Elbe Logistik GmbH").first.click()
    expect(page.get_by_role("heading", name="Elbe Logistik GmbH", level=1)).to_be_visible()


def test_an_unknown_caller_becomes_a_contact_at_an_account(page: Page, pop_site: Site) -> None:
    log_in(page, pop_site.email, pop_site.password, start="/pop?phone=030%20123%2045%2067")
    expect(page.get_by_role("heading", name=f"Unknown caller {STRANGER}")).to_be_visible()
    search = page.get_by_role("search", name="Search the directory")
    expect(search.get_by_role("searchbox")).to_have_value("030 123 45 67")
    form = page.get_by_role("form", name="Create contact")
    form.get_by_label("New contact").fill("Frieda Fremd")
    account = form.get_by_label("at account")
    account.fill("Elbe")  # the typeahead offers the directory's matches as options
    expect(page.locator("datalist option[value='Elbe Logistik GmbH']")).to_have_count(1)
    account.fill("Elbe Logistik GmbH")
    form.get_by_role("button", name="Create contact").click()

    expect(page).to_have_url(re.compile(r"/pop\?phone=%2B49301234567&created=1$"))
    expect(page.get_by_role("status")).to_have_text("Contact created.")
    expect(page.get_by_role("heading", name="Frieda Fremd", level=1)).to_be_visible()
    expect(page.locator("a[data-role=account]")).to_have_text("Elbe Logistik GmbH")
    latest = page.locator("section[aria-labelledby=latest] tr[data-channel=call]")
    expect(latest).to_have_count(1)  # the stored call was attributed to the new contact
    assert _lookup(pop_site, "sales", STRANGER)["questions"] == [], "the question is settled"


def test_callcenter_sees_the_pop_but_not_the_create_form(page: Page, pop_site: Site) -> None:
    log_in(page, USERS["callcenter"], PASSWORD, start="/pop?phone=%2B49%2030%209999999")
    expect(page.get_by_role("heading", name="Unknown caller +49309999999")).to_be_visible()
    expect(page.get_by_role("form", name="Create contact")).to_have_count(0)
    expect(page.get_by_role("heading", name="Open questions")).to_have_count(0)
    expect(page.locator("main")).to_contain_text("a sales person or manager adds new contacts")
    page.get_by_role("search", name="Search the directory").get_by_role("button").click()
    expect(page).to_have_url(re.compile(r"/search\?q="))
