"""The review queue over real HTTP and in a real headless Chromium, as people and scripts use it.

A `crmhub serve` child process serves tests/data plus one mailbox of senders matching could not
place (free-mail senders, a contact's name on a stranger's address, a domain two accounts list).
The read-only checks run first; every settling test answers a case of its own, so the module
shares one server. The review mailbox is the sales user's own, so the queue's cases are theirs
to answer; the call-center role may not review (DESIGN.md "Who sees what").
"""

from __future__ import annotations

import asyncio
import re
import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from config.settings import Settings
from hub.admin import add_connector, import_directory
from hub.bootstrap import build_hub
from hub.pipeline import sync_all
from storage.tokens import create_token
from storage.users import add_user
from tests.e2e.conftest import DATA, SALES, SECRET_KEY, Server, seed, start_server, stop_server
from tests.e2e.test_api import api_error, cursor_of, ok
from tests.e2e.test_browser import log_in

EXTRA_DIRECTORY = """account,domains,contact,emails,phones,owner
Isar Maschinenbau AG,beide.example,,,,
Alster AG,alster.example;beide.example,Eva Kurz,eva@alster.example,,
"""
JANA = "Jana Ohlsen at Elbe Logistik GmbH"
PIET = "Piet Brandt at Elbe Logistik GmbH"
PASSWORD = "correct horse 42"  # of sales@ourco.example (conftest.seed) and cc@ourco.example


def _mail(key: str, sender: str, subject: str, day: int, body: str = "") -> str:
    return (
        f"From x Mon Jan  8 09:00:00 2024\n"
        f"From: {sender}\nTo: anna@ourco.example\nSubject: {subject}\n"
        f"Date: {day:02d} Feb 2024 09:00:00 +0100\nMessage-ID: <{key}@review.test>\n\n"
        f"{body or subject + '.'}\n\n"
    )


REVIEW_MBOX = "".join(
    (
        _mail("jana", "jana.ohlsen84@gmail.com", "Liste Lager Süd", 1,
              "Hallo Anna,\nanbei die Liste.\n\n-- \nJana Ohlsen\nTel. 040 3344556\n"),
        _mail("piet", "P. Brandt <p.brandt.privat@gmx.de>", "Rückruf", 2,
              "Bitte rufen Sie an.\n\nPiet Brandt\nMobil +49 171 2233445\n"),
        _mail("lookalike", "Jana Ohlsen <jana@rechnung-sofort.example>", "Rechnung", 3),
        _mail("shared-domain", "einkauf@beide.example", "Anfrage", 4),
        *(_mail(f"kunde{n}", f"kunde{n}@web.de", f"Frage {n}", 10 + n) for n in range(5)),
    )
)  # fmt: skip


@dataclass
class ReviewSite:
    server: Server
    sales: str  # API token of sales@ourco.example
    callcenter: str  # API token of cc@ourco.example

    @property
    def url(self) -> str:
        return self.server.url


async def _seed_review(database_url: str, workdir: Path) -> str:
    """Add the review mailbox and a call-center user to a database `seed` prepared."""
    (workdir / "extra.csv").write_text(EXTRA_DIRECTORY, encoding="utf-8")
    (workdir / "review.mbox").write_text(REVIEW_MBOX, encoding="utf-8")
    settings = Settings(
        database_url=database_url,
        internal_domains=["ourco.example"],
        default_region="DE",
        timezone="Europe/Berlin",
        secret_key=SECRET_KEY,
    )
    hub = build_hub(settings)
    try:
        assert not (await import_directory(hub, workdir / "extra.csv")).errors
        mailbox = {"path": str(workdir / "review.mbox"), "owner": SALES}
        await add_connector(hub, "mbox", "review", mailbox, {})
        reports = await sync_all(hub)
        assert all(not r.errors for r in reports), [r.error for r in reports]
        async with hub.sessions() as session, session.begin():
            row = await add_user(session, "cc@ourco.example", "callcenter", PASSWORD)
            return await create_token(session, row)
    finally:
        await hub.close()


@pytest.fixture(scope="module")
def review_site(
    module_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ReviewSite]:
    workdir = tmp_path_factory.mktemp("review")
    shutil.copy(DATA / "Master.csv", workdir / "Master.csv")
    sales = seed(module_database_url, workdir / "Master.csv")
    with ThreadPoolExecutor(1) as pool:
        callcenter = pool.submit(asyncio.run, _seed_review(module_database_url, workdir)).result()
    server = start_server(module_database_url, workdir)
    try:
        yield ReviewSite(server, sales, callcenter)
    finally:
        stop_server(server)
    assert "Traceback" not in server.output(), f"the server failed a request:\n{server.output()}"


@pytest.fixture(scope="module")
def api(review_site: ReviewSite) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {review_site.sales}"}
    with httpx.Client(base_url=review_site.url, headers=headers, timeout=20) as client:
        yield client


@pytest.fixture(scope="module")
def callcenter(review_site: ReviewSite) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {review_site.callcenter}"}
    with httpx.Client(base_url=review_site.url, headers=headers, timeout=20) as client:
        yield client


def _cases(api: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    """Every open case, all pages."""
    cases: list[dict[str, Any]] = []
    cursor: str | None = None
    for _ in range(50):
        page = ok(
            api.get("/api/review", params={**params, **({"cursor": cursor} if cursor else {})})
        )
        cases += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return cases
    raise AssertionError("/api/review kept handing out cursors")


def _case(api: httpx.Client, key: str) -> dict[str, Any]:
    (found,) = [c for c in _cases(api, limit=200) if c["key"] == key]
    return found


def _contact_id(api: httpx.Client, name: str) -> int:
    accounts = ok(api.get("/api/accounts", params={"q": "Elbe"}))["items"]
    elbe = ok(api.get(f"/api/accounts/{accounts[0]['id']}"))
    (found,) = [c["id"] for c in elbe["contacts"] if c["name"] == name]
    return int(found)


def _timeline_subjects(api: httpx.Client, contact_id: int) -> set[str]:
    page = ok(api.get(f"/api/contacts/{contact_id}/timeline", params={"limit": 200}))
    return {item["subject"] for item in page["items"]}


def _case_keys(review_site: ReviewSite) -> set[str]:
    headers = {"Authorization": f"Bearer {review_site.sales}"}
    with httpx.Client(base_url=review_site.url, headers=headers, timeout=20) as client:
        return {c["key"] for c in _cases(client)}


def test_the_review_routes_need_a_token(review_site: ReviewSite) -> None:
    with httpx.Client(base_url=review_site.url, timeout=10) as anonymous:
        api_error(anonymous.get("/api/review"), 401, "unauthenticated")
        body = {"key": "kunde0@web.de", "settlement": "ignore"}
        api_error(anonymous.post("/api/review/settlements", json=body), 401, "unauthenticated")
        bad = {"Authorization": "Bearer crm_not-a-token"}
        api_error(anonymous.get("/api/review", headers=bad), 401, "unauthenticated")
        api_error(
            anonymous.post("/api/review/settlements", json=body, headers=bad),
            401,
            "unauthenticated",
        )
    # Nothing was settled by the refused calls.
    assert _case_keys(review_site) >= {"kunde0@web.de"}


def test_the_queue_lists_each_case_with_its_items_and_suggestions(api: httpx.Client) -> None:
    cases = _cases(api, limit=200)
    assert {(c["kind"], c["key"]) for c in cases} == {
        ("unknown-sender", "janaohlsen84@gmail.com"),
        ("unknown-sender", "p.brandt.privat@gmx.de"),
        ("name-lookalike", "jana@rechnung-sofort.example"),
        ("shared-domain", "beide.example"),
        *(("unknown-sender", f"kunde{n}@web.de") for n in range(5)),
    }
    assert [c["key"] for c in cases][:2] == ["kunde4@web.de", "kunde3@web.de"], "newest first"
    jana = next(c for c in cases if c["key"] == "janaohlsen84@gmail.com")
    assert set(jana) == {
        "kind", "key", "name", "reason", "count", "latest_at", "interactions", "suggestions"
    }  # fmt: skip
    assert jana["count"] == 1
    assert [i["subject"] for i in jana["interactions"]] == ["Liste Lager Süd"]
    assert jana["latest_at"].startswith("2024-02-01T08:00:00")
    top = jana["suggestions"][0]
    assert (top["label"], top["score"], top["contact_id"]) == (
        JANA,
        100,
        _contact_id(api, "Jana Ohlsen"),
    )
    assert "+49403344556" in top["reason"]
    shared = next(c for c in cases if c["kind"] == "shared-domain")
    assert [s["label"] for s in shared["suggestions"]] == ["Isar Maschinenbau AG", "Alster AG"]
    assert all(s["contact_id"] is None for s in shared["suggestions"])


def test_the_queue_pages_by_cursor_without_gaps_or_repeats(api: httpx.Client) -> None:
    everything = ok(api.get("/api/review", params={"limit": 200}))
    assert everything["next_cursor"] is None
    first = ok(api.get("/api/review", params={"limit": 2}))
    assert len(first["items"]) == 2 and first["next_cursor"]
    paged = _cases(api, limit=2)
    assert [c["key"] for c in paged] == [c["key"] for c in everything["items"]]
    default = ok(api.get("/api/review"))
    assert len(default["items"]) == len(everything["items"]) and default["next_cursor"] is None


def test_the_kind_filter(api: httpx.Client) -> None:
    lookalikes = _cases(api, kind="name-lookalike")
    assert [(c["kind"], c["key"], c["name"]) for c in lookalikes] == [
        ("name-lookalike", "jana@rechnung-sofort.example", "Jana Ohlsen")
    ]
    assert [s["label"] for s in lookalikes[0]["suggestions"]] == [JANA]
    senders = _cases(api, kind="unknown-sender", limit=3)
    assert len(senders) == 7 and {c["kind"] for c in senders} == {"unknown-sender"}
    assert ok(api.get("/api/review", params={"kind": "shared-address"})) == {
        "items": [],
        "next_cursor": None,
    }


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"kind": "no-such-kind"}, "bad_kind"),
        ({"limit": "0"}, "bad_limit"),
        ({"limit": "201"}, "bad_limit"),
        ({"limit": "ten"}, "bad_limit"),
        ({"cursor": "not a cursor!"}, "bad_cursor"),
        ({"cursor": cursor_of([5])}, "bad_cursor"),
        ({"cursor": cursor_of(["yesterday", "unknown-sender", "x"])}, "bad_cursor"),
        ({"cursor": cursor_of(["2024-02-01T08:00:00+00:00", 1, "x"])}, "bad_cursor"),
        ({"cursor": cursor_of({"offset": 1})}, "bad_cursor"),
    ],
)
def test_bad_queue_parameters_are_a_400(
    api: httpx.Client, params: dict[str, str], code: str
) -> None:
    message = api_error(api.get("/api/review", params=params), 400, code)
    assert next(iter(params)) in message


def test_the_page_cursor_handed_out_is_accepted(api: httpx.Client) -> None:
    first = ok(api.get("/api/review", params={"limit": 1, "kind": "unknown-sender"}))
    second = ok(
        api.get(
            "/api/review",
            params={"limit": 1, "kind": "unknown-sender", "cursor": first["next_cursor"]},
        )
    )
    assert [c["key"] for c in first["items"] + second["items"]] == [
        "kunde4@web.de",
        "kunde3@web.de",
    ]


@pytest.mark.parametrize(
    ("body", "status", "code", "names"),
    [
        ("this is not json", 400, "bad_json", "JSON"),
        ([], 400, "bad_json", "object"),
        ({}, 422, "bad_settlement", "key"),
        ({"key": "kunde0@web.de"}, 422, "bad_settlement", "settlement"),
        ({"key": "kunde0@web.de", "settlement": "maybe"}, 422, "bad_settlement", "settlement"),
        ({"key": 5, "settlement": "ignore"}, 422, "bad_settlement", "key"),
        ({"key": "kunde0@", "settlement": "ignore"}, 422, "bad_settlement", "key"),
        ({"key": "kunde0@web.de", "settlement": "assign"}, 422, "bad_settlement", "contact_id"),
        (
            {"key": "kunde0@web.de", "settlement": "assign", "contact_id": 999999},
            422,
            "bad_settlement",
            "999999",
        ),
        (
            {"key": "kunde0@web.de", "settlement": "assign", "contact_id": 10**30},
            422,
            "bad_settlement",
            "contact_id",
        ),
        (
            {"key": "kunde0@web.de", "settlement": "assign", "contact_id": True},
            422,
            "bad_settlement",
            "contact_id",
        ),
        (
            {"key": "kunde0@web.de", "settlement": "create-contact", "account_id": 1},
            422,
            "bad_settlement",
            "name",
        ),
        (
            {"key": "kunde0@web.de", "settlement": "create-contact", "name": ["K"]},
            422,
            "bad_settlement",
            "name",
        ),
        (
            {"key": "beide.example", "settlement": "assign", "account_id": 1},
            422,
            "bad_settlement",
            "does not list",
        ),
    ],
)
def test_a_bad_settlement_is_refused_and_changes_nothing(
    api: httpx.Client, body: Any, status: int, code: str, names: str
) -> None:
    before = _cases(api, limit=200)
    if isinstance(body, str):
        response = api.post(
            "/api/review/settlements", content=body, headers={"content-type": "application/json"}
        )
    else:
        response = api.post("/api/review/settlements", json=body)
    assert names in api_error(response, status, code)
    assert _cases(api, limit=200) == before


def test_the_call_center_may_not_review(callcenter: httpx.Client) -> None:
    api_error(callcenter.get("/api/review"), 403, "forbidden")
    answer = {"key": "p.brandt.privat@gmx.de", "settlement": "ignore"}
    api_error(callcenter.post("/api/review/settlements", json=answer), 403, "forbidden")


def test_a_sales_user_settles_through_the_api(api: httpx.Client) -> None:
    """Piet writes from a private address; his signature's number says it is him."""
    piet = _contact_id(api, "Piet Brandt")
    case = _case(api, "p.brandt.privat@gmx.de")
    top = case["suggestions"][0]
    assert (top["label"], top["contact_id"], top["score"]) == (PIET, piet, 100)
    assert "Rückruf" not in _timeline_subjects(api, piet)

    answer = {"key": case["key"], "settlement": "assign", "contact_id": top["contact_id"]}
    response = api.post("/api/review/settlements", json=answer)
    assert ok(response) == {"settled": 1, "rematched": 1}

    assert "Rückruf" in _timeline_subjects(api, piet)
    assert "p.brandt.privat@gmx.de" not in {c["key"] for c in _cases(api)}
    contact = ok(api.get(f"/api/contacts/{piet}"))
    assert "p.brandt.privat@gmx.de" in contact["emails"]
    (item,) = ok(api.get("/api/interactions", params={"message_id": "<piet@review.test>"}))["items"]
    assert [(a["contact_id"], a["rule"], a["manual"]) for a in item["attributions"]] == [
        (piet, "contact-email", False)
    ]
    # Answering again changes nothing: there is no open question left to answer.
    api_error(api.post("/api/review/settlements", json=answer), 404, "not_found")


def test_ignoring_a_sender_through_the_api(api: httpx.Client) -> None:
    answer = {"key": " Kunde1@Web.de ", "settlement": "ignore"}
    assert ok(api.post("/api/review/settlements", json=answer)) == {"settled": 1, "rematched": 0}
    assert "kunde1@web.de" not in {c["key"] for c in _cases(api)}


def test_creating_a_contact_through_the_api(api: httpx.Client) -> None:
    isar = ok(api.get("/api/accounts", params={"q": "Isar"}))["items"][0]["id"]
    answer = {
        "key": "kunde2@web.de",
        "settlement": "create-contact",
        "account_id": isar,
        "name": "Karla Zwei",
    }
    assert ok(api.post("/api/review/settlements", json=answer)) == {"settled": 1, "rematched": 1}
    (created,) = ok(api.get(f"/api/accounts/{isar}"))["contacts"]  # Isar had none
    assert (created["name"], created["emails"]) == ("Karla Zwei", ["kunde2@web.de"])
    assert _timeline_subjects(api, created["id"]) == {"Frage 2"}


def test_assigning_a_shared_domain_through_the_api(api: httpx.Client) -> None:
    isar = ok(api.get("/api/accounts", params={"q": "Isar"}))["items"][0]["id"]
    answer = {"key": "beide.example", "settlement": "assign", "account_id": isar}
    assert ok(api.post("/api/review/settlements", json=answer)) == {"settled": 1, "rematched": 1}
    (item,) = ok(
        api.get("/api/interactions", params={"message_id": "<shared-domain@review.test>"})
    )["items"]
    assert [a["account_id"] for a in item["attributions"]] == [isar]


@pytest.fixture
def page(browser: Browser, review_site: ReviewSite) -> Iterator[Page]:
    context = browser.new_context(base_url=review_site.url)
    context.set_default_timeout(10_000)
    yield context.new_page()
    context.close()


@pytest.mark.browser
def test_one_click_on_a_suggestion_puts_the_mail_on_the_contacts_page(page: Page) -> None:
    log_in(page, "sales@ourco.example", PASSWORD)
    page.get_by_role("link", name="Review", exact=True).click()
    expect(page.get_by_role("heading", name="Review queue")).to_be_visible()
    case = page.locator('section.case[data-key="janaohlsen84@gmail.com"]')
    expect(case).to_contain_text("Liste Lager Süd")
    expect(case.locator(".chip")).to_have_text("unknown-sender")

    case.get_by_role("button", name=f"This is {JANA}").click()

    expect(page).to_have_url(re.compile(r"/review$"))
    expect(page.get_by_role("status")).to_have_text(
        "janaohlsen84@gmail.com: 1 question settled, 1 item attributed anew."
    )
    expect(case).to_have_count(0)
    page.get_by_role("link", name="Accounts").click()
    page.get_by_role("link", name="Elbe Logistik GmbH").click()
    contacts = page.locator("details", has=page.get_by_text(re.compile(r"^\d+ contacts$")))
    expect(contacts).to_have_attribute("open", "")  # a few contacts are shown at once
    contacts.get_by_role("link", name="Jana Ohlsen").click()
    expect(page.get_by_role("heading", name="Jana Ohlsen", level=1)).to_be_visible()
    expect(page.locator("main")).to_contain_text("janaohlsen84@gmail.com")
    expect(page.locator("table.timeline")).to_contain_text("Liste Lager Süd")


@pytest.mark.browser
def test_the_kind_filter_and_ignore_on_the_page(page: Page) -> None:
    log_in(page, SALES, PASSWORD, start="/review")
    expect(page).to_have_url(re.compile(r"/review$"))
    page.get_by_label("Kind").select_option("name-lookalike")
    page.get_by_role("button", name="Show").click()
    expect(page).to_have_url(re.compile(r"kind=name-lookalike"))
    expect(page.locator("section.case")).to_have_count(1)
    case = page.locator('section.case[data-key="jana@rechnung-sofort.example"]')
    expect(case).to_contain_text("Jana Ohlsen")
    case.get_by_role("button", name="Ignore jana@rechnung-sofort.example from now on").click()
    expect(page.get_by_role("status")).to_contain_text("jana@rechnung-sofort.example: 1 question")
    page.get_by_label("Kind").select_option("name-lookalike")
    page.get_by_role("button", name="Show").click()
    expect(page.locator("main")).to_contain_text("Nothing to review.")


@pytest.mark.browser
def test_a_case_without_suggestion_is_settled_by_name_not_by_id(page: Page) -> None:
    """Issue 13: a case with no suggestion could only be settled by typing a contact id, and
    a new contact needed the exact account name. Now a name, an address or a domain will do."""
    log_in(page, SALES, PASSWORD, start="/review")
    case = page.locator('section.case[data-key="kunde3@web.de"]')
    expect(case).to_contain_text("No suggestion.")
    case.get_by_label("Contact", exact=True).fill("Piet")
    case.get_by_role("button", name="Belongs to this contact").click()
    expect(page.get_by_role("status")).to_have_text(
        "kunde3@web.de: 1 question settled, 1 item attributed anew."
    )
    case = page.locator('section.case[data-key="kunde4@web.de"]')
    case.get_by_label("New contact").fill("Kunde Vier")
    case.get_by_label("at account").fill("isar-mb.de")
    case.get_by_role("button", name="Create contact").click()
    expect(page.get_by_role("status")).to_have_text(
        "kunde4@web.de: 1 question settled, 1 item attributed anew."
    )
    page.goto("/search?q=Kunde%20Vier")
    expect(page.locator("section[aria-labelledby=found-contacts]")).to_contain_text(
        "Kunde Vier at Isar Maschinenbau AG"
    )


@pytest.mark.browser
def test_a_name_that_fits_several_records_is_refused_with_the_candidates(page: Page) -> None:
    log_in(page, SALES, PASSWORD, start="/review")
    case = page.locator('section.case[data-key="kunde0@web.de"]')  # refused: stays open
    case.get_by_label("New contact").fill("Kunde Null")
    case.get_by_label("at account").fill("AG")  # Isar Maschinenbau AG, Alster AG
    case.get_by_role("button", name="Create contact").click()
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("matches several accounts")
    expect(alert).to_contain_text("Alster AG")
    expect(alert).to_contain_text("Isar Maschinenbau AG")


@pytest.mark.browser
def test_typeahead_offers_the_directorys_records_while_typing(page: Page) -> None:
    """Wherever a record is picked, typing part of a name lists the matching records (from
    /api/search, accounts and contacts only, never a full-text search per keystroke). The case
    stays open: the form is not sent (other tests settle the queue's cases)."""
    log_in(page, SALES, PASSWORD, start="/review")
    case = page.locator('section.case[data-key="kunde0@web.de"]')
    field = case.get_by_label("Contact", exact=True)
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url) if "/api/search" in r.url else None)
    with page.expect_response(lambda r: "/api/search" in r.url and r.status == 200):
        field.press_sequentially("ohls", delay=30)
    options = case.locator(f"datalist#{field.get_attribute('list')} option")
    expect(options).to_have_count(1)
    expect(options.first).to_have_attribute("value", "j.ohlsen@elbe-logistik.de")
    expect(options.first).to_have_attribute("label", "Jana Ohlsen")
    assert asked and all("kinds=contact" in url for url in asked), asked
    account = case.get_by_label("at account")
    account.fill("")
    with page.expect_response(lambda r: "kinds=account" in r.url and r.status == 200):
        account.press_sequentially("isar", delay=30)
    listed = case.locator(f"datalist#{account.get_attribute('list')} option")
    expect(listed).to_have_count(1)
    expect(listed.first).to_have_attribute("value", "Isar Maschinenbau AG")
