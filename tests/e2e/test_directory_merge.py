"""Merging duplicate accounts and contacts the way operators and scripts do it: the `crmhub
directory merge` command and POST /api/{accounts,contacts}/{id}/merge on a real server.

The directory holds "Isar Maschinenbau AG" and its duplicate "Isar MB", each with a Tom Rieger,
and one person entered twice (Piet Brandt at Elbe, "P. Brandt" at Alster on his gmail address);
a few mails are synced through the real pipeline first, so a merge has stored items to move.
What is checked is what the user sees: exit status and printed lines, HTTP status and JSON, and
where the items are afterwards. storage.merge's own rules are tests/integration/test_merge.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from config.settings import Settings
from hub.admin import add_connector, import_directory
from hub.bootstrap import build_hub
from hub.pipeline import sync_all
from storage.tokens import create_token
from storage.users import add_user
from tests.e2e.conftest import SECRET_KEY
from tests.e2e.test_api import api_error, ok
from tests.e2e.test_cli import one_line_error, query

if TYPE_CHECKING:
    from tests.e2e.conftest import Cli, Server

DIRECTORY = """account,domains,contact,emails,phones,owner
Isar Maschinenbau AG,isar-mb.de,Tom Rieger,tom.rieger@isar-mb.de,,
Isar MB,isar-maschinenbau.de,Tom Rieger,t.rieger@isar-maschinenbau.de,0171 9998887,
Isar MB,isar-maschinenbau.de,Eva Kurz,eva@isar-maschinenbau.de,,
Elbe GmbH,elbe.de,Piet Brandt,piet@elbe.de,,
Alster AG,alster.example,P. Brandt,p.brandt@gmail.com,,
"""


def _mail(key: str, sender: str, subject: str) -> str:
    return (
        f"From x Mon Jan  8 09:00:00 2024\nFrom: {sender}\nTo: anna@ourco.example\n"
        f"Subject: {subject}\nDate: Mon, 8 Jan 2024 09:00:00 +0100\nMessage-ID: <{key}@test>\n\n"
        f"{subject}.\n\n"
    )


MBOX = "".join(
    (
        _mail("domain", "einkauf@isar-maschinenbau.de", "Angebot"),
        _mail("eva", "eva@isar-maschinenbau.de", "Lieferung"),
        _mail("tom", "t.rieger@isar-maschinenbau.de", "Termin"),
        _mail("gmail", "p.brandt@gmail.com", "Privat"),
    )
)
PASSWORD = "correct horse 42"


async def _seed(database_url: str, workdir: Path) -> str:
    (workdir / "d.csv").write_text(DIRECTORY, encoding="utf-8")
    (workdir / "mail.mbox").write_text(MBOX, encoding="utf-8")
    hub = build_hub(
        Settings(
            database_url=database_url,
            internal_domains=["ourco.example"],
            default_region="DE",
            timezone="Europe/Berlin",
            secret_key=SECRET_KEY,
        ),
        migrate=True,
    )
    try:
        assert not (await import_directory(hub, workdir / "d.csv")).errors
        mailbox = {"path": str(workdir / "mail.mbox"), "owner": "sales@ourco.example"}
        await add_connector(hub, "mbox", "mail", mailbox, {})
        reports = await sync_all(hub)
        assert all(not r.errors for r in reports), [r.error for r in reports]
        async with hub.sessions() as session, session.begin():
            # Merging records is a manager's (DESIGN.md "Who sees what").
            row = await add_user(session, "sales@ourco.example", "manager", PASSWORD)
            return await create_token(session, row)
    finally:
        await hub.close()


@pytest.fixture
def token(database_url: str, tmp_path: Path) -> str:
    """The duplicates imported and the mail synced; an API token of sales@ourco.example, who
    is a manager here (merges need the role) and owns the mailbox."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, _seed(database_url, tmp_path)).result()


def _ids(database_url: str) -> tuple[dict[str, int], dict[tuple[str, str], int]]:
    """Account ids by name; contact ids by (account name, contact name)."""
    accounts = dict(query(database_url, "SELECT name, id FROM accounts"))
    contacts = {
        (account, name): id_
        for account, name, id_ in query(
            database_url,
            "SELECT a.name, c.name, c.id FROM contacts c JOIN accounts a ON a.id = c.account_id",
        )
    }
    return accounts, contacts


def _accounts_of(database_url: str, message_key: str) -> list[tuple[str, str | None]]:
    """(account name, contact name) of the live links of one synced mail."""
    return sorted(
        query(
            database_url,
            "SELECT a.name, c.name FROM attributions t JOIN interactions i "
            "ON i.id = t.interaction_id JOIN accounts a ON a.id = t.account_id "
            "LEFT JOIN contacts c ON c.id = t.contact_id "
            f"WHERE i.message_id = '<{message_key}@test>' AND NOT t.removed",
        ),
        key=lambda row: (row[0], row[1] or ""),
    )


def test_cli_merges_accounts_and_prints_what_moved(
    crmhub: Cli, token: str, database_url: str
) -> None:
    accounts, contacts = _ids(database_url)
    keep, drop = accounts["Isar Maschinenbau AG"], accounts["Isar MB"]
    assert _accounts_of(database_url, "eva") == [("Isar MB", "Eva Kurz")]

    result = crmhub("directory", "merge", "accounts", "Isar Maschinenbau AG", str(drop))

    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    lines = result.stdout.strip().splitlines()
    assert lines[0] == (
        f"merged account {drop} 'Isar MB' into account {keep} 'Isar Maschinenbau AG'; "
        f"account {drop} is deleted"
    )
    assert lines[1] == (
        "moved: domains 1, contacts 1, contacts merged 1, emails 1, phones 1, participants 1, "
        "attributions 3, redundant attributions 0"
    )
    (note,) = [line for line in lines if line.startswith("note: ")]
    assert "Tom Rieger" in note and str(contacts[("Isar Maschinenbau AG", "Tom Rieger")]) in note
    assert lines[-1] == "3 stored items re-matched, 0 stored items attributed anew"
    assert len(lines) == 4
    assert ("Isar MB",) not in query(database_url, "SELECT name FROM accounts")
    assert _accounts_of(database_url, "eva") == [("Isar Maschinenbau AG", "Eva Kurz")]
    assert _accounts_of(database_url, "tom") == [("Isar Maschinenbau AG", "Tom Rieger")]
    assert _accounts_of(database_url, "domain") == [("Isar Maschinenbau AG", None)]
    assert query(
        database_url, "SELECT actor, action FROM audit_log WHERE action LIKE '%.merge'"
    ) == [("cli", "account.merge")]


def test_cli_merges_contacts_and_the_item_follows(
    crmhub: Cli, token: str, database_url: str
) -> None:
    _, contacts = _ids(database_url)
    piet, brandt = contacts[("Elbe GmbH", "Piet Brandt")], contacts[("Alster AG", "P. Brandt")]

    result = crmhub("directory", "merge", "contacts", str(piet), str(brandt))

    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0] == (
        f"merged contact {brandt} 'P. Brandt' into contact {piet} 'Piet Brandt'; "
        f"contact {brandt} is deleted"
    )
    assert lines[1].startswith("moved: emails 1, phones 0, participants 1, attributions 1")
    assert lines[-1] == "1 stored items re-matched, 1 stored items attributed anew"
    assert _accounts_of(database_url, "gmail") == [("Elbe GmbH", "Piet Brandt")]


def test_cli_refuses_unknown_or_identical_records_with_one_line(
    crmhub: Cli, token: str, database_url: str
) -> None:
    accounts, contacts = _ids(database_url)
    keep = str(accounts["Isar Maschinenbau AG"])
    tom = str(contacts[("Isar MB", "Tom Rieger")])
    results = crmhub.each(
        ("directory", "merge", "accounts", keep, "999999"),
        ("directory", "merge", "accounts", "Isar", keep),
        ("directory", "merge", "accounts", keep, "Isar Maschinenbau AG"),
        ("directory", "merge", "contacts", tom, tom),
        ("directory", "merge", "contacts", "424242", tom),
        ("directory", "merge", "contacts", tom, "Tom Rieger"),
    )
    messages = [one_line_error(r) for r in results]
    assert messages == [
        "crmhub: DROP: there is no account 999999",
        "crmhub: KEEP: there is no account named 'Isar' (names must match exactly)",
        f"crmhub: KEEP and DROP are both account {keep}; name two different accounts",
        f"crmhub: KEEP and DROP are both contact {tom}; name two different contacts",
        "crmhub: KEEP: there is no contact 424242",
        "crmhub: DROP 'Tom Rieger': expected a contact id (a number)",
    ]
    assert all(r.stdout == "" for r in results)
    assert _ids(database_url) == (accounts, contacts)
    assert query(database_url, "SELECT count(*) FROM audit_log WHERE action LIKE '%.merge'") == [
        (0,)
    ]


def test_cli_refuses_an_id_no_record_can_have(crmhub: Cli, token: str, database_url: str) -> None:
    accounts, contacts = _ids(database_url)
    huge = "99999999999999999999"
    account, contact = crmhub.each(
        ("directory", "merge", "accounts", str(accounts["Isar MB"]), huge),
        ("directory", "merge", "contacts", huge, str(contacts[("Isar MB", "Eva Kurz")])),
    )
    assert one_line_error(account) == f"crmhub: DROP: there is no account {huge}"
    assert one_line_error(contact) == f"crmhub: KEEP: there is no contact {huge}"


@pytest.fixture
def api(
    token: str, database_url: str, tmp_path: Path, serve: Callable[[str, Path], Server]
) -> Iterator[httpx.Client]:
    server = serve(database_url, tmp_path)
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=20) as client:
        yield client
    assert "Traceback" not in server.output(), server.output()


def test_api_merges_accounts(api: httpx.Client, database_url: str) -> None:
    accounts, _ = _ids(database_url)
    keep, drop = accounts["Isar Maschinenbau AG"], accounts["Isar MB"]

    body = ok(api.post(f"/api/accounts/{keep}/merge", json={"from": drop}))

    assert body["merge"] == {
        "kind": "account",
        "kept": keep,
        "dropped": drop,
        "moved": {
            "domains": 1,
            "contacts": 1,
            "contacts_merged": 1,
            "emails": 1,
            "phones": 1,
            "participants": 1,
            "attributions": 3,
            "redundant_attributions": 0,
        },
        "notes": body["merge"]["notes"],
        "rematched": {"examined": 3, "changed": 0},
    }
    assert len(body["merge"]["notes"]) == 1 and "Tom Rieger" in body["merge"]["notes"][0]
    merged = body["account"]
    assert (merged["id"], merged["name"]) == (keep, "Isar Maschinenbau AG")
    assert sorted(merged["domains"]) == ["isar-maschinenbau.de", "isar-mb.de"]
    assert sorted(c["name"] for c in merged["contacts"]) == ["Eva Kurz", "Tom Rieger"]
    api_error(api.get(f"/api/accounts/{drop}"), 404, "not_found")
    timeline = ok(api.get(f"/api/accounts/{keep}/timeline"))["items"]
    assert sorted(i["subject"] for i in timeline) == ["Angebot", "Lieferung", "Termin"]
    # Merging it again: the duplicate is gone now.
    message = api_error(api.post(f"/api/accounts/{keep}/merge", json={"from": drop}), 422)
    assert f"no account {drop}" in message


def test_api_merges_contacts(api: httpx.Client, database_url: str) -> None:
    _, contacts = _ids(database_url)
    piet, brandt = contacts[("Elbe GmbH", "Piet Brandt")], contacts[("Alster AG", "P. Brandt")]

    body = ok(api.post(f"/api/contacts/{piet}/merge", json={"from": brandt}))

    assert body["merge"]["kind"] == "contact"
    assert (body["merge"]["kept"], body["merge"]["dropped"]) == (piet, brandt)
    assert body["merge"]["moved"] == {
        "emails": 1,
        "phones": 0,
        "participants": 1,
        "attributions": 1,
        "redundant_attributions": 0,
    }
    assert body["merge"]["rematched"] == {"examined": 1, "changed": 1}
    assert sorted(body["contact"]["emails"]) == ["pbrandt@gmail.com", "piet@elbe.de"]
    subjects = [i["subject"] for i in ok(api.get(f"/api/contacts/{piet}/timeline"))["items"]]
    assert subjects == ["Privat"]
    api_error(api.get(f"/api/contacts/{brandt}"), 404, "not_found")


@pytest.mark.parametrize("what", ["accounts", "contacts"])
def test_api_merge_answers_bad_requests_in_the_error_shape(
    api: httpx.Client, database_url: str, what: str
) -> None:
    accounts, contacts = _ids(database_url)
    keep, drop = (
        (accounts["Isar Maschinenbau AG"], accounts["Isar MB"])
        if what == "accounts"
        else (contacts[("Elbe GmbH", "Piet Brandt")], contacts[("Alster AG", "P. Brandt")])
    )
    one = what.removesuffix("s")
    url = f"/api/{what}/{keep}/merge"

    def post(path: str, body: Any) -> httpx.Response:
        return api.post(path, json=body)

    assert f"no {one} 999999" in api_error(
        post(f"/api/{what}/999999/merge", {"from": drop}), 404, "not_found"
    )
    api_error(post(f"/api/{what}/99999999999999999999/merge", {"from": drop}), 404, "not_found")
    for bad in ({}, {"from": str(drop)}, {"from": True}, {"from": None}, {"from": 1.5}):
        assert "from" in api_error(post(url, bad), 422, "bad_merge"), bad
    for missing in (999999, 0, -1, 10**30):
        assert f"no {one} {missing}" in api_error(post(url, {"from": missing}), 422, "bad_merge")
    assert "both" in api_error(post(url, {"from": keep}), 422, "bad_merge")
    api_error(post(url, []), 400, "bad_json")
    api_error(
        api.post(url, content="{", headers={"content-type": "application/json"}), 400, "bad_json"
    )
    with httpx.Client(base_url=str(api.base_url), timeout=10) as anonymous:
        api_error(anonymous.post(url, json={"from": drop}), 401, "unauthenticated")
    assert _ids(database_url) == (accounts, contacts)
    assert query(database_url, "SELECT count(*) FROM audit_log WHERE action LIKE '%.merge'") == [
        (0,)
    ]
