"""`crmhub users ...` and `crmhub tokens ...`, run as an administrator runs them.

What an operator relies on: an existing address is never silently reset; disabling, a new
password and revoking end access at once (checked over HTTP against a running server); lists
never show a token; every change is audited without a password; bad input is one line with
exit status 2.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from tests.e2e.test_cli import one_line_error, query

if TYPE_CHECKING:
    from tests.e2e.conftest import Cli, Result, Server

TOM, LENA = "tom@ourco.example", "lena@ourco.example"
PASSWORD = {"TOM_PASSWORD": "first pass phrase 1"}
WHEN = r"\d{4}-\d\d-\d\dT\d\d:\d\dZ"


def ok(result: Result) -> list[str]:
    assert result.returncode == 0, (result.stdout, result.stderr)
    assert result.stderr == "", result.stderr
    return result.stdout.strip().splitlines()


def audit(database_url: str) -> list[tuple[Any, ...]]:
    rows = query(database_url, "SELECT actor, action, target, before, after FROM audit_log")
    decoded = (json.loads(v) if isinstance(v, str) else v for row in rows for v in row[3:])
    return [(*row[:3], next(decoded), next(decoded)) for row in rows]


def test_adding_an_existing_user_is_an_error_that_resets_nothing(
    crmhub: Cli, migrated: None
) -> None:
    ok(
        crmhub(
            "users", "add", TOM, "--role", "sales", "--password-env", "TOM_PASSWORD", env=PASSWORD
        )
    )
    stored = query(crmhub.database_url, "SELECT role, password_hash FROM users")
    again = crmhub("users", "add", "Tom@OurCo.example", "--role", "admin")
    assert one_line_error(again) == (
        f"crmhub: user {TOM} exists; change the role with `crmhub users set-role`, "
        "the password with `crmhub users password`"
    )
    assert again.stdout == ""
    assert query(crmhub.database_url, "SELECT role, password_hash FROM users") == stored


def test_list_set_role_disable_enable_and_password(crmhub: Cli, migrated: None) -> None:
    crmhub.each(("users", "add", TOM, "--role", "sales"), ("users", "add", LENA, "--role", "admin"))
    ok(crmhub("tokens", "create", TOM))
    assert ok(crmhub("users", "set-role", TOM, "manager")) == [f"user {TOM}: role sales -> manager"]
    assert ok(crmhub("users", "disable", "Tom@ourco.example")) == [
        f"user {TOM} disabled; their sessions ended and 1 token(s) revoked"
    ]
    disabled_again, listed = crmhub.each(("users", "disable", TOM), ("users", "list"))
    assert ok(disabled_again) == [f"user {TOM} was disabled already"]
    assert ok(listed) == [
        "EMAIL\tROLE\tSTATE\tLAST LOGIN",
        f"{LENA}\tadmin\tactive\tnever",
        f"{TOM}\tmanager\tdisabled\tnever",
    ]
    assert ok(crmhub("users", "enable", TOM))[0].startswith(f"user {TOM} enabled; ")
    same_role, enabled_again = crmhub.each(
        ("users", "set-role", TOM, "manager"), ("users", "enable", TOM)
    )
    assert ok(same_role) == [f"user {TOM} has the role manager already"]
    assert ok(enabled_again) == [f"user {TOM} was enabled already"]

    generated = ok(crmhub("users", "password", TOM))
    assert generated[0] == f"password of {TOM} changed; their sessions ended and 0 token(s) revoked"
    assert re.fullmatch(r"password: \S{16}", generated[1]), generated
    chosen = crmhub("users", "password", TOM, "--password-env", "TOM_PASSWORD", env=PASSWORD)
    assert ok(chosen) == [f"password of {TOM} changed; their sessions ended and 0 token(s) revoked"]
    assert query(
        crmhub.database_url, f"SELECT disabled, session_epoch FROM users WHERE email = '{TOM}'"
    ) == [(False, 3)]
    entries = audit(crmhub.database_url)
    done = [(actor, action, target) for actor, action, target, _, _ in entries]
    assert sorted(done[:2]) == [("cli", "user.add", LENA), ("cli", "user.add", TOM)]
    assert done[2:] == [
        ("cli", "token.create", TOM),
        ("cli", "user.role", TOM),
        ("cli", "user.disable", TOM),
        ("cli", "user.enable", TOM),
        ("cli", "user.password", TOM),
        ("cli", "user.password", TOM),
    ]
    assert entries[3][3:] == ({"role": "sales"}, {"role": "manager"})
    assert entries[4][3:] == ({"state": "active"}, {"state": "disabled", "tokens_revoked": 1})
    assert "first pass phrase" not in repr(entries) and "scrypt" not in repr(entries)
    assert generated[1].removeprefix("password: ") not in repr(entries)


def test_user_verbs_refuse_bad_input_with_one_line(crmhub: Cli, migrated: None) -> None:
    ok(crmhub("users", "add", TOM, "--role", "sales"))
    nobody = "no user nobody@ourco.example; `crmhub users list` shows the users"
    results = crmhub.each(
        ("users", "disable", "nobody@ourco.example"),
        ("users", "enable", "nobody@ourco.example"),
        ("users", "set-role", "nobody@ourco.example", "sales"),
        ("users", "password", "nobody@ourco.example"),
        ("users", "set-role", TOM, "boss"),
        ("users", "password", TOM, "--password-env", "NOT_SET_ANYWHERE"),
        ("users", "add", "tom @ourco.example", "--role", "sales"),
    )
    messages = [one_line_error(result) for result in results]
    assert all(nobody in message for message in messages[:4]), messages
    assert messages[4:] == [
        "crmhub: role 'boss' is not one of admin, manager, sales, callcenter",
        "crmhub: --password-env NOT_SET_ANYWHERE: the variable is not set",
        "crmhub: 'tom @ourco.example' is not an email address: it contains blanks or control codes",
    ]
    assert query(crmhub.database_url, "SELECT email, role, session_epoch FROM users") == [
        (TOM, "sales", 0)
    ]
    helped = ok(crmhub("users", "--help"))
    for verb in ("add", "list", "disable", "enable", "set-role", "password"):
        assert any(line.strip().startswith(verb + " ") for line in helped), (verb, helped)


def test_tokens_create_list_and_revoke(crmhub: Cli, migrated: None) -> None:
    crmhub.each(("users", "add", TOM, "--role", "sales"), ("users", "add", LENA, "--role", "admin"))
    expiring = crmhub("tokens", "create", TOM, "--expires", "7")
    assert expiring.returncode == 0, expiring.stderr
    assert re.fullmatch(r"crm_\S{40,}\n", expiring.stdout), expiring.stdout
    assert re.fullmatch(f"expires {WHEN}\n", expiring.stderr), expiring.stderr
    lasting, lenas = crmhub("tokens", "create", TOM), crmhub("tokens", "create", LENA)  # ids 2, 3
    secrets = [expiring.stdout.strip(), *(line for r in (lasting, lenas) for line in ok(r))]

    assert ok(crmhub("tokens", "revoke", "2")) == [f"token 2 of {TOM} revoked"]
    again, mine, everyone = crmhub.each(
        ("tokens", "revoke", "2"), ("tokens", "list", TOM), ("tokens", "list")
    )
    assert ok(again) == [f"token 2 of {TOM} was revoked already"]
    listed = ok(everyone)
    assert listed[0] == "ID\tUSER\tCREATED\tEXPIRES\tLAST USED\tSTATE"
    rows = sorted(line.split("\t") for line in listed[1:])
    assert [(row[0], row[1], row[4], row[5]) for row in rows] == [
        ("1", TOM, "never", "active"),
        ("2", TOM, "never", "revoked"),
        ("3", LENA, "never", "active"),
    ]
    assert re.fullmatch(WHEN, rows[0][2]) and re.fullmatch(WHEN, rows[0][3])
    assert rows[1][3] == rows[2][3] == "never"
    assert ok(mine) == listed[:1] + [line for line in listed[1:] if f"\t{TOM}\t" in line]
    assert not any(secret in everyone.stdout for secret in secrets)

    entries = [e for e in audit(crmhub.database_url) if e[1].startswith("token.")]
    assert sorted((e[1], e[2], e[4]["token_id"]) for e in entries) == [
        ("token.create", LENA, 3),
        ("token.create", TOM, 1),
        ("token.create", TOM, 2),
        ("token.revoke", TOM, 2),
    ]
    assert not any(secret in repr(entries) for secret in secrets)


def test_token_verbs_refuse_bad_input_with_one_line(crmhub: Cli, migrated: None) -> None:
    ok(crmhub("users", "add", TOM, "--role", "sales"))
    results = crmhub.each(
        ("tokens", "create", TOM, "--expires", "0"),
        ("tokens", "create", TOM, "--expires", "-3"),
        ("tokens", "create", TOM, "--expires", "a week"),
        ("tokens", "create", TOM, "--expires", "9" * 5000),
        ("tokens", "create", "nobody@ourco.example"),
        ("tokens", "list", "nobody@ourco.example"),
        ("tokens", "revoke", "first"),
        ("tokens", "revoke", "999"),
        ("tokens", "revoke", "9" * 30),
    )
    messages = [one_line_error(result) for result in results]
    days = "expected a whole number of days from 1 to 36500"
    assert messages == [
        f"crmhub: --expires '0': {days}",
        f"crmhub: --expires '-3': {days}",
        f"crmhub: --expires 'a week': {days}",
        f"crmhub: --expires '{'9' * 5000}': {days}",
        *[
            "crmhub: no user nobody@ourco.example; `crmhub users list` shows the users, "
            "`crmhub users add` adds one"
        ]
        * 2,
        "crmhub: token id 'first': expected an ID that `crmhub tokens list` shows",
        "crmhub: no token with id 999",
        f"crmhub: token id '{'9' * 30}': expected an ID that `crmhub tokens list` shows",
    ]
    assert all(result.stdout == "" for result in results)
    assert query(crmhub.database_url, "SELECT count(*) FROM tokens") == [(0,)]


def test_revoking_and_disabling_end_api_access_at_once(
    crmhub: Cli, migrated: None, serve: Callable[[str, Path], Server]
) -> None:
    ok(crmhub("users", "add", TOM, "--role", "sales"))
    first, second = (ok(crmhub("tokens", "create", TOM))[0] for _ in range(2))  # ids 1 and 2
    server = serve(crmhub.database_url, crmhub.workdir)

    def status(token: str) -> int:
        headers = {"Authorization": f"Bearer {token}"}
        return httpx.get(f"{server.url}/api/accounts", headers=headers, timeout=10).status_code

    assert (status(first), status(second)) == (200, 200)
    listed = ok(crmhub("tokens", "list", TOM))
    assert all(re.search(f"\t{WHEN}\tactive$", line) for line in listed[1:]), listed
    ok(crmhub("tokens", "revoke", "1"))
    assert (status(first), status(second)) == (401, 200)
    ok(crmhub("users", "disable", TOM))
    assert status(second) == 401
    ok(crmhub("users", "enable", TOM))
    assert status(second) == 401
