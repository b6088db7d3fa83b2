"""Private mailboxes and hardened edges over real HTTP (DESIGN.md "Who sees what").

The site (tests/e2e/privacy_site.py): sales@ owns a mailbox with a customer mail and a
personal mail from a doctor; manager@ owns a mailbox capped at `subject`; the PBX is nobody's.
Each test checks that a role that may not see something cannot, through any door: item,
listing, search, look-up, timeline, attachment, raw download and page.
"""

from __future__ import annotations

import json
import re
import subprocess
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import CRMHUB, PASSWORD, USERS, crmhub_env
from tests.e2e.privacy_site import (  # noqa: F401
    CAPPED_WORD,
    CUSTOMER_WORD,
    PIXEL,
    PRIVATE_WORD,
    PrivacySite,
    privacy_site,
)
from tests.weblogin import csrf_of, login

Site = PrivacySite


def _get(site: Site, role: str, path: str, **params: Any) -> Any:
    with site.api(role) as client:
        response = client.get(path, params=params)
    assert response.status_code == 200, response.text
    return response.json()


def _ids_in(page: dict[str, Any]) -> set[int]:
    return {item["id"] for item in page["items"]}


def test_a_private_mail_exists_for_its_owner_alone(privacy_site: Site) -> None:  # noqa: F811
    site, ids = privacy_site, privacy_site.ids
    mine = _get(site, "sales", f"/api/interactions/{ids.private}")
    assert PRIVATE_WORD in mine["body_text"]
    assert mine["visibility"] == "full" and mine["attachments"]
    for role in ("admin", "manager", "callcenter"):
        with site.api(role) as client:
            for path in (
                f"/api/interactions/{ids.private}",
                f"/api/interactions/{ids.internal}",
                f"/api/attachments/{ids.private_attachment}",
            ):
                answer = client.get(path)
                assert answer.status_code == 404, (role, path, answer.text)
                assert answer.json()["error"]["code"] == "not_found"
            listed = client.get("/api/interactions", params={"limit": 200}).json()
            assert ids.private not in _ids_in(listed) and ids.internal not in _ids_in(listed)
            unmatched = client.get("/api/interactions", params={"unmatched": "true"}).json()
            assert ids.private not in _ids_in(unmatched)
            found = client.get("/api/interactions", params={"q": PRIVATE_WORD}).json()
            assert found["items"] == [], role
            found = client.get("/api/interactions", params={"q": "Befund"}).json()
            assert found["items"] == [], role
            who = client.get("/api/lookup", params={"email": "praxis@dr-weber.example"}).json()
            assert who["latest"] == [], role
    assert ids.private in _ids_in(_get(site, "sales", "/api/interactions", unmatched="true"))
    assert _ids_in(_get(site, "sales", "/api/interactions", q=PRIVATE_WORD)) == {ids.private}


def test_admins_administer_but_do_not_read(privacy_site: Site) -> None:  # noqa: F811
    site, ids = privacy_site, privacy_site.ids
    customer = _get(site, "admin", f"/api/interactions/{ids.customer}")
    assert customer["visibility"] == "metadata"
    assert customer["subject"] is None and customer["snippet"] is None
    assert customer["body_text"] is None and customer["attachments"] == []
    assert customer["attributions"] and customer["participants"]
    assert _get(site, "admin", "/api/interactions", q="Angebot")["items"] == []
    # The PBX is nobody's: IT sees its unattributed calls as metadata, nobody else sees them.
    stranger = _get(site, "admin", f"/api/interactions/{ids.stranger_call}")
    assert stranger["visibility"] == "metadata" and stranger["attributions"] == []
    with site.api("sales") as client:
        assert client.get(f"/api/interactions/{ids.stranger_call}").status_code == 404


def test_the_call_center_sees_subjects_and_call_notes_but_no_mail_text(
    privacy_site: Site,  # noqa: F811
) -> None:
    site, ids = privacy_site, privacy_site.ids
    mail = _get(site, "callcenter", f"/api/interactions/{ids.customer}")
    assert mail["visibility"] == "subject"
    assert mail["subject"] == "Angebot Lager Nord"
    assert mail["snippet"] is None and mail["body_text"] is None and mail["attachments"] == []
    call = _get(site, "callcenter", f"/api/interactions/{ids.piet_call}")
    assert call["visibility"] == "subject" and call["body_text"] is not None
    timeline = _get(site, "callcenter", f"/api/accounts/{ids.elbe}/timeline")
    assert all(i["snippet"] is None for i in timeline["items"] if i["channel"] == "email")
    # A search must not find by the words it would not show.
    assert _get(site, "callcenter", "/api/interactions", q=CUSTOMER_WORD)["items"] == []
    assert ids.customer in _ids_in(_get(site, "callcenter", "/api/interactions", q="Lager Nord"))
    assert ids.customer in _ids_in(_get(site, "sales", "/api/interactions", q=CUSTOMER_WORD))
    with site.api("callcenter") as client:
        assert client.get(f"/api/attachments/{ids.customer_attachment}").status_code == 404


def test_a_visibility_cap_holds_for_everyone_but_the_owner_and_tightens_retroactively(
    privacy_site: Site,  # noqa: F811
) -> None:
    site, ids = privacy_site, privacy_site.ids
    owner = _get(site, "manager", f"/api/interactions/{ids.capped}")
    assert CAPPED_WORD in owner["body_text"]
    other = _get(site, "sales", f"/api/interactions/{ids.capped}")
    assert other["visibility"] == "subject" and other["subject"] == "Rahmenvertrag Nord"
    assert other["body_text"] is None
    assert _get(site, "sales", "/api/interactions", q=CAPPED_WORD)["items"] == []
    with site.api("admin") as admin:
        changed = admin.patch(
            "/api/connectors/manager-mail", json={"settings": {"visibility": "metadata"}}
        )
        assert changed.status_code == 200, changed.text
        try:
            tighter = _get(site, "sales", f"/api/interactions/{ids.capped}")
            assert tighter["visibility"] == "metadata" and tighter["subject"] is None
            assert _get(site, "sales", "/api/interactions", q="Rahmenvertrag")["items"] == []
            assert (
                CAPPED_WORD in _get(site, "manager", f"/api/interactions/{ids.capped}")["body_text"]
            )
            log = admin.get("/api/audit", params={"action": "connector.change"}).json()
            assert log["items"][0]["target"] == "manager-mail"
            assert log["items"][0]["after"]["settings"]["visibility"] == "metadata"
        finally:
            admin.patch(
                "/api/connectors/manager-mail", json={"settings": {"visibility": "subject"}}
            )


def test_audited_connectors_record_who_read_what(privacy_site: Site) -> None:  # noqa: F811
    site, ids = privacy_site, privacy_site.ids
    with site.api("admin") as admin:
        assert (
            admin.patch(
                "/api/connectors/sales-mail", json={"settings": {"audit_reads": "on"}}
            ).status_code
            == 200
        )
        try:
            _get(site, "manager", f"/api/interactions/{ids.customer}")
            _get(site, "sales", f"/api/interactions/{ids.customer}")  # the owner: not audited
            # A listing's page knows its connectors' setting from the page itself.
            timeline = _get(site, "manager", f"/api/accounts/{ids.elbe}/timeline")
            reads = admin.get("/api/audit", params={"action": "item.read"}).json()["items"]
        finally:
            admin.patch("/api/connectors/sales-mail", json={"settings": {"audit_reads": None}})
        after = _get(site, "manager", f"/api/accounts/{ids.elbe}/timeline")
        unaudited = admin.get("/api/audit", params={"action": "item.read"}).json()["items"]
    assert [r["actor"] for r in reads] == [USERS["manager"]] * 2  # newest first
    assert (
        reads[0]["after"]["how"] == "timeline" and ids.customer in reads[0]["after"]["interactions"]
    )
    assert ids.customer in [item["id"] for item in timeline["items"]]
    assert reads[1]["after"]["interactions"] == [ids.customer]
    assert after["items"] == timeline["items"] and len(unaudited) == 2, "switched off: no entry"


def test_pages_hide_what_the_api_hides(privacy_site: Site) -> None:  # noqa: F811
    site, ids = privacy_site, privacy_site.ids
    with httpx.Client(base_url=site.url, timeout=20) as browser:
        assert login(browser, USERS["callcenter"], PASSWORD).status_code == 303
        assert browser.get(f"/interactions/{ids.private}").status_code == 404
        page = browser.get(f"/interactions/{ids.customer}")
        assert page.status_code == 200
        assert CUSTOMER_WORD not in page.text and "Maßblatt" not in page.text
        assert "not shown to your role" in page.text
        timeline = browser.get(f"/accounts/{ids.elbe}").text
        assert "Angebot Lager Nord" in timeline and CUSTOMER_WORD not in timeline
        assert "Write a mail" not in timeline, "no mail form without a mailbox of one's own"
        unmatched = browser.get("/unmatched").text + browser.get("/unmatched?tab=internal").text
        assert "Ihr Befund" not in unmatched and "Mittagessen" not in unmatched
        raw = browser.get(f"/quarantine/{ids.own_quarantined}/raw")
        assert raw.status_code == 404
    with httpx.Client(base_url=site.url, timeout=20) as browser:
        assert login(browser, USERS["sales"], PASSWORD).status_code == 303
        assert "Ihr Befund" in browser.get("/unmatched").text  # unknown sender
        assert "Mittagessen" in browser.get("/unmatched?tab=internal").text
        assert "PNG" in browser.get(f"/quarantine/{ids.own_quarantined}/raw").text


def test_remote_images_wait_until_the_reader_asks(privacy_site: Site) -> None:  # noqa: F811
    site, ids = privacy_site, privacy_site.ids
    with httpx.Client(base_url=site.url, timeout=20) as browser:
        login(browser, USERS["sales"], PASSWORD)
        page = browser.get(f"/interactions/{ids.customer}")
        assert CUSTOMER_WORD in page.text and PIXEL not in page.text
        assert "1 remote image blocked" in page.text
        assert "img-src 'self' data:;" in page.headers["content-security-policy"]
        shown = browser.get(f"/interactions/{ids.customer}", params={"images": "1"})
        assert PIXEL in shown.text
        assert "https:" in shown.headers["content-security-policy"]
        again = browser.get(f"/interactions/{ids.customer}")
        assert PIXEL not in again.text, "the choice holds for one view of one mail"


def test_attachment_names_download_intact(privacy_site: Site) -> None:  # noqa: F811
    site, ids = privacy_site, privacy_site.ids
    with site.api("sales") as client:
        answer = client.get(f"/api/attachments/{ids.customer_attachment}")
    assert answer.status_code == 200
    disposition = answer.headers["content-disposition"]
    assert "filename*=UTF-8''Ma%C3%9Fblatt%20customer.pdf" in disposition
    assert 'filename="Massblatt customer.pdf"' in disposition  # for clients without RFC 5987
    assert answer.content.startswith(b"%PDF")


SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
}


@pytest.mark.parametrize(
    "path", ["/login", "/api/health", "/api/accounts", "/no-such-page", "/api/no-such-route"]
)
def test_every_response_carries_the_security_headers(
    privacy_site: Site,  # noqa: F811
    path: str,
) -> None:
    answer = httpx.get(privacy_site.url + path, timeout=20)
    for name, value in SECURITY_HEADERS.items():
        assert answer.headers[name] == value, (path, name)
    csp = answer.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp
    assert "unsafe-inline" not in csp.split("script-src")[1].split(";")[0]
    assert "Traceback" not in answer.text and "starlette" not in answer.text.lower()


def test_the_error_page_is_styled_and_tells_nothing_inside(privacy_site: Site) -> None:  # noqa: F811
    with httpx.Client(base_url=privacy_site.url, timeout=20) as browser:
        login(browser, USERS["sales"], PASSWORD)
        answer = browser.get("/interactions/99999999")
    assert answer.status_code == 404
    assert "<header>" in answer.text and "Not found" in answer.text
    assert "Traceback" not in answer.text and "sqlalchemy" not in answer.text.lower()


def test_the_session_cookie_is_secure_behind_an_https_proxy(privacy_site: Site) -> None:  # noqa: F811
    with httpx.Client(base_url=privacy_site.url, timeout=20) as plain:
        login(plain, USERS["sales"], PASSWORD)
        plain_cookie = [
            v for k, v in plain.get("/login").headers.multi_items() if k == "set-cookie"
        ]
    proxied = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "198.51.100.20"}
    # The login form starts the session that carries its CSRF token: Secure from the start.
    cookies = httpx.get(f"{privacy_site.url}/login", headers=proxied).headers.get_list("set-cookie")
    assert cookies and all("secure" in c.lower() for c in cookies)
    assert all("secure" not in c.lower() for c in plain_cookie)


def test_cookie_requests_to_the_api_must_come_from_our_pages(privacy_site: Site) -> None:  # noqa: F811
    site = privacy_site
    body = {"entry": "spam.example", "scope": "mine"}
    with httpx.Client(base_url=site.url, timeout=20) as browser:
        login(browser, USERS["callcenter"], PASSWORD)
        csrf = csrf_of(browser.get("/").text)
        forged = browser.post("/api/blocklist", json=body, headers={"Origin": "https://evil.test"})
        assert forged.status_code == 403 and forged.json()["error"]["code"] == "cross_site"
        assert browser.post("/api/blocklist", json=body).status_code == 403, "no Origin"
        same = browser.post("/api/blocklist", json=body, headers={"Origin": site.url})
        assert same.status_code == 201, same.text
        removed = browser.delete(
            "/api/blocklist",
            params={"entry": "spam.example", "scope": "mine"},
            headers={"X-CSRF-Token": csrf},
        )
        assert removed.status_code == 200, removed.text


def test_bodies_and_searches_have_limits(privacy_site: Site) -> None:  # noqa: F811
    site = privacy_site
    with site.api("sales") as client:
        huge = client.post(
            "/api/blocklist",
            content=json.dumps({"entry": "x" * 1_100_000}),
            headers={"Content-Type": "application/json"},
        )
        assert huge.status_code == 413 and huge.json()["error"]["code"] == "too_large"
        long_q = client.get("/api/interactions", params={"q": "x" * 60_000})
        assert long_q.status_code == 400 and long_q.json()["error"]["code"] == "bad_query"
        long_lookup = client.get("/api/accounts", params={"q": "x" * 60_000})
        assert long_lookup.status_code == 400
    with httpx.Client(base_url=site.url, timeout=20) as browser:
        login(browser, USERS["sales"], PASSWORD)
        page = browser.get("/accounts", params={"q": "x" * 60_000})
        assert page.status_code == 400 and "<header>" in page.text


def test_the_audit_log_is_append_only(privacy_site: Site) -> None:  # noqa: F811
    with privacy_site.api("admin") as admin:
        for method in ("POST", "PUT", "PATCH", "DELETE"):
            answer = admin.request(method, "/api/audit", json={})
            assert answer.status_code == 405, (method, answer.text)
        assert admin.get("/api/audit").json()["items"]


def _failed_login(client: httpx.Client, email: str) -> httpx.Response:
    form = client.get("/login")
    return client.post(
        "/login", data={"email": email, "password": "wrong", "csrf": csrf_of(form.text)}
    )


def test_login_is_throttled_per_account_and_per_client(privacy_site: Site) -> None:  # noqa: F811
    site = privacy_site
    # Each attacker address of its own (the trusted proxy on loopback says so).
    one = {"X-Forwarded-For": "203.0.113.10"}
    with httpx.Client(base_url=site.url, headers=one, timeout=20) as attacker:
        answers = [_failed_login(attacker, "ghost@ourco.example") for _ in range(11)]
    assert [a.status_code for a in answers[:10]] == [401] * 10
    blocked = answers[10]
    assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) > 0
    assert "Too many" in blocked.text
    # The same account from another address is refused too (the account's count) ...
    other = {"X-Forwarded-For": "203.0.113.11"}
    with httpx.Client(base_url=site.url, headers=other, timeout=20) as elsewhere:
        assert _failed_login(elsewhere, "ghost@ourco.example").status_code == 429
        # ... while real users log in from there as ever.
        assert login(elsewhere, USERS["manager"], PASSWORD).status_code == 303
    with site.api("admin") as admin:
        entries = admin.get("/api/audit", params={"action": "login.failed"}).json()["items"]
    assert any(e["target"] == "ghost@ourco.example" for e in entries)


def test_logout_is_post_only_and_ends_the_session(privacy_site: Site) -> None:  # noqa: F811
    with httpx.Client(base_url=privacy_site.url, timeout=20) as browser:
        login(browser, USERS["sales"], PASSWORD)
        assert browser.get("/logout").status_code == 405
        assert browser.get("/").status_code == 200
        out = browser.post("/logout", data={"csrf": csrf_of(browser.get("/").text)})
        assert out.status_code == 303
        assert browser.get("/").status_code == 303


def test_disabling_a_user_ends_their_sessions_and_tokens_at_once(
    privacy_site: Site,  # noqa: F811
) -> None:
    site = privacy_site
    env = crmhub_env(site.database_url)
    cli = [str(CRMHUB), "users"]
    subprocess.run([*cli, "add", "temp@ourco.example", "--role", "sales", "--password-env",
                    "TEMP_PW"], env={**env, "TEMP_PW": PASSWORD}, check=True)  # fmt: skip
    token = subprocess.run(
        [str(CRMHUB), "tokens", "create", "temp@ourco.example"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()[-1]
    with httpx.Client(base_url=site.url, timeout=20) as browser:
        assert login(browser, "temp@ourco.example", PASSWORD).status_code == 303
        auth = {"Authorization": f"Bearer {token}"}
        assert browser.get("/").status_code == 200
        assert httpx.get(f"{site.url}/api/accounts", headers=auth).status_code == 200
        subprocess.run([*cli, "disable", "temp@ourco.example"], env=env, check=True)
        assert browser.get("/").status_code == 303, "the session ended"
        assert httpx.get(f"{site.url}/api/accounts", headers=auth).status_code == 401
        assert login(browser, "temp@ourco.example", PASSWORD).status_code == 401
    pattern = re.compile(r"temp@ourco\.example")
    listed = subprocess.run([*cli, "list"], env=env, capture_output=True, text=True, check=True)
    assert pattern.search(listed.stdout) and "disabled" in listed.stdout


def test_admins_export_a_data_subject_over_the_api(privacy_site: Site) -> None:  # noqa: F811
    import io
    import zipfile

    with privacy_site.api("admin") as admin:
        answer = admin.post("/api/privacy/export", json={"subject": "J.Ohlsen@elbe-logistik.de"})
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"] == "application/zip"
        archive = zipfile.ZipFile(io.BytesIO(answer.content))
        everything = b"".join(archive.read(name) for name in archive.namelist())
        assert CUSTOMER_WORD.encode() in everything, "the export holds what is stored of her"
        assert PRIVATE_WORD.encode() not in everything, "and nothing of anyone else"
        bad = admin.post("/api/privacy/export", json={"subject": "not an address"})
        assert bad.status_code == 422
        log = admin.get("/api/audit", params={"action": "privacy.export"}).json()["items"]
    assert log and log[0]["actor"] == USERS["admin"]


def test_sending_through_someone_elses_connector_reads_like_no_connector(
    privacy_site: Site,  # noqa: F811
) -> None:
    with privacy_site.api("admin") as admin:
        added = admin.patch("/api/connectors/manager-mail", json={"enabled": True})
        assert added.status_code == 200
    message = {"to": ["j.ohlsen@elbe-logistik.de"], "subject": "Hallo", "body": "Text"}
    with privacy_site.api("sales") as client:
        answers = [
            client.post("/api/messages", json={**message, "connector": name}).json()
            for name in ("manager-mail", "no-such-connector")
        ]
    assert answers[0]["error"]["code"] == answers[1]["error"]["code"]
    texts = [a["error"]["message"].replace(name, "NAME") for a, name in
             zip(answers, ("manager-mail", "no-such-connector"), strict=True)]  # fmt: skip
    assert texts[0] == texts[1], "a connector of someone else answers like none at all"
    assert "manager@" not in answers[0]["error"]["message"]


def test_admins_filter_the_audit_log_on_its_page(privacy_site: Site) -> None:  # noqa: F811
    with httpx.Client(base_url=privacy_site.url, timeout=20) as browser:
        login(browser, USERS["admin"], PASSWORD)
        page = browser.get("/audit", params={"action": "connector."})
        assert page.status_code == 200
        shown = re.findall(r'<span class="chip">([^<]+)</span>', page.text)
        assert "connector.add" in shown and set(shown) <= {
            "connector.add",
            "connector.change",
            "connector.remove",
        }
        logins = browser.get("/audit", params={"action": "login"}).text
        assert set(re.findall(r'<span class="chip">([^<]+)</span>', logins)) == {"login"}


@pytest.mark.parametrize("account_id", [2**63, 2**100, 0, -1, "1", True])
def test_an_id_beyond_what_the_database_holds_is_a_422_not_a_500(
    privacy_site: Site,  # noqa: F811
    account_id: object,
) -> None:
    """Found by schemathesis: an account id of 2**63 and more overflowed SQLite's INTEGER."""
    with privacy_site.api("sales") as client:
        answer = client.post(
            f"/api/interactions/{privacy_site.ids.customer}/attributions",
            json={"action": "add", "account_id": account_id},
        )
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["code"] == "bad_correction"


def test_a_method_a_route_does_not_take_says_which_it_does(privacy_site: Site) -> None:  # noqa: F811
    with privacy_site.api("admin") as admin:
        answer = admin.put("/api/audit", json={})
    assert answer.status_code == 405
    assert set(answer.headers["allow"].split(", ")) == {"GET", "HEAD"}
