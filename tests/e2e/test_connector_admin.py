"""Connector administration over real HTTP and in a real headless Chromium: the API under
/api/connectors and the pages under /admin/connectors, as IT uses them (issue 13, item 7).

One `crmhub serve` (two web processes: a sync started in one is followed in the other) serves
tests/data with a user of each role. Every test adds connectors of its own, from mbox files it
writes, and removes them again. A third-party kind (tests/e2e/gated_connector.py, on the
server's PYTHONPATH) holds a sync after its first mail until the test lets it go on, so that
a test can watch a sync while it runs.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from hub.bootstrap import SecretBox
from tests.e2e.conftest import (
    PASSWORD,
    SALES,
    SECRET_KEY,
    USERS,
    Server,
    ServerDidNotStart,
    free_port,
    launch_server,
    role_tokens,
    seed,
    stop_server,
)
from tests.e2e.gated_connector import KIND as GATED
from tests.e2e.gated_connector import gate
from tests.e2e.test_api import api_error, ok
from tests.e2e.test_browser import log_in
from tests.e2e.test_cli import query
from tests.weblogin import csrf_of, login

ROOT = Path(__file__).resolve().parents[2]
ZONE = ZoneInfo("Europe/Berlin")  # CRMHUB_TIMEZONE of the e2e servers
SECRET = "s3cret-that-must-never-show"
NEW_SECRET = "an0ther-s3cret-never-shown"
NON_ADMINS = ("manager", "sales", "callcenter")


@dataclass
class AdminSite:
    server: Server
    database_url: str
    tokens: dict[str, str]

    @property
    def url(self) -> str:
        return self.server.url

    def api(self, role: str) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.tokens[role]}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=20)

    @contextlib.contextmanager
    def browser(self, role: str) -> Iterator[httpx.Client]:
        """A client logged in through the form, as a browser is: cookie and CSRF tokens."""
        with httpx.Client(base_url=self.url, timeout=20) as client:
            assert login(client, USERS[role], PASSWORD).status_code == 303
            yield client

    def stored_secrets(self, name: str) -> dict[str, str]:
        ((sealed,),) = query(
            self.database_url, f"SELECT secrets FROM connectors WHERE name = '{name}'"
        )
        return SecretBox(SECRET_KEY).open(sealed)


@pytest.fixture(scope="module")
def admin_site(
    module_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AdminSite]:
    workdir = tmp_path_factory.mktemp("connector-admin")
    seed(module_database_url)
    tokens = role_tokens(module_database_url)
    try:
        server = launch_server(
            module_database_url,
            workdir,
            args=("--no-scheduler", "--workers", "2"),
            env={"PYTHONPATH": str(ROOT)},
        )
    except ServerDidNotStart as e:
        pytest.fail(str(e))
    try:
        yield AdminSite(server, module_database_url, tokens)
    finally:
        stop_server(server)
    assert "Traceback" not in server.output(), f"the server failed a request:\n{server.output()}"


def mbox(path: Path, *ages: timedelta) -> Path:
    """Mails from Jana Ohlsen (a contact of tests/data), sent `ages` ago."""
    now = datetime.now(UTC)
    mails = [
        f"From x Mon Jan  8 09:00:00 2024\nFrom: Jana Ohlsen <j.ohlsen@elbe-logistik.de>\n"
        f"To: {SALES}\nSubject: Lieferung {n}\nDate: {format_datetime(now - age)}\n"
        f"Message-ID: <admin-{path.stem}-{n}@connectors.test>\n\nLieferung {n} ist unterwegs.\n\n"
        for n, age in enumerate(ages)
    ]
    path.write_text("".join(mails), encoding="utf-8")
    return path


def finished(api: httpx.Client, name: str, timeout: float = 30.0) -> dict[str, Any]:
    """The connector's latest run, once it no longer runs."""
    deadline = time.monotonic() + timeout
    while True:
        progress: dict[str, Any] = ok(api.get(f"/api/connectors/{name}/sync"))
        if progress["state"] != "running" or time.monotonic() > deadline:
            return progress
        time.sleep(0.1)


def listed(api: httpx.Client, name: str) -> dict[str, Any]:
    found = {c["name"]: c for c in ok(api.get("/api/connectors"))["items"]}
    return dict(found[name])


def test_the_kinds_declare_their_settings_and_secrets(admin_site: AdminSite) -> None:
    with admin_site.api("admin") as api:
        kinds = {k["kind"]: k["options"] for k in ok(api.get("/api/connector-kinds"))["items"]}
    assert {"mbox", "maildir", "eml", "ics", "asterisk-cdr", "imap", "smtp"} <= set(kinds)
    mbox_options = {o["name"]: o for o in kinds["mbox"]}
    assert mbox_options["path"] == {
        "name": "path", "help": "the mbox file to read", "required": True, "secret": False,
        "hub": False,
    }  # fmt: skip
    assert mbox_options["visibility"]["hub"] and not mbox_options["visibility"]["required"]
    assert not any(o["secret"] for o in kinds["mbox"])
    imap = {o["name"]: o for o in kinds["imap"]}
    assert {n for n, o in imap.items() if o["secret"]} == {"password", "oauth_token"}
    assert imap["host"]["required"] and imap["username"]["required"]


def test_add_test_sync_and_remove_through_the_api(admin_site: AdminSite, tmp_path: Path) -> None:
    today, yesterday = timedelta(minutes=2), timedelta(days=1)
    path = mbox(tmp_path / "recent.mbox", today, yesterday)
    body = {"kind": "mbox", "name": "recent", "settings": {"path": str(path), "owner": SALES}}
    with admin_site.api("admin") as api:
        added = api.post("/api/connectors", json=body)
        assert added.status_code == 201, added.text
        fresh = added.json()
        assert (fresh["status"], fresh["sync"]["state"], fresh["secrets"]) == ("new", "none", [])
        assert fresh["owner"] == SALES and fresh["lag_seconds"] is None

        assert "exists" in api_error(api.post("/api/connectors", json=body), 409, "exists")
        colour = {**body, "name": "other", "settings": {"path": str(path), "colour": "blue"}}
        assert "unknown setting colour" in api_error(api.post("/api/connectors", json=colour), 422)
        secret = {**body, "name": "other", "secrets": {"password": SECRET}}
        assert "unknown secret password" in api_error(api.post("/api/connectors", json=secret), 422)
        unknown = {**body, "name": "other", "kind": "carrier-pigeon"}
        assert "carrier-pigeon" in api_error(api.post("/api/connectors", json=unknown), 422)

        tested = ok(api.post("/api/connectors/recent/test"))
        assert tested["ok"] and tested["lines"] == ["recent: readable, 2 items"]

        started = api.post("/api/connectors/recent/sync")
        assert started.status_code == 202, started.text
        assert started.json()["initial"] is True
        run = finished(api, "recent")
        assert (run["state"], run["fetched"], run["initial"]) == ("done", 2, True)
        assert run["report"]["new"] == 2 and run["report"]["matched"] == 2, run
        assert run["ended_at"] and run["started_at"]

        shown = listed(api, "recent")
        assert (shown["status"], shown["last_error"], shown["hint"]) == ("ok", "", "")
        assert shown["last_success_at"] and shown["last_success_at"] == shown["last_sync_at"]
        assert 100 <= shown["lag_seconds"] < 600, shown  # the newer mail, two minutes old
        days = [d["day"] for d in shown["items_per_day"]]
        now = datetime.now(UTC)
        expected_days = [
            (now.astimezone(ZONE) - timedelta(days=n)).date() for n in range(13, -1, -1)
        ]
        assert days == [d.isoformat() for d in expected_days]
        sent = [(now - age).astimezone(ZONE).date().isoformat() for age in (today, yesterday)]
        counts = {d["day"]: d["count"] for d in shown["items_per_day"]}
        assert counts == {day: sent.count(day) for day in days}, counts

        assert api.post("/api/connectors/recent/sync").status_code == 202
        run = finished(api, "recent")
        assert run["initial"] is False and run["report"]["new"] == 0, run

        removed = ok(api.delete("/api/connectors/recent"))
        assert removed == {"name": "recent", "removed": True}
        api_error(api.delete("/api/connectors/recent"), 404, "not_found")
        api_error(api.get("/api/connectors/recent/sync"), 404, "not_found")
        api_error(api.post("/api/connectors/recent/sync"), 404, "not_found")
        assert "recent" not in {c["name"] for c in ok(api.get("/api/connectors"))["items"]}
        audit = ok(api.get("/api/audit", params={"target": "recent", "limit": 50}))["items"]
    actions = sorted({e["action"] for e in audit})
    assert actions == [
        "connector.add", "connector.remove", "connector.sync", "connector.test"
    ], actions  # fmt: skip
    assert all(e["actor"] == USERS["admin"] for e in audit)


def test_a_failing_source_shows_its_error_and_what_to_do(
    admin_site: AdminSite, tmp_path: Path
) -> None:
    gone = tmp_path / "gone.mbox"
    body = {"kind": "mbox", "name": "gone", "settings": {"path": str(gone)}}
    with admin_site.api("admin") as api:
        assert api.post("/api/connectors", json=body).status_code == 201
        tested = ok(api.post("/api/connectors/gone/test"))
        assert not tested["ok"] and str(gone) in tested["error"]
        assert "missing" in tested["hint"] and "path" in tested["hint"]
        assert api.post("/api/connectors/gone/sync").status_code == 202
        run = finished(api, "gone")
        assert run["state"] == "failed" and run["report"]["errors"] == 1, run
        shown = listed(api, "gone")
        assert shown["status"] == "failed" and str(gone) in shown["last_error"]
        assert shown["hint"] == tested["hint"]
        assert shown["last_success_at"] is None and shown["lag_seconds"] is None
    with admin_site.browser("admin") as browser:
        page = browser.get("/admin/connectors")
        assert page.status_code == 200
        row = re.search(r'<tr data-connector="gone">.*?</tr>', page.text, re.S)
        assert row and str(gone) in row.group(0) and "The file or folder is missing" in row.group(0)
    with admin_site.api("admin") as api:
        ok(api.delete("/api/connectors/gone"))


def test_secrets_are_write_only_on_the_pages_and_in_the_api(admin_site: AdminSite) -> None:
    """An IMAP connector to a port where nothing listens: added and edited through the forms,
    its password is stored encrypted, never put into a page, an answer or the audit log, and
    an empty password field keeps it."""
    port = free_port()
    with admin_site.browser("admin") as browser:
        form = browser.get("/admin/connectors/new", params={"kind": "imap"})
        assert form.status_code == 200
        assert re.search(
            r'<input id="secret-password" type="password" name="secret:password" value=""',
            form.text,
        )
        settings = {
            "setting:host": "127.0.0.1", "setting:port": str(port), "setting:tls": "none",
            "setting:username": "anna@ourco.example", "setting:retries": "0",
            "setting:timeout": "2",
        }  # fmt: skip
        values = {"csrf": csrf_of(form.text), "kind": "imap", "name": "anna", **settings}
        refused = browser.post("/admin/connectors", data={**values, "setting:tls": "smoke"})
        assert refused.status_code == 422 and "tls=&#39;smoke&#39;" in refused.text
        assert SECRET not in refused.text  # nor typed secrets come back with a refused form
        added = browser.post("/admin/connectors", data={**values, "secret:password": SECRET})
        assert added.status_code == 303 and added.headers["location"] == "/admin/connectors/anna"
        assert admin_site.stored_secrets("anna") == {"password": SECRET}

        page = browser.get("/admin/connectors/anna")
        assert SECRET not in page.text
        assert "stored: leave empty to keep it" in page.text
        assert 'value="anna@ourco.example"' in page.text

        edit = {"csrf": csrf_of(page.text), **settings, "setting:visibility": "subject"}
        assert (
            browser.post("/admin/connectors/anna", data={**edit, "secret:password": ""}).status_code
            == 303
        )
        assert admin_site.stored_secrets("anna") == {"password": SECRET}
        assert (
            browser.post(
                "/admin/connectors/anna", data={**edit, "secret:password": NEW_SECRET}
            ).status_code
            == 303
        )
        assert admin_site.stored_secrets("anna") == {"password": NEW_SECRET}
        forged = browser.post("/admin/connectors/anna", data={**edit, "csrf": "forged"})
        assert forged.status_code == 403

        tested = browser.post("/admin/connectors/anna/test", data={"csrf": csrf_of(page.text)})
        assert tested.status_code == 200
        assert f"cannot connect to 127.0.0.1:{port}" in tested.text
        assert "The server cannot be reached from the crmhub host" in tested.text
        pages = [
            tested.text,
            browser.get("/admin/connectors/anna").text,
            browser.get("/admin/connectors").text,
        ]
    with admin_site.api("admin") as api:
        shown = listed(api, "anna")
        assert shown["settings"]["visibility"] == "subject" and shown["secrets"] == ["password"]
        answers = [
            api.get("/api/connectors").text,
            api.get("/api/audit", params={"target": "anna"}).text,
        ]
        audit = ok(api.get("/api/audit", params={"target": "anna", "action": "connector.change"}))
        assert [e["after"].get("secrets") for e in audit["items"]] == [["password"], None]
        ok(api.delete("/api/connectors/anna"))
    for text in pages + answers:
        assert SECRET not in text and NEW_SECRET not in text


def test_one_sync_runs_at_a_time_and_tells_how_far_it_got(
    admin_site: AdminSite, tmp_path: Path
) -> None:
    path = mbox(tmp_path / "gated.mbox", *(timedelta(hours=n) for n in range(1, 4)))
    body = {"kind": GATED, "name": "gated", "settings": {"path": str(path)}}
    with admin_site.api("admin") as api:
        assert api.post("/api/connectors", json=body).status_code == 201
        assert api.post("/api/connectors/gated/sync").status_code == 202
        # Whichever web process takes them: the run is claimed in the database.
        for _ in range(4):
            api_error(api.post("/api/connectors/gated/sync"), 409, "sync_running")
        deadline = time.monotonic() + 20
        while (progress := ok(api.get("/api/connectors/gated/sync")))["fetched"] < 1:
            assert time.monotonic() < deadline, progress
            time.sleep(0.1)
        assert progress["state"] == "running" and progress["report"] is None
        assert listed(api, "gated")["sync"]["state"] == "running"
        with admin_site.browser("admin") as browser:  # without JavaScript the page reloads
            assert 'http-equiv="refresh"' in browser.get("/admin/connectors/gated").text
        time.sleep(1.5)  # beats go on while the source holds the sync
        assert ok(api.get("/api/connectors/gated/sync"))["fetched"] == 1
        gate(path).touch()
        run = finished(api, "gated")
        assert (run["state"], run["fetched"], run["report"]["new"]) == ("done", 3, 3), run
        with admin_site.browser("admin") as browser:
            assert 'http-equiv="refresh"' not in browser.get("/admin/connectors/gated").text
        ok(api.delete("/api/connectors/gated"))


@pytest.mark.parametrize("role", NON_ADMINS)
def test_other_roles_are_refused_and_see_no_link(admin_site: AdminSite, role: str) -> None:
    with admin_site.api(role) as api:
        for method, url in (
            ("GET", "/api/connectors"),
            ("GET", "/api/connector-kinds"),
            ("POST", "/api/connectors"),
            ("GET", "/api/connectors/mail/sync"),
            ("POST", "/api/connectors/mail/sync"),
            ("POST", "/api/connectors/mail/test"),
            ("DELETE", "/api/connectors/mail"),
        ):
            api_error(
                api.request(method, url, json={"kind": "mbox", "name": "x"}), 403, "forbidden"
            )
    with admin_site.browser(role) as browser:
        start = browser.get("/")
        assert 'href="/admin/connectors"' not in start.text
        assert browser.get("/admin/connectors").status_code == 403
        assert browser.get("/admin/connectors/mail").status_code == 403
        refused = browser.post("/admin/connectors/mail/remove", data={"csrf": csrf_of(start.text)})
        assert refused.status_code == 403
    with admin_site.api("admin") as api:  # nothing was removed, no run was started
        assert listed(api, "mail")["sync"]["state"] == "none"


@pytest.fixture
def page(browser: Browser, admin_site: AdminSite) -> Iterator[Page]:
    context = browser.new_context(base_url=admin_site.url)
    context.set_default_timeout(15_000)
    yield context.new_page()
    context.close()


def test_an_admin_adds_tests_syncs_edits_disables_and_removes_a_connector(
    page: Page, tmp_path: Path
) -> None:
    path = mbox(tmp_path / "browser.mbox", timedelta(minutes=5), timedelta(minutes=6))
    log_in(page, USERS["admin"], PASSWORD)
    page.get_by_role("link", name="Connectors", exact=True).click()
    expect(page.get_by_role("heading", name="Connectors", level=1)).to_be_visible()
    expect(page.locator("tr[data-connector=mail]")).to_contain_text(SALES)

    page.get_by_label("Kind").select_option("mbox")
    page.get_by_role("button", name="Add a connector").click()
    expect(page.get_by_role("heading", name="New mbox connector")).to_be_visible()
    page.get_by_label("Name").fill("browser-mail")
    page.get_by_label("path").fill(str(path))
    page.get_by_label("owner").fill(SALES)
    page.get_by_role("button", name="Add connector").click()

    expect(page.get_by_role("heading", name="browser-mail")).to_be_visible()
    expect(page.get_by_role("status").first).to_contain_text("Connector browser-mail added")
    page.get_by_role("button", name="Test the connection").click()
    expect(page.locator("[data-test=ok]")).to_contain_text("browser-mail: readable, 2 items")

    page.get_by_role("button", name="Sync now").click()
    sync = page.locator("#sync")
    expect(sync).to_have_attribute("data-state", "done")
    expect(sync.locator("[data-field=fetched]").first).to_have_text("2")
    expect(sync.locator("[data-field=new]")).to_have_text("2")
    expect(sync).to_contain_text("first full read")

    page.get_by_label("visibility").fill("subject")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status").first).to_have_text("Saved.")
    expect(page.get_by_label("visibility")).to_have_value("subject")

    page.get_by_role("button", name="Disable browser-mail").click()
    expect(page.get_by_role("heading", name="browser-mail")).to_contain_text("disabled")
    page.get_by_role("link", name="Connectors", exact=True).click()
    row = page.locator("tr[data-connector=browser-mail]")
    expect(row).to_contain_text("disabled")
    expect(row).to_contain_text("5 min")  # the lag: the age of the newer mail
    per_day = str(row.locator(".days").get_attribute("aria-label")).rpartition(": ")[2]
    assert sum(int(n) for n in per_day.split(", ")) == 2, per_day

    row.get_by_role("link", name="browser-mail").click()
    page.get_by_role("link", name="Remove browser-mail…").click()
    expect(page.get_by_role("heading", name="Remove browser-mail?")).to_be_visible()
    page.get_by_role("button", name="Remove browser-mail").click()
    expect(page.get_by_role("status").first).to_contain_text("Connector browser-mail removed")
    expect(page.locator("tr[data-connector=browser-mail]")).to_have_count(0)


def test_the_page_follows_a_running_sync_without_reloading(
    page: Page, admin_site: AdminSite, tmp_path: Path
) -> None:
    path = mbox(tmp_path / "followed.mbox", *(timedelta(hours=n) for n in range(1, 4)))
    with admin_site.api("admin") as api:
        body = {"kind": GATED, "name": "followed", "settings": {"path": str(path)}}
        assert api.post("/api/connectors", json=body).status_code == 201
    log_in(page, USERS["admin"], PASSWORD, start="/admin/connectors/followed")
    page.get_by_role("button", name="Sync now").click()
    sync = page.locator("#sync")
    expect(sync).to_have_attribute("data-state", "running")
    expect(sync.get_by_role("button", name="Sync now")).to_be_disabled()
    expect(sync.locator("[data-field=fetched]")).to_have_text("1")
    page.evaluate("window.stillTheSamePage = true")
    gate(path).touch()
    expect(sync).to_have_attribute("data-state", "done")
    expect(sync.locator("[data-field=state]")).to_have_text("done")
    expect(sync.locator("[data-field=fetched]")).to_have_text("3")
    expect(sync.locator("[data-field=new]")).to_have_text("3")
    expect(sync.get_by_role("button", name="Sync now")).to_be_enabled()
    assert page.evaluate("window.stillTheSamePage") is True, "the page reloaded"
    with admin_site.api("admin") as api:
        ok(api.delete("/api/connectors/followed"))
