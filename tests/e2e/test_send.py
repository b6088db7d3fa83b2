"""Sending from crmhub as users do it: `POST /api/messages` and the form on a contact page.

The mail server is a real aiosmtpd on loopback; the hub is a real `crmhub serve` child process.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Cli, Server, seed
from tests.mailserver import RecordingMailserver, start_mailserver
from tests.weblogin import login


@pytest.fixture
def mailserver() -> Iterator[tuple[int, RecordingMailserver]]:
    handler = RecordingMailserver()
    controller = start_mailserver(handler)
    yield controller.port, handler
    controller.stop()


@pytest.fixture
def sending_site(
    database_url: str,
    tmp_path: Path,
    crmhub: Cli,
    serve: Any,
    mailserver: tuple[int, RecordingMailserver],
) -> tuple[Server, str]:
    token = seed(database_url)
    server = serve(database_url, tmp_path)
    return server, token


def test_api_send_reports_refusals_and_logs_the_mail(
    sending_site: tuple[Server, str], crmhub: Cli, mailserver: tuple[int, RecordingMailserver]
) -> None:
    server, token = sending_site
    port, handler = mailserver
    headers = {"Authorization": f"Bearer {token}"}
    message = {
        "to": ["j.ohlsen@elbe-logistik.de", "ghost@nobody.example"],
        "subject": "Angebot Lager Nord",
        "body": "Guten Tag Frau Ohlsen,\nanbei das Angebot.",
    }
    unconfigured = httpx.post(f"{server.url}/api/messages", json=message, headers=headers)
    assert unconfigured.status_code == 403
    assert unconfigured.json()["error"]["code"] == "no_mail_connector"
    assert "crmhub connectors add smtp" in unconfigured.json()["error"]["message"]

    added = crmhub(
        "connectors",
        "add",
        "smtp",
        "out",
        "--set",
        "host=127.0.0.1",
        "--set",
        f"port={port}",
        "--set",
        "tls=none",
        "--set",
        "owner=sales@ourco.example",
    )
    assert added.returncode == 0, added.stderr

    form_encoded = httpx.post(f"{server.url}/api/messages", data=message, headers=headers)
    assert form_encoded.status_code == 415
    bad = httpx.post(
        f"{server.url}/api/messages", headers=headers, json={**message, "to": ["not an address"]}
    )
    assert (bad.status_code, bad.json()["error"]["code"]) == (422, "bad_message")
    assert bad.json()["error"]["message"].startswith("to:")
    assert httpx.post(f"{server.url}/api/messages", json=message).status_code == 401

    sent = httpx.post(f"{server.url}/api/messages", json=message, headers=headers)
    assert sent.status_code == 201, sent.text
    outcome = sent.json()
    assert outcome["accepted"] == ["j.ohlsen@elbe-logistik.de"]
    assert outcome["refused"]["ghost@nobody.example"].startswith("550")
    mail_from, rcpts, content = handler.received[-1]
    assert (mail_from, rcpts) == ("sales@ourco.example", ["j.ohlsen@elbe-logistik.de"])
    assert outcome["message_id"].encode() in content

    logged = httpx.get(
        f"{server.url}/api/interactions/{outcome['interaction_id']}", headers=headers
    ).json()
    assert logged["direction"] == "outbound"
    assert logged["subject"] == "Angebot Lager Nord"
    assert any(a["rule"] == "contact-email" for a in logged["attributions"])


def test_the_contact_page_form_sends_and_needs_its_csrf_token(
    sending_site: tuple[Server, str], crmhub: Cli, mailserver: tuple[int, RecordingMailserver]
) -> None:
    server, _ = sending_site
    port, handler = mailserver
    assert (
        crmhub(
            "connectors",
            "add",
            "smtp",
            "out",
            "--set",
            "host=127.0.0.1",
            "--set",
            f"port={port}",
            "--set",
            "tls=none",
            "--set",
            "owner=sales@ourco.example",
        ).returncode
        == 0
    )
    with httpx.Client(base_url=server.url, follow_redirects=True) as browser:
        assert login(browser, "sales@ourco.example", "correct horse 42").status_code == 200
        accounts = browser.get("/accounts", params={"q": "Elbe"}).text
        account_path = re.search(r'href="(/accounts/\d+)"', accounts)
        assert account_path is not None
        account_page = browser.get(account_path.group(1)).text
        contact_path = re.search(r'href="(/contacts/\d+)"', account_page)
        assert contact_path is not None
        page = browser.get(contact_path.group(1)).text
        csrf = re.search(r'name="csrf" value="([^"]+)"', page)
        to = re.search(r'name="to" list="known-addresses" value="([^"]*)"', page)
        assert csrf is not None and to is not None and "@" in to.group(1)
        form = {
            "to": to.group(1),
            "subject": "Rückruf",
            "body": "Ich rufe morgen an.",
            "back": contact_path.group(1),
        }
        before = len(handler.received)
        forged = browser.post("/send", data={**form, "csrf": "guessed"})
        assert forged.status_code == 403
        assert len(handler.received) == before, "a forged form must send nothing"
        sent = browser.post("/send", data={**form, "csrf": csrf.group(1)})
        assert sent.status_code == 200, sent.text
        assert "<h1>Sent</h1>" in sent.text
        assert handler.received[-1][1] == [to.group(1)]
        logged = re.search(r'href="/interactions/(\d+)"', sent.text)
        assert logged is not None
        detail = browser.get(f"/interactions/{logged.group(1)}").text
        assert "Rückruf" in detail and "Ich rufe morgen an." in detail


def test_a_failed_send_keeps_the_draft_and_says_what_to_do(
    sending_site: tuple[Server, str], crmhub: Cli
) -> None:
    """No mail connector of one's own, then a mail server that is down: each time the page
    says why and gives the draft back as typed (issue 13: the typed text was lost)."""
    server, _ = sending_site
    draft = {"to": "j.ohlsen@elbe-logistik.de", "subject": "Rückruf <morgen>", "back": "/"}
    draft["body"] = "Ich rufe morgen an.\nGruß & Dank"
    with httpx.Client(base_url=server.url, follow_redirects=True) as browser:
        assert login(browser, "sales@ourco.example", "correct horse 42").status_code == 200
        csrf = re.search(r'name="csrf" value="([^"]+)"', browser.get("/").text)
        assert csrf is not None
        unconfigured = browser.post("/send", data={**draft, "csrf": csrf.group(1)})
        assert unconfigured.status_code == 403
        assert "Not sent" in unconfigured.text and "crmhub connectors add smtp" in unconfigured.text
        assert "Ich rufe morgen an.\nGruß &amp; Dank</textarea>" in unconfigured.text
        assert 'value="Rückruf &lt;morgen&gt;"' in unconfigured.text

        closed = socket.socket()
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        closed.close()  # nothing listens there
        added = crmhub(
            "connectors", "add", "smtp", "out", "--set", "host=127.0.0.1",
            "--set", f"port={port}", "--set", "tls=none", "--set", "owner=sales@ourco.example",
        )  # fmt: skip
        assert added.returncode == 0, added.stderr
        down = browser.post("/send", data={**draft, "csrf": csrf.group(1)})
        assert down.status_code == 502
        assert "Not sent" in down.text and "Ich rufe morgen an." in down.text


@pytest.mark.browser
def test_reply_from_a_mails_page_is_filled_and_threaded(
    sending_site: tuple[Server, str],
    crmhub: Cli,
    mailserver: tuple[int, RecordingMailserver],
    browser: Any,
) -> None:
    """In real Chromium: open a customer's mail, reply; the form is filled (the sender, "Re:"
    once, the text quoted) and the mail that leaves carries In-Reply-To and References."""
    from playwright.sync_api import expect

    from tests.e2e.test_browser import log_in

    server, _ = sending_site
    port, handler = mailserver
    added = crmhub(
        "connectors", "add", "smtp", "out", "--set", "host=127.0.0.1", "--set", f"port={port}",
        "--set", "tls=none", "--set", "owner=sales@ourco.example",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    context = browser.new_context(base_url=server.url)
    context.set_default_timeout(10_000)
    page = context.new_page()
    try:
        log_in(page, "sales@ourco.example", "correct horse 42")
        page.get_by_placeholder(re.compile("Search")).fill("Elbe Logistik")
        page.keyboard.press("Enter")
        page.get_by_role("link", name="Elbe Logistik GmbH").first.click()
        page.get_by_role("link", name="Angebot Lager Nord").click()
        page.get_by_text("Reply", exact=True).click()
        expect(page.get_by_label("To", exact=True)).to_have_value("J.Ohlsen@elbe-logistik.de")
        expect(page.get_by_label("Subject")).to_have_value("Re: Angebot Lager Nord")
        quoted = page.get_by_label("Text").input_value()
        assert "> Guten Tag, anbei unsere Anfrage." in quoted, quoted
        page.get_by_label("Text").fill("Danke, das Angebot folgt morgen.\n" + quoted)
        page.get_by_role("button", name=re.compile("^Send as")).click()
        expect(page.get_by_role("heading", name="Sent")).to_be_visible()
    finally:
        context.close()
    sent = handler.received[-1]
    assert sent[1] == ["J.Ohlsen@elbe-logistik.de"]
    message = sent[2].decode()
    assert "In-Reply-To: <m1@elbe-logistik.de>" in message
    assert "References: <m1@elbe-logistik.de>" in message
    assert "Subject: Re: Angebot Lager Nord" in message
