"""Call notes over real HTTP, as an agent, a salesperson and an admin meet them: added from the
API and from the call page (in Chromium too), kept with author and time, found by their words
in the searches of those who may read a call's notes, and nowhere for those who may not.

The site (tests/e2e/privacy_site.py): the PBX's call from Piet is attributed (every role sees
it; admins its metadata only), the stranger's call is attributed to nobody and so exists for
admins alone. Each test writes words of its own, so the tests run in any order on one site.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.e2e.conftest import PASSWORD, USERS
from tests.e2e.privacy_site import PrivacySite, privacy_site  # noqa: F401
from tests.weblogin import csrf_of, login


def _note(site: PrivacySite, role: str, call: int, **body: str) -> httpx.Response:
    with site.api(role) as client:
        return client.post(f"/api/interactions/{call}/notes", json=body)


def _found(site: PrivacySite, role: str, words: str) -> list[int]:
    with site.api(role) as client:
        answer = client.get("/api/search", params={"q": words})
    assert answer.status_code == 200, answer.text
    return [i["id"] for i in answer.json()["interactions"]]


def test_an_agent_adds_a_note_that_stays_with_the_call_and_finds_it(
    privacy_site: PrivacySite,  # noqa: F811
) -> None:
    call = privacy_site.ids.piet_call
    added = _note(privacy_site, "callcenter", call, outcome="callback", text="Ruft Kranverleih an")
    assert added.status_code == 201, added.text
    mine = [n for n in added.json()["notes"] if "Kranverleih" in n["text"]]
    assert len(mine) == 1
    assert mine[0]["author"] == USERS["callcenter"] and mine[0]["outcome"] == "callback"
    assert re.match(r"\d{4}-\d\d-\d\dT", mine[0]["written_at"])

    with privacy_site.api("sales") as client:
        notes = client.get(f"/api/interactions/{call}/notes").json()["notes"]
    assert [n["text"] for n in notes if n["id"] == mine[0]["id"]] == ["Ruft Kranverleih an"]
    with privacy_site.api("admin") as client:
        withheld = client.get(f"/api/interactions/{call}/notes")
    assert withheld.status_code == 200 and withheld.json()["notes"] is None, "metadata only"

    # the words find the call for those who read call notes; the stem finds it too
    for role in ("callcenter", "sales", "manager"):
        assert call in _found(privacy_site, role, "kranverleih"), role
    assert call in _found(privacy_site, "sales", "Kranverleihs")
    assert call not in _found(privacy_site, "admin", "kranverleih")


def test_a_call_not_theirs_has_no_notes_for_them_and_takes_none(
    privacy_site: PrivacySite,  # noqa: F811
) -> None:
    stranger = privacy_site.ids.stranger_call
    for role in ("sales", "callcenter", "manager"):
        refused = _note(privacy_site, role, stranger, outcome="reached", text="Geheimwort")
        assert refused.status_code == 404, (role, refused.text)
        with privacy_site.api(role) as client:
            assert client.get(f"/api/interactions/{stranger}/notes").status_code == 404
    with privacy_site.api("admin") as client:
        shown = client.get(f"/api/interactions/{stranger}/notes")
    assert shown.status_code == 200 and shown.json()["notes"] is None
    assert _note(privacy_site, "admin", privacy_site.ids.piet_call, text="x").status_code == 403


def test_bad_notes_are_refused_with_what_to_fix(privacy_site: PrivacySite) -> None:  # noqa: F811
    call = privacy_site.ids.piet_call
    cases = (
        ({"outcome": "maybe"}, "outcome"),
        ({"outcome": "", "text": "  "}, "outcome, a text"),
        ({"text": "x" * 4001}, "4000"),
        ({"text": 5}, "strings"),
    )
    for body, says in cases:
        answer = _note(privacy_site, "sales", call, **body)  # type: ignore[arg-type]
        assert answer.status_code == 422, (body, answer.text)
        assert answer.json()["error"]["code"] == "bad_note"
        assert says in answer.json()["error"]["message"], answer.text
    customer_mail = privacy_site.ids.customer
    assert _note(privacy_site, "sales", customer_mail, text="on a mail").status_code == 404


def test_the_call_page_shows_notes_and_takes_one_from_its_form(
    privacy_site: PrivacySite,  # noqa: F811
) -> None:
    call = privacy_site.ids.piet_call
    with httpx.Client(base_url=privacy_site.url, timeout=20) as client:
        assert login(client, USERS["manager"], PASSWORD).status_code == 303
        page = client.get(f"/interactions/{call}")
        assert 'action="/interactions/' in page.text and "Add note" in page.text
        sent = client.post(
            f"/interactions/{call}/notes",
            data={"csrf": csrf_of(page.text), "outcome": "order", "text": "Bestellt Palettenwaage"},
        )
        assert sent.status_code == 303 and sent.headers["location"].endswith("#notes")
        shown = client.get(f"/interactions/{call}").text
    assert "Bestellt Palettenwaage" in shown and USERS["manager"] in shown
    with httpx.Client(base_url=privacy_site.url, timeout=20) as client:
        assert login(client, USERS["admin"], PASSWORD).status_code == 303
        admin_view = client.get(f"/interactions/{call}").text
    assert "Palettenwaage" not in admin_view and "Add note" not in admin_view


@pytest.fixture
def browser_page(browser: Browser, privacy_site: PrivacySite) -> Iterator[Page]:  # noqa: F811
    context = browser.new_context(base_url=privacy_site.url)
    context.set_default_timeout(10_000)
    yield context.new_page()
    context.close()


@pytest.mark.browser
def test_an_agent_adds_a_note_on_the_call_page_in_a_browser(
    browser_page: Page,
    privacy_site: PrivacySite,  # noqa: F811
) -> None:
    page, call = browser_page, privacy_site.ids.piet_call
    page.goto(f"/interactions/{call}")
    page.get_by_label("Email").fill(USERS["callcenter"])
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(rf"/interactions/{call}$"))
    form = page.get_by_role("form", name="Add a note")
    form.get_by_label("Outcome").select_option("voicemail")
    form.get_by_label("Note").fill("Mailbox besprochen, Rückruf Donnerstag")
    form.get_by_role("button", name="Add note").click()
    expect(page).to_have_url(re.compile(rf"/interactions/{call}#notes$"))
    note = page.locator("ol.notes li", has_text="Rückruf Donnerstag")
    expect(note).to_have_count(1)
    expect(note).to_contain_text("voicemail")
    expect(note).to_contain_text(USERS["callcenter"])
