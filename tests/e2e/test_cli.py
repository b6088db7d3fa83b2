"""The `crmhub` console script, run as a child process the way an operator or a cron job runs it.

Scripts rely on the exit status (0 ok, 1 some rows or connectors failed, 2 bad input) and on
one-line `crmhub: ...` messages without tracebacks; operators rely on secrets never being echoed.
These tests check exactly that output, plus the database state that the commands promise.
Each call costs about a second of interpreter start-up, so set-up that is not the subject of a
test goes through the `configured` fixture instead, and independent error cases run side by side.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
from sqlalchemy import create_engine, text

from storage import db
from tests.weblogin import login

if TYPE_CHECKING:
    from tests.e2e.conftest import Cli, Result, Server

DATA = Path(__file__).parent.parent / "data"
MBOX = f"path={DATA / 'contract.mbox'}"
SECRET_VALUE = "pa55-w0rd-that-must-not-leak"


def query(database_url: str, sql: str) -> list[tuple[Any, ...]]:
    engine = create_engine(db.sync_url(database_url))
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.execute(text(sql))]
    finally:
        engine.dispose()


def one_line_error(result: Result, status: int = 2) -> str:
    """A usage error: the documented exit status and exactly one `crmhub: ...` line."""
    assert result.returncode == status, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("crmhub: "), result.stderr
    return lines[0]


def test_directory_import_creates_accounts_and_reimport_does_not_duplicate(
    crmhub: Cli, database_url: str
) -> None:
    first = crmhub("directory", "import", str(DATA / "directory.csv"))
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == (
        "directory.csv: 3 rows imported, 0 rejected; accounts 2 new, 0 updated; "
        "contacts 2 new, 0 updated; 0 stored items attributed anew"
    )
    again = crmhub("directory", "import", str(DATA / "directory.csv"))
    assert again.returncode == 0, again.stderr
    assert "accounts 0 new" in again.stdout and "contacts 0 new" in again.stdout
    assert query(database_url, "SELECT name FROM accounts ORDER BY name") == [
        ("Elbe Logistik GmbH",),
        ("Isar Maschinenbau AG",),
    ]
    assert query(database_url, "SELECT count(*) FROM contacts") == [(2,)]


def test_directory_import_names_each_bad_row_and_keeps_the_good_ones(
    crmhub: Cli, migrated: None, tmp_path: Path
) -> None:
    bad = tmp_path / "partners.csv"
    bad.write_text(
        "account,domains,contact,emails,phones,owner\n"
        "Alster Bau GmbH,alster-bau.example,Uwe Kern,u.kern@alster-bau.example,,\n"
        "Bremer Hafen AG,bremer-hafen.example,Lea Roth,not-an-email,,\n",
        encoding="utf-8",
    )
    result, missing = crmhub.each(
        ("directory", "import", str(bad)), ("directory", "import", str(tmp_path / "gone.csv"))
    )
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert "partners.csv:3: emails:" in result.stderr
    assert "not-an-email" in result.stderr
    assert "1 rows imported, 1 rejected" in result.stdout
    assert query(crmhub.database_url, "SELECT name FROM contacts") == [("Uwe Kern",)]
    assert "gone.csv" in one_line_error(missing)


def test_connectors_add_list_test_remove(crmhub: Cli, migrated: None) -> None:
    added = crmhub.each(
        ("connectors", "add", "mbox", "mail", "--set", MBOX),
        ("connectors", "add", "asterisk-cdr", "calls", "--set", f"path={DATA / 'Master.csv'}"),
    )
    assert [(a.returncode, a.stdout.strip()) for a in added] == [
        (0, "connector mail (mbox) added"),
        (0, "connector calls (asterisk-cdr) added"),
    ]

    listed, tested = crmhub.each(("connectors", "list"), ("connectors", "test", "mail"))
    assert listed.returncode == 0, listed.stderr
    rows = [line.split("\t") for line in listed.stdout.strip().splitlines()]
    assert [(r[0], r[1], r[3]) for r in rows] == [
        ("calls", "asterisk-cdr", f"path={DATA / 'Master.csv'}"),
        ("mail", "mbox", MBOX),
    ]
    assert tested.returncode == 0, tested.stderr
    assert tested.stdout.strip() == "mail: readable, 4 items"

    removed = crmhub("connectors", "remove", "calls")
    assert removed.returncode == 0, removed.stderr
    assert removed.stdout.strip() == "connector calls removed; its logged items stay"
    again, relisted = crmhub.each(("connectors", "test", "calls"), ("connectors", "list"))
    assert "no connector named 'calls'" in one_line_error(again)
    assert [line.split("\t")[0] for line in relisted.stdout.strip().splitlines()] == ["mail"]


def test_connectors_add_rejects_bad_input_with_one_clear_line(
    crmhub: Cli, configured: None
) -> None:
    kind, missing, unknown, unset, duplicate = crmhub.each(
        ("connectors", "add", "carrier-pigeon", "x", "--set", MBOX),
        ("connectors", "add", "mbox", "x"),
        ("connectors", "add", "mbox", "x", "--set", MBOX, "--set", "colour=blue"),
        ("connectors", "add", "mbox", "x", "--set", MBOX, "--secret", "password=NOT_SET_ANYWHERE"),
        ("connectors", "add", "mbox", "mail", "--set", MBOX),
    )
    message = one_line_error(kind)
    assert "'carrier-pigeon'" in message and "mbox" in message and "asterisk-cdr" in message
    assert "missing setting path" in one_line_error(missing)
    assert "unknown setting colour" in one_line_error(unknown)
    assert "NOT_SET_ANYWHERE is not set" in one_line_error(unset)
    assert "'mail' exists" in one_line_error(duplicate)
    names = query(crmhub.database_url, "SELECT name FROM connectors ORDER BY name")
    assert names == [("calendar",), ("calls",), ("mail",)]


def test_a_connector_whose_path_does_not_exist_fails_clearly(crmhub: Cli, tmp_path: Path) -> None:
    """Adding is allowed (the share may be mounted later); testing and syncing say what is wrong."""
    gone = tmp_path / "gone.mbox"
    assert crmhub("connectors", "add", "mbox", "old-mail", "--set", f"path={gone}").returncode == 0
    tested, synced = crmhub.each(("connectors", "test", "old-mail"), ("sync", "--json"))
    assert str(gone) in one_line_error(tested)

    assert synced.returncode == 1
    assert "Traceback" not in synced.stderr
    (report,) = json.loads(synced.stdout)["connectors"]
    assert report["connector"] == "old-mail"
    assert report["errors"] == 1 and str(gone) in report["error"]


def test_secrets_come_from_the_environment_and_are_never_echoed(crmhub: Cli) -> None:
    env = {"MAIL_PASSWORD": SECRET_VALUE}
    added = crmhub(
        "connectors", "add", "mbox", "mail", "--set", MBOX,
        "--secret", "password=MAIL_PASSWORD", env=env,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    listed, synced = crmhub.each(("connectors", "list"), ("-v", "sync"))
    for result in (added, listed, synced):
        assert result.returncode == 0, result.stderr
        assert SECRET_VALUE not in result.stdout + result.stderr
    assert "mail\tmbox" in listed.stdout
    ((stored,),) = query(crmhub.database_url, "SELECT secrets FROM connectors")
    assert stored and SECRET_VALUE not in stored


def test_sync_json_counts_per_connector_and_a_second_sync_creates_nothing(
    crmhub: Cli, configured: None
) -> None:
    first = crmhub("sync", "--json")
    assert first.returncode == 0, first.stderr
    reports = {r["connector"]: r for r in json.loads(first.stdout)["connectors"]}
    counts = ("kind", "fetched", "new", "duplicates", "matched", "unmatched", "quarantined")
    assert {name: tuple(r[k] for k in counts) for name, r in reports.items()} == {
        "mail": ("mbox", 4, 4, 0, 2, 2, 0),
        "calendar": ("ics", 1, 1, 0, 1, 0, 0),
        "calls": ("asterisk-cdr", 1, 1, 0, 1, 0, 0),
    }
    assert all(r["errors"] == 0 and r["error"] == "" for r in reports.values())

    second = crmhub("sync")
    assert second.returncode == 0, second.stderr
    assert sorted(second.stdout.strip().splitlines()) == [
        f"{name}: fetched 0, new 0, duplicates 0, matched 0, unmatched 0, quarantined 0, errors 0"
        for name in ("calendar", "calls", "mail")
    ]
    assert query(crmhub.database_url, "SELECT count(*) FROM interactions") == [(6,)]


def test_users_add_prints_a_password_and_validates_the_role(crmhub: Cli, migrated: None) -> None:
    added, bad, nobody = crmhub.each(
        ("users", "add", "Lena@ourco.example", "--role", "callcenter"),
        ("users", "add", "boss@ourco.example", "--role", "boss"),
        ("tokens", "create", "boss@ourco.example"),
    )
    assert added.returncode == 0, added.stderr
    lines = added.stdout.strip().splitlines()
    assert lines[0] == "user Lena@ourco.example (callcenter) saved"
    assert lines[1].startswith("password: ")
    assert len(lines[1].removeprefix("password: ")) >= 12

    assert bad.returncode == 2
    assert "Traceback" not in bad.stderr
    assert "invalid choice: 'boss'" in bad.stderr and "callcenter" in bad.stderr
    assert "boss@ourco.example" in one_line_error(nobody)
    assert query(crmhub.database_url, "SELECT email, role FROM users") == [
        ("lena@ourco.example", "callcenter")
    ]


def test_a_created_token_and_password_open_the_api(
    crmhub: Cli, configured: None, serve: Callable[[str, Path], Server]
) -> None:
    added = crmhub("users", "add", "tom@ourco.example", "--role", "sales")
    password = added.stdout.strip().splitlines()[-1].removeprefix("password: ")
    created = crmhub("tokens", "create", "TOM@ourco.example")
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    assert token.startswith("crm_") and "\n" not in token

    server = serve(crmhub.database_url, crmhub.workdir)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        refused = client.get("/api/accounts", headers={"Authorization": "Bearer crm_wrong"})
        assert refused.status_code == 401
        accounts = client.get("/api/accounts", headers={"Authorization": f"Bearer {token}"})
        assert accounts.status_code == 200, accounts.text
        assert [a["name"] for a in accounts.json()["items"]] == [
            "Elbe Logistik GmbH",
            "Isar Maschinenbau AG",
        ]
        assert login(client, "tom@ourco.example", "nope").status_code == 401
        assert login(client, "tom@ourco.example", password).status_code == 303
        assert "crmhub_session" in client.cookies


def test_an_unreachable_database_is_one_line(crmhub: Cli) -> None:
    unreachable = {"CRMHUB_DATABASE_URL": "postgresql+psycopg://crmhub@127.0.0.1:1/crmhub"}
    message = one_line_error(crmhub("sync", env=unreachable))
    assert "database" in message and "connection" in message


def test_demo_prints_the_line_that_points_other_commands_at_its_database(tmp_path: Path) -> None:
    """A newcomer pastes the `export` line `crmhub demo` prints and then uses the CLI on the
    demo's database, not on a fresh empty one in the current directory."""
    import os
    import shlex
    import subprocess

    from tests.e2e.conftest import CRMHUB

    bare = {k: v for k, v in os.environ.items() if not k.startswith("CRMHUB_")}
    demo = subprocess.run(
        [str(CRMHUB), "demo", "--load-only", "--dir", str(tmp_path / "demo")],
        env=bare,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert demo.returncode == 0, demo.stderr
    line = demo.stdout.strip().splitlines()[-1].strip()
    assert line.startswith("export "), demo.stdout
    pasted = dict(word.split("=", 1) for word in shlex.split(line.removeprefix("export ")))
    listed = subprocess.run(
        [str(CRMHUB), "connectors", "list"],
        env={**bare, **pasted},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert listed.returncode == 0, listed.stderr
    names = sorted(row.split("\t", 1)[0] for row in listed.stdout.strip().splitlines())
    assert names == ["demo-calendar", "demo-calls", "demo-mail"]
