"""Who may do what, over real HTTP: one table of (route, role, expectation) for every route of
the web view and the API (DESIGN.md "Who sees what"). A route missing from the table fails.

The site (tests/e2e/privacy_site.py) has a user of each role; sales@ and manager@ own a mailbox
each, the PBX is nobody's. Requests that would change something carry a body that is refused
after the permission check (422), so the table can run in any order on one site.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from hub.web.app import ENDPOINTS
from tests.e2e.conftest import PASSWORD, USERS
from tests.e2e.privacy_site import PrivacyIds, PrivacySite, privacy_site  # noqa: F401
from tests.weblogin import csrf_of, login

ROLES = ("anonymous", "admin", "manager", "sales", "callcenter")


@dataclass(frozen=True)
class Expect:
    name: str
    check: Callable[[httpx.Response, bool], bool]

    def __repr__(self) -> str:
        return self.name


def _login_redirect(r: httpx.Response) -> bool:
    return r.status_code in (302, 303) and r.headers["location"].startswith("/login?next=")


OK = Expect("ok", lambda r, api: r.status_code < 400 and not _login_redirect(r))
LOGIN = Expect("login", lambda r, api: r.status_code == 401 if api else _login_redirect(r))
FORBIDDEN = Expect("forbidden", lambda r, api: r.status_code == 403)
ABSENT = Expect("absent", lambda r, api: r.status_code == 404)
# Past the gate: the role may use the route, the request itself is refused (bad input, nothing
# configured), or it succeeded.
ALLOWED = Expect("allowed", lambda r, api: r.status_code not in (401, 403, 404, 405, 500))


def status(code: int) -> Expect:
    return Expect(str(code), lambda r, api: r.status_code == code)


def roles(default: Expect, anonymous: Expect = LOGIN, **overrides: Expect) -> dict[str, Expect]:
    return {"anonymous": anonymous, **{r: default for r in ROLES[1:]}, **overrides}


EVERYONE = roles(OK)
# Connector administration (DESIGN.md: admins only), asked about a connector that does not exist.
ADMIN_ONLY_404 = roles(FORBIDDEN, admin=status(404))


@dataclass(frozen=True)
class Case:
    method: str
    route: str  # the route as the table of hub.web.app declares it
    url: str  # with {field} of PrivacyIds
    expect: dict[str, Expect]
    body: dict[str, Any] | None = None
    fresh_login: bool = False  # the request ends the session (logout)


TABLE: list[Case] = [
    # The API
    Case("GET", "/api/health", "/api/health", roles(OK, anonymous=OK)),
    Case("GET", "/api/openapi.json", "/api/openapi.json", EVERYONE),
    Case("GET", "/api/accounts", "/api/accounts", EVERYONE),
    Case("GET", "/api/accounts/{id:int}", "/api/accounts/{elbe}", EVERYONE),
    Case("GET", "/api/accounts/{id:int}/timeline", "/api/accounts/{elbe}/timeline", EVERYONE),
    Case("GET", "/api/contacts/{id:int}", "/api/contacts/{jana}", EVERYONE),
    Case("GET", "/api/contacts/{id:int}/timeline", "/api/contacts/{jana}/timeline", EVERYONE),
    Case("GET", "/api/lookup", "/api/lookup?phone=%2B491712233445", EVERYONE),
    Case("GET", "/api/search", "/api/search?q=Angebot", EVERYONE),
    *(
        Case(
            "POST",
            f"/api/{what}/{{id:int}}/merge",
            f"/api/{what}/{{{target}}}/merge",
            roles(FORBIDDEN, manager=ALLOWED),
            {"from": 999_999},
        )
        for what, target in (("accounts", "elbe"), ("contacts", "jana"))
    ),
    Case("GET", "/api/interactions", "/api/interactions", EVERYONE),
    Case("GET", "/api/interactions/{id:int}", "/api/interactions/{customer}", EVERYONE),
    Case("GET", "/api/interactions/{id:int}", "/api/interactions/{capped}", EVERYONE),
    Case("GET", "/api/interactions/{id:int}", "/api/interactions/{piet_call}", EVERYONE),
    Case(
        "GET", "/api/interactions/{id:int}", "/api/interactions/{private}", roles(ABSENT, sales=OK)
    ),
    Case(
        "GET", "/api/interactions/{id:int}", "/api/interactions/{internal}", roles(ABSENT, sales=OK)
    ),
    Case(
        "GET",
        "/api/interactions/{id:int}",
        "/api/interactions/{stranger_call}",
        roles(ABSENT, admin=OK),
    ),
    Case(
        "POST",
        "/api/interactions/{id:int}/attributions",
        "/api/interactions/{customer}/attributions",
        roles(ALLOWED, admin=FORBIDDEN),
        {"action": "add"},
    ),
    Case(
        "POST",
        "/api/interactions/{id:int}/attributions",
        "/api/interactions/{private}/attributions",
        roles(ABSENT, admin=FORBIDDEN, sales=ALLOWED),
        {"action": "add"},
    ),
    *(  # call notes (issue 15): those who may correct, on calls they see; admins read metadata
        Case(
            method,
            "/api/interactions/{id:int}/notes",
            f"/api/interactions/{{{call}}}/notes",
            expect,
            {"outcome": "bogus"} if method == "POST" else None,
        )
        for method, call, expect in (
            ("GET", "piet_call", EVERYONE),
            ("GET", "stranger_call", roles(ABSENT, admin=OK)),
            ("POST", "piet_call", roles(ALLOWED, admin=FORBIDDEN)),
            ("POST", "stranger_call", roles(ABSENT, admin=FORBIDDEN)),
        )
    ),
    Case(
        "GET",
        "/api/attachments/{id:int}",
        "/api/attachments/{customer_attachment}",
        roles(ABSENT, manager=OK, sales=OK),
    ),
    Case(
        "GET",
        "/api/attachments/{id:int}",
        "/api/attachments/{private_attachment}",
        roles(ABSENT, sales=OK),
    ),
    # Every role sends, through its own mailbox only; nobody owns an smtp connector here.
    Case("POST", "/api/messages", "/api/messages", roles(status(403)), {"to": ["a@b.example"]}),
    Case(  # booking (issue 16): every role, in its own calendar only; no customer named here
        "POST",
        "/api/meetings",
        "/api/meetings",
        roles(status(422)),
        {"subject": "x", "start": "2030-01-07T10:00"},
    ),
    Case("GET", "/api/review", "/api/review", roles(FORBIDDEN, manager=OK, sales=OK)),
    Case(
        "POST",
        "/api/review/settlements",
        "/api/review/settlements",
        roles(FORBIDDEN, manager=ALLOWED, sales=ALLOWED),
        {"key": "x@y.example", "settlement": "bogus"},
    ),
    Case("GET", "/api/quarantine", "/api/quarantine", EVERYONE),
    Case("GET", "/api/connectors", "/api/connectors", roles(FORBIDDEN, admin=OK)),
    Case(
        "PATCH",
        "/api/connectors/{name}",
        "/api/connectors/pbx",
        roles(FORBIDDEN, admin=ALLOWED),
        {"settings": {"visibility": "everything"}},
    ),
    Case("GET", "/api/connector-kinds", "/api/connector-kinds", roles(FORBIDDEN, admin=OK)),
    Case(
        "POST",
        "/api/connectors",
        "/api/connectors",
        roles(FORBIDDEN, admin=ALLOWED),
        {"kind": "mbox", "name": "not a name!", "settings": {"path": "/nowhere.mbox"}},
    ),
    Case("DELETE", "/api/connectors/{name}", "/api/connectors/no-such", ADMIN_ONLY_404),
    Case("POST", "/api/connectors/{name}/test", "/api/connectors/no-such/test", ADMIN_ONLY_404),
    Case("POST", "/api/connectors/{name}/sync", "/api/connectors/no-such/sync", ADMIN_ONLY_404),
    Case(
        "GET", "/api/connectors/{name}/sync", "/api/connectors/pbx/sync", roles(FORBIDDEN, admin=OK)
    ),
    Case("GET", "/api/audit", "/api/audit", roles(FORBIDDEN, admin=OK)),
    Case("GET", "/api/blocklist", "/api/blocklist", EVERYONE),
    Case(
        "POST",
        "/api/blocklist",
        "/api/blocklist",
        roles(ALLOWED),
        {"entry": "not an entry!", "scope": "mine"},
    ),
    Case(
        "DELETE",
        "/api/blocklist",
        "/api/blocklist?entry=nobody%40nowhere.example&scope=mine",
        roles(status(404)),
    ),
    Case(
        "POST",
        "/api/privacy/export",
        "/api/privacy/export",
        roles(FORBIDDEN, admin=OK),
        {"subject": "nobody@nowhere.example"},
    ),
    Case(  # a PBX call has no recording; who may hear one is tests/integration/test_twilio.py
        "GET",
        "/api/interactions/{id:int}/recording",
        "/api/interactions/{piet_call}/recording",
        roles(ABSENT),
    ),
    # The web view
    Case("GET", "/login", "/login", roles(OK, anonymous=OK)),
    Case(
        "POST",
        "/login",
        "/login",
        roles(status(401), anonymous=status(401)),
        {"email": "nobody@ourco.example", "password": "wrong"},
    ),
    Case("POST", "/logout", "/logout", roles(OK), {}, fresh_login=True),
    Case("GET", "/health", "/health", roles(OK, anonymous=OK)),
    # Operations (issue 17): probes for anyone; metrics for admins, a 401 (not a login page)
    # for a scraper without a valid token.
    Case("GET", "/healthz", "/healthz", roles(OK, anonymous=OK)),
    Case("GET", "/readyz", "/readyz", roles(OK, anonymous=OK)),
    Case("GET", "/metrics", "/metrics", roles(FORBIDDEN, anonymous=status(401), admin=OK)),
    Case("GET", "/", "/", EVERYONE),
    Case("GET", "/accounts", "/accounts", EVERYONE),
    Case("GET", "/accounts/{id:int}", "/accounts/{elbe}", EVERYONE),
    Case("GET", "/contacts/{id:int}", "/contacts/{jana}", EVERYONE),
    Case("GET", "/interactions/{id:int}", "/interactions/{customer}", EVERYONE),
    Case("GET", "/interactions/{id:int}", "/interactions/{private}", roles(ABSENT, sales=OK)),
    Case("GET", "/interactions/{id:int}", "/interactions/{stranger_call}", roles(ABSENT, admin=OK)),
    Case("GET", "/unmatched", "/unmatched", EVERYONE),
    Case("GET", "/search", "/search?q=Angebot", EVERYONE),
    Case("GET", "/pop", "/pop?phone=0171%202233445", EVERYONE),
    Case("POST", "/pop", "/pop", roles(FORBIDDEN, manager=ALLOWED, sales=ALLOWED), {"phone": "x"}),
    # Settings: one's own time zone; every role, each for itself (a 422 for a bad zone shows
    # the guard let the role through to the handler).
    Case("GET", "/settings", "/settings", EVERYONE),
    *(  # the merge forms: managers only; a name that fits no record is the form's fault
        Case(
            "POST",
            f"/{what}/{{id:int}}/merge",
            f"/{what}/{{{target}}}/merge",
            roles(FORBIDDEN, manager=status(422)),
            {"duplicate": "No such record anywhere"},
        )
        for what, target in (("accounts", "elbe"), ("contacts", "jana"))
    ),
    Case("POST", "/settings", "/settings", roles(status(422)), {"timezone": "Mars/Olympus"}),
    Case("GET", "/meetings/new", "/meetings/new?contact_id={jana}", EVERYONE),
    Case(
        "POST",
        "/meetings",
        "/meetings",
        roles(status(422)),
        {"subject": "x", "start": "2030-01-07T10:00"},
    ),
    Case(
        "POST",
        "/send",
        "/send",
        roles(status(403)),
        {"to": "a@b.example", "subject": "x", "body": "y", "back": "/"},
    ),
    Case(
        "POST",
        "/interactions/{id:int}/attributions",
        "/interactions/{customer}/attributions",
        roles(ALLOWED, admin=FORBIDDEN),
        {"action": "", "account": "No such account"},
    ),
    Case(
        "POST",
        "/interactions/{id:int}/attributions",
        "/interactions/{private}/attributions",
        roles(ABSENT, admin=FORBIDDEN, sales=ALLOWED),
        {"action": "", "account": "No such account"},
    ),
    *(  # the call page's note form; "done" on a missed call that is nobody's here
        Case(
            "POST",
            "/interactions/{id:int}/notes",
            f"/interactions/{{{call}}}/notes",
            expect,
            {"outcome": "bogus"},
        )
        for call, expect in (
            ("piet_call", roles(ALLOWED, admin=FORBIDDEN)),
            ("stranger_call", roles(ABSENT, admin=FORBIDDEN)),
        )
    ),
    Case("POST", "/missed-calls/{id:int}/done", "/missed-calls/999999/done", roles(ABSENT), {}),
    Case("GET", "/review", "/review", roles(FORBIDDEN, manager=OK, sales=OK)),
    Case(
        "POST",
        "/review",
        "/review",
        roles(FORBIDDEN, manager=ALLOWED, sales=ALLOWED),
        {"key": "x@y.example", "settlement": "bogus"},
    ),
    Case("GET", "/quarantine", "/quarantine", EVERYONE),
    Case(
        "GET",
        "/quarantine/{id:int}/raw",
        "/quarantine/{own_quarantined}/raw",
        roles(ABSENT, sales=OK),
    ),
    Case(
        "GET",
        "/quarantine/{id:int}/raw",
        "/quarantine/{pbx_quarantined}/raw",
        roles(ABSENT, admin=OK),
    ),
    Case("GET", "/audit", "/audit", roles(FORBIDDEN, admin=OK)),
    Case("GET", "/admin/connectors", "/admin/connectors", roles(FORBIDDEN, admin=OK)),
    Case(
        "POST",
        "/admin/connectors",
        "/admin/connectors",
        roles(FORBIDDEN, admin=ALLOWED),
        {"kind": "mbox", "name": "not a name!", "setting:path": "/nowhere.mbox"},
    ),
    Case(
        "GET",
        "/admin/connectors/new",
        "/admin/connectors/new?kind=mbox",
        roles(FORBIDDEN, admin=OK),
    ),
    Case("GET", "/admin/connectors/{name}", "/admin/connectors/pbx", roles(FORBIDDEN, admin=OK)),
    Case(
        "POST",
        "/admin/connectors/{name}",
        "/admin/connectors/no-such",
        ADMIN_ONLY_404,
        {"setting:path": "/nowhere.csv"},
    ),
    *(
        Case(
            "POST",
            f"/admin/connectors/{{name}}/{verb}",
            f"/admin/connectors/no-such/{verb}",
            ADMIN_ONLY_404,
            {"enabled": "off"},
        )
        for verb in ("test", "state", "sync", "remove")
    ),
    Case(
        "GET",
        "/admin/connectors/{name}/remove",
        "/admin/connectors/pbx/remove",
        roles(FORBIDDEN, admin=OK),
    ),
    Case("GET", "/static/{name}", "/static/connectors.js", roles(OK, anonymous=OK)),
    Case("GET", "/static/{name}", "/static/..secret.key", roles(ABSENT, anonymous=ABSENT)),
    Case("POST", "/hooks/pbx/{connector}", "/hooks/pbx/pbx", roles(FORBIDDEN, FORBIDDEN), {}),
    *(  # Twilio's callbacks, unsigned: refused whoever is logged in (not a twilio connector)
        Case(
            "POST",
            f"/hooks/twilio/{{connector}}/{what}",
            f"/hooks/twilio/pbx/{what}",
            roles(FORBIDDEN, FORBIDDEN),
            {},
        )
        for what in ("voice", "sms")
    ),
    # Calendar export: the link's token is the credential; managers make and revoke links
    # (asked about an account that does not exist, so the table changes nothing).
    Case("GET", "/calendars/{token}.ics", "/calendars/not-a-token.ics", roles(ABSENT, ABSENT)),
    *(
        Case(method, route, url, roles(FORBIDDEN, manager=status(404)))
        for method, route, url in (
            ("POST", "/api/accounts/{id:int}/calendar-feed", "/api/accounts/999999/calendar-feed"),
            (
                "DELETE",
                "/api/accounts/{id:int}/calendar-feed",
                "/api/accounts/999999/calendar-feed",
            ),
            ("GET", "/accounts/{id:int}/calendar-feed", "/accounts/999999/calendar-feed"),
            ("POST", "/accounts/{id:int}/calendar-feed", "/accounts/999999/calendar-feed"),
            (
                "POST",
                "/accounts/{id:int}/calendar-feed/revoke",
                "/accounts/999999/calendar-feed/revoke",
            ),
        )
    ),
    Case(
        "GET",
        "/accounts/{id:int}/calendar-feed",
        "/accounts/{elbe}/calendar-feed",
        roles(FORBIDDEN, manager=OK),
    ),
]


def test_every_route_is_in_the_table() -> None:
    declared = {(m, e.path) for e in ENDPOINTS for m in e.methods}
    covered = {(c.method, c.route) for c in TABLE}
    assert declared - covered == set(), "routes without an authorization expectation"
    assert covered - declared == set(), "the table names routes that do not exist"
    for case in TABLE:
        assert set(case.expect) == set(ROLES), f"{case.route}: an expectation for every role"


@dataclass
class Browsers:
    """A logged-in cookie client per role (pages), kept for the module."""

    site: PrivacySite
    clients: dict[str, httpx.Client] = field(default_factory=dict)

    def client(self, role: str) -> httpx.Client:
        if role not in self.clients:
            client = httpx.Client(base_url=self.site.url, timeout=20)
            if role != "anonymous":
                assert login(client, USERS[role], PASSWORD).status_code == 303
            self.clients[role] = client
        return self.clients[role]


@pytest.fixture(scope="module")
def browsers(privacy_site: PrivacySite) -> Iterator[Browsers]:  # noqa: F811
    found = Browsers(privacy_site)
    yield found
    for client in found.clients.values():
        client.close()


def _url(case: Case, ids: PrivacyIds) -> str:
    return case.url.format(**vars(ids))


def _request(case: Case, role: str, site: PrivacySite, browsers: Browsers) -> httpx.Response:
    url = _url(case, site.ids)
    if case.route.startswith("/api/"):
        with site.api(None if role == "anonymous" else role) as client:
            return client.request(case.method, url, json=case.body)
    if case.fresh_login and role != "anonymous":
        with httpx.Client(base_url=site.url, timeout=20) as client:
            login(client, USERS[role], PASSWORD)
            form = {**(case.body or {}), "csrf": csrf_of(client.get("/").text)}
            return client.request(case.method, url, data=form)
    client = browsers.client(role)
    if case.method == "GET":
        return client.get(url)
    form = dict(case.body or {})
    if case.route == "/login":
        form["csrf"] = csrf_of(client.get("/login").text)
    elif role != "anonymous":
        form["csrf"] = csrf_of(client.get("/").text)
    return client.request(case.method, url, data=form)


@pytest.mark.parametrize(
    ("case", "role"),
    [(case, role) for case in TABLE for role in ROLES],
    ids=lambda v: v if isinstance(v, str) else f"{v.method} {v.url}",
)
def test_the_route_answers_the_role_as_the_policy_says(
    case: Case,
    role: str,
    privacy_site: PrivacySite,  # noqa: F811
    browsers: Browsers,
) -> None:
    expected = case.expect[role]
    response = _request(case, role, privacy_site, browsers)
    api = case.route.startswith("/api/")
    assert expected.check(response, api), (
        f"{case.method} {_url(case, privacy_site.ids)} as {role}: expected {expected}, "
        f"got {response.status_code} {response.text[:300]}"
    )
    if response.status_code == 404 and expected is ABSENT:
        # Not there and not for you read alike: the answer names no owner and says no "forbidden".
        assert not re.search(r"forbidden|not allowed|owner|private", response.text, re.I)
