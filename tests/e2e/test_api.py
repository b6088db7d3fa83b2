"""The JSON API over real HTTP, as a CRM integration or a call-center screen would use it.

Every test talks to a `crmhub serve` child process over tests/data (conftest `site`): what is
checked is what goes over the wire, status codes and the documented JSON shapes
(DESIGN.md "Public contract"), including the error answers that integrators program against.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tests.weblogin import login

if TYPE_CHECKING:
    from tests.e2e.conftest import Site

# Every API route of the public contract, with ids that exist in tests/data.
PROTECTED = [
    "/api/openapi.json",
    "/api/accounts",
    "/api/accounts/1",
    "/api/accounts/1/timeline",
    "/api/contacts/1",
    "/api/contacts/1/timeline",
    "/api/interactions",
    "/api/interactions/1",
    "/api/attachments/1",
    "/api/lookup?phone=01712233445",
    "/api/quarantine",
    "/api/review",
]


@pytest.fixture(scope="module")
def api(site: Site) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=site.url, headers={"Authorization": f"Bearer {site.token}"}, timeout=10
    ) as client:
        yield client


@pytest.fixture(scope="module")
def anonymous(site: Site) -> Iterator[httpx.Client]:
    """No credentials; tests that log in use a client of their own, so no cookie leaks here."""
    with httpx.Client(base_url=site.url, timeout=10) as client:
        yield client


def ok(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    return response.json()


def api_error(response: httpx.Response, status: int, code: str | None = None) -> str:
    """Assert the documented error shape and return its message."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message"}, body
    assert body["error"]["message"].strip(), body
    if code is not None:
        assert body["error"]["code"] == code, body
    return str(body["error"]["message"])


def account_id(api: httpx.Client, name: str) -> int:
    items = ok(api.get("/api/accounts", params={"q": name}))["items"]
    assert [a["name"] for a in items] == [name]
    return int(items[0]["id"])


def all_pages(api: httpx.Client, path: str, **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    for _ in range(50):
        page = ok(api.get(path, params={**params, **({"cursor": cursor} if cursor else {})}))
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return items
    raise AssertionError(f"{path} kept handing out cursors")


def cursor_of(values: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


@pytest.mark.parametrize("path", PROTECTED)
def test_every_route_but_health_needs_a_token(anonymous: httpx.Client, path: str) -> None:
    message = api_error(anonymous.get(path), 401, "unauthenticated")
    assert "token" in message


def test_health_and_login_need_no_token(anonymous: httpx.Client) -> None:
    assert ok(anonymous.get("/api/health")) == {"status": "ok"}
    login = anonymous.get("/login")
    assert login.status_code == 200
    assert 'name="password"' in login.text


@pytest.mark.parametrize(
    "authorization",
    ["Bearer crm_not-a-token", "Bearer", "Basic c2FsZXNAb3VyY28uZXhhbXBsZTpwdw==", "crm_x"],
)
def test_a_bad_token_is_refused(anonymous: httpx.Client, authorization: str) -> None:
    response = anonymous.get("/api/accounts", headers={"Authorization": authorization})
    api_error(response, 401, "unauthenticated")


def test_the_login_session_cookie_also_opens_the_api(site: Site) -> None:
    with httpx.Client(base_url=site.url, timeout=10) as browser:
        response = login(browser, site.email, site.password)
        assert response.status_code == 303
        assert "crmhub_session" in browser.cookies
        names = [a["name"] for a in ok(browser.get("/api/accounts"))["items"]]
    assert names == ["Elbe Logistik GmbH", "Isar Maschinenbau AG"]


def test_accounts_are_listed_by_name_and_paged_by_cursor(api: httpx.Client) -> None:
    everything = ok(api.get("/api/accounts"))
    assert everything["next_cursor"] is None
    assert [a["name"] for a in everything["items"]] == [
        "Elbe Logistik GmbH",
        "Isar Maschinenbau AG",
    ]
    isar = everything["items"][1]
    assert sorted(isar["domains"]) == ["isar-maschinenbau.de", "isar-mb.de"]
    assert isar["owner"] == "tom@ourco.example"

    first = ok(api.get("/api/accounts", params={"limit": 1}))
    assert [a["name"] for a in first["items"]] == ["Elbe Logistik GmbH"]
    assert isinstance(first["next_cursor"], str)
    second = ok(api.get("/api/accounts", params={"limit": 1, "cursor": first["next_cursor"]}))
    assert [a["name"] for a in second["items"]] == ["Isar Maschinenbau AG"]
    assert second["next_cursor"] is None


def test_accounts_search_by_name_or_domain(api: httpx.Client) -> None:
    by_domain = ok(api.get("/api/accounts", params={"q": "isar-maschinenbau.de"}))["items"]
    assert [a["name"] for a in by_domain] == ["Isar Maschinenbau AG"]
    by_name = ok(api.get("/api/accounts", params={"q": "elbe"}))["items"]
    assert [a["name"] for a in by_name] == ["Elbe Logistik GmbH"]
    assert ok(api.get("/api/accounts", params={"q": "nobody-by-this-name"}))["items"] == []


def test_an_account_lists_its_contacts(api: httpx.Client) -> None:
    elbe = ok(api.get(f"/api/accounts/{account_id(api, 'Elbe Logistik GmbH')}"))
    contacts = {c["name"]: c for c in elbe["contacts"]}
    assert set(contacts) == {"Jana Ohlsen", "Piet Brandt"}
    assert contacts["Jana Ohlsen"]["emails"] == ["j.ohlsen@elbe-logistik.de"]
    assert contacts["Piet Brandt"]["phones"] == ["+491712233445"]
    assert all(c["account_id"] == elbe["id"] for c in contacts.values())


def test_account_timeline_holds_mail_meeting_and_call_newest_first(api: httpx.Client) -> None:
    elbe = account_id(api, "Elbe Logistik GmbH")
    items = ok(api.get(f"/api/accounts/{elbe}/timeline"))["items"]
    assert [(i["channel"], i["subject"]) for i in items] == [
        ("meeting", "Jahresgespraech"),
        ("call", "Call 01712233445 → 201 (answered, 3:00)"),
        ("email", "Angebot Lager Nord"),
    ]
    for item in items:
        assert {a["account_id"] for a in item["attributions"]} == {elbe}
    assert "Newsletter 1/2024" not in {i["subject"] for i in items}


@pytest.mark.parametrize(
    ("params", "subjects"),
    [
        ({"channel": "call"}, ["Call 01712233445 → 201 (answered, 3:00)"]),
        ({"channel": "email"}, ["Angebot Lager Nord"]),
        ({"channel": "sms"}, []),
        (
            {"since": "2024-01-09", "until": "2024-01-10"},
            ["Call 01712233445 → 201 (answered, 3:00)"],
        ),
        ({"since": "2024-01-09"}, ["Jahresgespraech", "Call 01712233445 → 201 (answered, 3:00)"]),
        ({"until": "2024-01-09"}, ["Angebot Lager Nord"]),
        ({"channel": "meeting", "until": "2024-01-09"}, []),
    ],
)
def test_account_timeline_filters(
    api: httpx.Client, params: dict[str, str], subjects: list[str]
) -> None:
    elbe = account_id(api, "Elbe Logistik GmbH")
    items = ok(api.get(f"/api/accounts/{elbe}/timeline", params=params))["items"]
    assert [i["subject"] for i in items] == subjects


def test_timeline_pages_by_cursor_without_gaps_or_repeats(api: httpx.Client) -> None:
    elbe = account_id(api, "Elbe Logistik GmbH")
    whole = ok(api.get(f"/api/accounts/{elbe}/timeline"))["items"]
    paged = all_pages(api, f"/api/accounts/{elbe}/timeline", limit=1)
    assert [i["id"] for i in paged] == [i["id"] for i in whole]
    assert len(paged) == 3


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"channel": "pigeon"}, "bad_channel"),
        ({"since": "last tuesday"}, "bad_date"),
        ({"limit": "0"}, "bad_limit"),
        ({"limit": "many"}, "bad_limit"),
    ],
)
def test_bad_filters_are_answered_with_400(
    api: httpx.Client, params: dict[str, str], code: str
) -> None:
    elbe = account_id(api, "Elbe Logistik GmbH")
    message = api_error(api.get(f"/api/accounts/{elbe}/timeline", params=params), 400, code)
    assert next(iter(params)) in message


def test_contact_and_contact_timeline(api: httpx.Client) -> None:
    piet = ok(api.get("/api/lookup", params={"phone": "+49 171 2233445"}))["contacts"][0]
    contact = ok(api.get(f"/api/contacts/{piet['id']}"))
    assert contact["name"] == "Piet Brandt"
    items = ok(api.get(f"/api/contacts/{piet['id']}/timeline"))["items"]
    assert [i["channel"] for i in items] == ["meeting", "call"]
    calls = ok(api.get(f"/api/contacts/{piet['id']}/timeline", params={"channel": "call"}))
    assert [i["channel"] for i in calls["items"]] == ["call"]


def test_interactions_by_message_id(api: httpx.Client) -> None:
    items = ok(api.get("/api/interactions", params={"message_id": "<m1@elbe-logistik.de>"}))
    assert [i["subject"] for i in items["items"]] == ["Angebot Lager Nord"]
    none = ok(api.get("/api/interactions", params={"message_id": "<nope@example.org>"}))
    assert none == {"items": [], "next_cursor": None}


def test_interactions_by_connector_and_external_id(api: httpx.Client) -> None:
    calls = ok(api.get("/api/interactions", params={"connector": "calls"}))["items"]
    assert [i["channel"] for i in calls] == ["call"]
    source = calls[0]["sources"][0]
    assert source["connector"] == "calls"
    found = ok(api.get("/api/interactions", params=source))["items"]
    assert [i["id"] for i in found] == [calls[0]["id"]]
    other = ok(api.get("/api/interactions", params={**source, "connector": "mail"}))
    assert other["items"] == []


def test_interactions_unmatched_and_matched(api: httpx.Client) -> None:
    unmatched = ok(api.get("/api/interactions", params={"unmatched": "true"}))["items"]
    assert {i["subject"] for i in unmatched} == {"intern", "Newsletter 1/2024"}
    assert all(i["attributions"] == [] and i["not_logged"] for i in unmatched)
    matched = ok(api.get("/api/interactions", params={"unmatched": "false"}))["items"]
    assert {i["subject"] for i in matched} == {
        "Angebot Lager Nord",
        "Re: Ersatzteile",
        "Jahresgespraech",
        "Call 01712233445 → 201 (answered, 3:00)",
    }
    assert all(i["attributions"] for i in matched)
    api_error(api.get("/api/interactions", params={"unmatched": "maybe"}), 400, "bad_unmatched")


def test_all_interactions_newest_first(api: httpx.Client) -> None:
    items = all_pages(api, "/api/interactions", limit=2)
    assert len(items) == 6
    assert len({i["id"] for i in items}) == 6
    assert items[0]["subject"] == "Jahresgespraech"


def test_interaction_detail_carries_the_documented_fields_and_text(api: httpx.Client) -> None:
    listed = ok(api.get("/api/interactions", params={"message_id": "<m1@elbe-logistik.de>"}))
    mail = ok(api.get(f"/api/interactions/{listed['items'][0]['id']}"))
    for key in (
        "id", "channel", "direction", "occurred_at", "subject", "snippet", "participants",
        "attributions", "sources", "message_id", "thread_id",
    ):  # fmt: skip
        assert key in mail, key
    assert mail["channel"] == "email"
    assert mail["direction"] == "inbound"
    assert "Guten Tag, anbei unsere Anfrage." in mail["body_text"]
    sender = next(p for p in mail["participants"] if p["role"] == "from")
    assert sender["address"].lower() == "j.ohlsen@elbe-logistik.de"
    assert sender["contact_id"] is not None
    (attribution,) = mail["attributions"]
    assert attribution["account_id"] == account_id(api, "Elbe Logistik GmbH")
    assert attribution["contact_id"] == sender["contact_id"]
    assert attribution["manual"] is False
    assert 0 < attribution["confidence"] <= 1
    assert mail["sources"][0]["connector"] == "mail"


def test_occurred_at_is_an_instant_with_its_offset(api: httpx.Client) -> None:
    mail = ok(api.get("/api/interactions", params={"message_id": "<m1@elbe-logistik.de>"}))
    when = datetime.fromisoformat(mail["items"][0]["occurred_at"])
    assert when.utcoffset() is not None
    assert when == datetime.fromisoformat("2024-01-08T09:00:00+01:00")


def test_lookup_by_phone_pops_the_caller(api: httpx.Client) -> None:
    popped = ok(api.get("/api/lookup", params={"phone": "0171 2233445"}))
    assert popped["query"] == {"phone": "+491712233445", "email": None}
    assert [c["name"] for c in popped["contacts"]] == ["Piet Brandt"]
    assert [a["name"] for a in popped["accounts"]] == ["Elbe Logistik GmbH"]
    assert [i["channel"] for i in popped["latest"]] == ["meeting", "call"]


def test_lookup_by_email(api: httpx.Client) -> None:
    jana = ok(api.get("/api/lookup", params={"email": "J.Ohlsen@Elbe-Logistik.de"}))
    assert [c["name"] for c in jana["contacts"]] == ["Jana Ohlsen"]
    assert [i["subject"] for i in jana["latest"]] == ["Angebot Lager Nord"]
    stranger = ok(api.get("/api/lookup", params={"email": "someone@isar-mb.de"}))
    assert stranger["contacts"] == []
    assert [a["name"] for a in stranger["accounts"]] == ["Isar Maschinenbau AG"]
    assert [i["subject"] for i in stranger["latest"]] == ["Re: Ersatzteile"]
    nobody = ok(api.get("/api/lookup", params={"email": "x@unknown.example"}))
    assert nobody["contacts"] == [] and nobody["accounts"] == [] and nobody["latest"] == []


def test_lookup_without_a_query_is_a_400(api: httpx.Client) -> None:
    api_error(api.get("/api/lookup"), 400, "missing_query")
    api_error(api.get("/api/lookup", params={"phone": "abc"}), 400, "bad_identity")


def test_quarantine_shows_the_unreadable_record_and_why(site: Site) -> None:
    """The PBX is nobody's mailbox: IT (admin) sees what it could not read."""
    admin = {"Authorization": f"Bearer {site.tokens['admin']}"}
    page = ok(httpx.get(f"{site.url}/api/quarantine", headers=admin, timeout=10))
    assert page["next_cursor"] is None
    (item,) = page["items"]
    assert item["connector"] == "calls"
    assert "columns" in item["reason"]
    assert item["external_id"]


def test_openapi_document_lists_the_routes(api: httpx.Client) -> None:
    doc = ok(api.get("/api/openapi.json"))
    assert doc["openapi"].startswith("3.")
    expected = {route.split("?")[0].replace("/1", "/{id}") for route in PROTECTED[1:]}
    assert expected | {"/api/health"} <= set(doc["paths"])
    timeline = doc["paths"]["/api/accounts/{id}/timeline"]["get"]
    assert {"channel", "since", "until", "cursor", "limit"} <= {
        p["name"] for p in timeline["parameters"]
    }
    queue = doc["paths"]["/api/review"]["get"]
    assert {p["name"] for p in queue["parameters"]} == {"kind", "cursor", "limit"}
    schemas = doc["components"]["schemas"]
    case = schemas["ReviewCase"]["properties"]
    assert {"kind", "key", "count", "interactions", "suggestions"} <= set(case)
    settle = doc["paths"]["/api/review/settlements"]["post"]
    body = settle["requestBody"]["content"]["application/json"]["schema"]
    body = schemas[body["$ref"].rsplit("/", 1)[1]]
    assert body["properties"]["settlement"]["enum"] == ["assign", "create-contact", "ignore"]
    assert {"200", "400", "401", "422"} <= set(settle["responses"])
    for merge in ("/api/accounts/{id}/merge", "/api/contacts/{id}/merge"):
        post = doc["paths"][merge]["post"]
        assert "from" in post["requestBody"]["content"]["application/json"]["schema"]["properties"]


ANY_LISTING = ["/api/accounts", "/api/accounts/1/timeline", "/api/interactions", "/api/quarantine"]
TIMELINES = ["/api/accounts/1/timeline", "/api/contacts/1/timeline", "/api/interactions"]
BAD_CURSORS = [
    *((path, cursor) for path in ANY_LISTING for cursor in ("not a cursor!", cursor_of({"id": 1}))),
    *((path, cursor_of(["a", "x"])) for path in ANY_LISTING),
    *((path, cursor_of(["yesterday", 1])) for path in TIMELINES),
    *((path, cursor_of([1])) for path in ["/api/accounts", *TIMELINES]),
    ("/api/accounts", cursor_of(["Elbe", 10**30])),
    ("/api/quarantine", cursor_of([10**30])),
    ("/api/quarantine", cursor_of([])),
]


@pytest.mark.parametrize(("path", "cursor"), BAD_CURSORS)
def test_a_bad_cursor_is_a_400_with_a_clear_message(
    api: httpx.Client, path: str, cursor: str
) -> None:
    message = api_error(api.get(path, params={"cursor": cursor}), 400, "bad_cursor")
    assert "cursor" in message and "not valid" in message


@pytest.mark.parametrize(
    "path",
    [
        "/api/accounts/999999",
        "/api/accounts/999999/timeline",
        "/api/contacts/999999",
        "/api/contacts/999999/timeline",
        "/api/interactions/999999",
        "/api/attachments/999999",
        "/api/interactions/99999999999999999999",
    ],
)
def test_an_unknown_id_is_a_404(api: httpx.Client, path: str) -> None:
    message = api_error(api.get(path), 404, "not_found")
    assert path.split("/")[3] in message


def test_an_unknown_route_is_a_json_404(anonymous: httpx.Client) -> None:
    assert "/api/no-such-route" in api_error(anonymous.get("/api/no-such-route"), 404, "not_found")


def test_the_web_view_answers_a_bad_cursor_or_id_with_an_error_page(site: Site) -> None:
    with httpx.Client(base_url=site.url, timeout=10) as browser:
        login(browser, site.email, site.password)
        for path in (
            "/accounts?cursor=" + cursor_of([1]),
            "/accounts/1?cursor=" + cursor_of(["x", 1]),
        ):
            response = browser.get(path)
            assert response.status_code == 400, path
            assert "cursor" in response.text and "not valid" in response.text
        missing = browser.get("/interactions/99999999999999999999")
        assert missing.status_code == 404
