"""The one search, over real HTTP and in a real Chromium: the header box of every page and
GET /api/search (DESIGN.md "Public contract").

The site: a directory with Jürgen Zimmermann (0221 7322098) at Elbe Logistik, a mailbox of the
sales user with a customer mail whose body is German ("Prüfstände", "Steuerungsmodule") and a
private one, a mailbox of the manager capped at subject, and the PBX's calls. A call-center
agent looks a caller up by number in three spellings, a salesperson finds a contact by name
and a mail by a word of its body, typed with or without its umlaut; a role that may not read a
body cannot find a mail by it.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select

from hub.admin import add_connector, import_directory
from hub.bootstrap import build_hub
from hub.pipeline import sync_all
from storage.tables import ContactRow, InteractionRow
from storage.users import add_user
from tests.e2e.conftest import (
    PASSWORD,
    USERS,
    Server,
    _settings,
    _tokens,
    start_server,
    stop_server,
)

SALES, MANAGER = USERS["sales"], USERS["manager"]
DIRECTORY = """account,domains,contact,emails,phones,owner
Elbe Logistik GmbH,elbe-logistik.de,Jürgen Zimmermann,j.zimmermann@elbe-logistik.de,0221 7322098,
Elbe Logistik GmbH,elbe-logistik.de,Jana Ohlsen,j.ohlsen@elbe-logistik.de,040 3344556,
Isar Maschinenbau AG,isar-mb.de,Tom Rieger,tom@isar-mb.de,089 1234567,
"""


def _mail(key: str, sender: str, to: str, subject: str, day: int, body: str) -> str:
    return (
        f"From x Mon Jan  8 09:00:00 2024\nFrom: {sender}\nTo: {to}\nSubject: {subject}\n"
        f"Date: {day:02d} Mar 2024 09:00:00 +0100\nMessage-ID: <{key}@search.test>\n"
        f"Content-Type: text/plain; charset=utf-8\n\n{body}\n\n"
    )


SALES_MBOX = _mail(
    "pruef", "Jürgen Zimmermann <j.zimmermann@elbe-logistik.de>", SALES, "Lieferung Köln", 4,
    "Die Steuerungsmodule für die Prüfstände kommen am Montag.",
) + _mail(
    "private", "Praxis <praxis@dr-weber.example>", SALES, "Ihr Befund", 5,
    "Ihr Gesundheitskennwort lautet 4711.",
)  # fmt: skip
MANAGER_MBOX = _mail(
    "capped", "Tom Rieger <tom@isar-mb.de>", MANAGER, "Rahmenvertrag Süd", 6,
    "Vertraulich: die Rabattstaffel wie besprochen.",
)  # fmt: skip
CDR = (
    '"","02217322098","201","from-trunk","","PJSIP/t-1","PJSIP/201-1","Dial","PJSIP/201,30",'
    '"2024-03-07 14:00:00","2024-03-07 14:00:05","2024-03-07 14:03:05",185,180,"ANSWERED",'
    '"DOCUMENTATION","1709820000.1",""\n'
)


@dataclass
class SearchSite:
    server: Server
    tokens: dict[str, str]
    zimmermann: int
    mail: int
    private: int
    capped: int
    call: int

    def api(self, role: str) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.tokens[role]}"}
        return httpx.Client(base_url=self.server.url, headers=headers, timeout=20)

    def search(self, role: str, q: str, **params: Any) -> dict[str, Any]:
        with self.api(role) as client:
            answer = client.get("/api/search", params={"q": q, **params})
        assert answer.status_code == 200, answer.text
        found: dict[str, Any] = answer.json()
        return found


async def _seed(database_url: str, workdir: Path) -> tuple[dict[str, str], dict[str, int]]:
    (workdir / "d.csv").write_text(DIRECTORY, encoding="utf-8")
    (workdir / "sales.mbox").write_text(SALES_MBOX, encoding="utf-8")
    (workdir / "manager.mbox").write_text(MANAGER_MBOX, encoding="utf-8")
    (workdir / "Master.csv").write_text(CDR, encoding="utf-8")
    hub = build_hub(_settings(database_url))
    try:
        assert not (await import_directory(hub, workdir / "d.csv")).errors
        for kind, name, settings in (
            ("mbox", "sales-mail", {"path": str(workdir / "sales.mbox"), "owner": SALES}),
            (
                "mbox",
                "manager-mail",
                {"path": str(workdir / "manager.mbox"), "owner": MANAGER, "visibility": "subject"},
            ),
            ("asterisk-cdr", "pbx", {"path": str(workdir / "Master.csv")}),
        ):
            await add_connector(hub, kind, name, settings, {})
        reports = await sync_all(hub)
        assert all(not r.errors for r in reports), [r.error for r in reports]
        async with hub.sessions() as session, session.begin():
            for role, email in USERS.items():
                await add_user(session, email, role, PASSWORD)
        async with hub.sessions() as session:
            rows = (await session.execute(select(InteractionRow))).scalars().all()
            ids = {
                (r.message_id or "call").strip("<>").removesuffix("@search.test"): r.id
                for r in rows
            }
            contact = await session.execute(
                select(ContactRow.id).where(ContactRow.name == "Jürgen Zimmermann")
            )
            ids["zimmermann"] = contact.scalar_one()
        return await _tokens(hub), ids
    finally:
        await hub.close()


@pytest.fixture(scope="module")
def search_site(
    module_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SearchSite]:
    workdir = tmp_path_factory.mktemp("search")
    with ThreadPoolExecutor(1) as pool:
        tokens, ids = pool.submit(asyncio.run, _seed(module_database_url, workdir)).result()
    server = start_server(module_database_url, workdir)
    try:
        yield SearchSite(
            server,
            tokens,
            ids["zimmermann"],
            ids["pruef"],
            ids["private"],
            ids["capped"],
            ids["call"],
        )
    finally:
        stop_server(server)
    assert "Traceback" not in server.output(), f"the server failed a request:\n{server.output()}"


def _ids(items: list[dict[str, Any]]) -> list[int]:
    return [item["id"] for item in items]


def test_a_caller_is_found_by_a_number_in_any_format_with_the_latest_calls(
    search_site: SearchSite,
) -> None:
    for typed in ("+49 221 7322098", "0221 7322098", "0221/73 22 098"):
        found = search_site.search("callcenter", typed)
        assert [c["name"] for c in found["contacts"]] == ["Jürgen Zimmermann"], typed
        assert search_site.call in _ids(found["interactions"]), typed
        assert search_site.mail in _ids(found["interactions"])  # metadata is enough for a list
    assert search_site.search("callcenter", "0221 9999999")["contacts"] == []


def test_words_find_accounts_contacts_and_mail_in_one_answer(search_site: SearchSite) -> None:
    found = search_site.search("sales", "Elbe")
    assert [a["name"] for a in found["accounts"]] == ["Elbe Logistik GmbH"]
    assert {c["name"] for c in found["contacts"]} == {"Jürgen Zimmermann", "Jana Ohlsen"}
    assert [c["name"] for c in search_site.search("sales", "zimmerm")["contacts"]] == [
        "Jürgen Zimmermann"
    ]
    for word in ("Prüfstände", "Prufstande", "prüfstand", "Steuerungsmodul"):
        assert _ids(search_site.search("sales", word)["interactions"]) == [search_site.mail], word
    assert search_site.search("sales", "Elbe", limit=1)["contacts"] != []
    with search_site.api("sales") as client:
        assert client.get("/api/search").status_code == 400
        assert client.get("/api/search", params={"q": "x", "limit": 51}).status_code == 400


def test_nobody_finds_a_mail_by_words_they_may_not_read(search_site: SearchSite) -> None:
    site = search_site
    assert _ids(site.search("sales", "Gesundheitskennwort")["interactions"]) == [site.private]
    for role in ("admin", "manager", "callcenter"):
        assert site.search(role, "Gesundheitskennwort")["interactions"] == [], role
        assert site.search(role, "Befund")["interactions"] == [], role
    # The call center reads subjects, not mail bodies; the manager's mailbox is capped at subject.
    assert site.search("callcenter", "Steuerungsmodule")["interactions"] == []
    assert _ids(site.search("callcenter", "Lieferung Köln")["interactions"]) == [site.mail]
    assert _ids(site.search("manager", "Rabattstaffel")["interactions"]) == [site.capped]
    assert site.search("sales", "Rabattstaffel")["interactions"] == []
    assert _ids(site.search("sales", "Rahmenvertrag")["interactions"]) == [site.capped]
    # IT administers: it sees that items exist, never their words.
    assert site.search("admin", "Lieferung")["interactions"] == []
    assert [c["name"] for c in site.search("admin", "Zimmermann")["contacts"]] == [
        "Jürgen Zimmermann"
    ]  # the directory is every role's


# --- in the browser -------------------------------------------------------------------------


@pytest.fixture
def page(browser: Browser, search_site: SearchSite) -> Iterator[Page]:
    context = browser.new_context(base_url=search_site.server.url)
    context.set_default_timeout(10_000)
    yield context.new_page()
    context.close()


def _log_in(page: Page, email: str) -> None:
    page.goto("/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Start", level=1)).to_be_visible()


def _search(page: Page, typed: str) -> None:
    box = page.get_by_role("searchbox", name="Search accounts, contacts and interactions")
    box.fill(typed)
    box.press("Enter")


@pytest.mark.browser
def test_the_header_search_opens_the_callers_page_for_a_number(
    page: Page, search_site: SearchSite
) -> None:
    _log_in(page, USERS["callcenter"])
    for typed in ("+49 221 7322098", "0221 7322098", "0221/73 22 098"):
        _search(page, typed)
        expect(page).to_have_url(re.compile(rf"/contacts/{search_site.zimmermann}$"))
        expect(page.get_by_role("heading", name="Jürgen Zimmermann")).to_be_visible()


@pytest.mark.browser
def test_the_header_search_finds_a_contact_by_name_and_a_mail_by_a_word(
    page: Page, search_site: SearchSite
) -> None:
    _log_in(page, SALES)
    _search(page, "Zimmermann")
    expect(page).to_have_url(re.compile(r"/search\?q=Zimmermann"))
    contacts = page.locator("section[aria-labelledby=found-contacts] a")
    expect(contacts).to_have_text(["Jürgen Zimmermann"])
    contacts.first.click()
    expect(page).to_have_url(re.compile(rf"/contacts/{search_site.zimmermann}$"))
    for typed in ("Prüfstände", "Prufstande"):
        _search(page, typed)
        hits = page.locator("section[aria-labelledby=found-items] table.timeline a")
        expect(hits).to_have_text(["Lieferung Köln"])
    _search(page, "Gesundheitskennwort")  # sales' own private mail: theirs to find
    expect(page.locator("section[aria-labelledby=found-items] a")).to_have_text(["Ihr Befund"])


@pytest.mark.browser
def test_the_header_search_shows_no_hit_a_role_may_not_read(page: Page) -> None:
    _log_in(page, USERS["manager"])
    _search(page, "Gesundheitskennwort")
    section = page.locator("section[aria-labelledby=found-items]")
    expect(section).to_contain_text("No interaction you may read")
    expect(section.locator("a")).to_have_count(0)
