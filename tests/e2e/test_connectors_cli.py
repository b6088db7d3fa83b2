"""`crmhub connectors set`: what IT changes of a connector reaches the items stored from it.

A new visibility cap or owner applies to every stored source of the connector at once
(DESIGN.md "Who sees what": tightening is retroactive), and each change is in the audit log.
"""

from __future__ import annotations

from tests.e2e.conftest import Cli, crmhub_env, seed
from tests.e2e.test_cli import one_line_error, query


def test_a_new_cap_and_owner_reach_the_stored_items_and_are_audited(
    crmhub: Cli, database_url: str
) -> None:
    seed(database_url)
    sources = "SELECT DISTINCT owner, visibility FROM sources WHERE connector = 'mail'"
    assert query(database_url, sources) == [("sales@ourco.example", "full")]

    done = crmhub("connectors", "set", "mail", "--set", "visibility=metadata")
    assert done.returncode == 0, done.stderr
    assert "visibility=metadata" in done.stdout
    assert query(database_url, sources) == [("sales@ourco.example", "metadata")]

    done = crmhub("connectors", "set", "mail", "--set", "owner=tom@ourco.example", "--disable")
    assert done.returncode == 0, done.stderr
    assert query(database_url, sources) == [("tom@ourco.example", "metadata")]
    assert query(database_url, "SELECT enabled FROM connectors WHERE name = 'mail'") in (
        [(False,)],
        [(0,)],
    )
    done = crmhub("connectors", "set", "mail", "--set", "visibility=")  # back to the default
    assert done.returncode == 0, done.stderr
    assert query(database_url, sources) == [("tom@ourco.example", "full")]
    audited = query(
        database_url,
        "SELECT actor, target FROM audit_log WHERE action = 'connector.change' ORDER BY id",
    )
    assert audited == [("cli", "mail")] * 3


def test_bad_changes_are_one_line_and_change_nothing(crmhub: Cli, database_url: str) -> None:
    seed(database_url, synced=False)
    for args, words in (
        (("no-such", "--set", "visibility=subject"), "no connector named 'no-such'"),
        (("mail", "--set", "visibility=secret"), "use full, subject or metadata"),
        (("mail", "--set", "colour=blue"), "unknown setting colour"),
        (("mail", "--set", "owner=anna"), "is not a mail address"),
        (("mail",), "say what to change"),
    ):
        assert words in one_line_error(crmhub("connectors", "set", *args)), args
    assert query(database_url, "SELECT settings FROM connectors WHERE name = 'mail'")[0][0]
    assert query(
        database_url, "SELECT count(*) FROM audit_log WHERE action = 'connector.change'"
    ) == [(0,)]


def test_testing_a_connector_under_another_secret_key_says_why_in_one_line(
    crmhub: Cli, database_url: str
) -> None:
    """Its secrets were sealed under the old CRMHUB_SECRET_KEY: a message, not a traceback."""
    seed(database_url, synced=False)
    env = {**crmhub_env(database_url), "PW": "imap password"}
    added = crmhub(
        "connectors", "add", "imap", "box", "--set", "host=127.0.0.1", "--set", "port=1",
        "--set", "username=anna", "--secret", "password=PW", env=env,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    other = {**env, "CRMHUB_SECRET_KEY": "another key altogether"}
    error = one_line_error(crmhub("connectors", "test", "box", env=other))
    assert "CRMHUB_SECRET_KEY has changed" in error
