"""`create_contacts` and `owner` from the command line, as an operator sets them up.

A mistyped policy must be refused when the connector is added, in one line: accepted, it would
silently create nobody (or, worse, be read as something else) at every sync.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tests.e2e.test_cli import DATA, MBOX, one_line_error, query

if TYPE_CHECKING:
    from tests.e2e.conftest import Cli


def test_a_bad_policy_or_owner_is_refused_in_one_line(crmhub: Cli, migrated: None) -> None:
    policy, owner = crmhub.each(
        ("connectors", "add", "mbox", "x", "--set", MBOX, "--set", "create_contacts=yes"),
        ("connectors", "add", "ics", "y", "--set", MBOX, "--set", "owner=anna"),
    )
    assert one_line_error(policy) == (
        "crmhub: mbox: create_contacts='yes'; use off, written-to or account-domain"
    )
    assert "owner='anna' is not a mail address" in one_line_error(owner)
    assert query(crmhub.database_url, "SELECT count(*) FROM connectors") == [(0,)]


def test_sync_reports_the_contacts_it_created(crmhub: Cli) -> None:
    imported = crmhub("directory", "import", str(DATA / "directory.csv"))
    assert imported.returncode == 0, imported.stderr
    added = crmhub(
        "connectors", "add", "mbox", "mail", "--set", MBOX,
        "--set", "create_contacts=written-to", "--set", "owner=anna@ourco.example",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    synced = crmhub("sync")
    assert synced.returncode == 0, synced.stderr
    assert synced.stdout.strip() == (
        "mail: fetched 4, new 4, duplicates 0, matched 2, unmatched 2, quarantined 0, "
        "contacts created 1, errors 0"
    )
    assert query(
        crmhub.database_url,
        "SELECT c.name, e.address FROM contacts c JOIN contact_emails e ON e.contact_id = c.id "
        "JOIN accounts a ON a.id = c.account_id WHERE a.name = 'Isar Maschinenbau AG'",
    ) == [("Einkauf", "einkauf@sued.isar-mb.de")]
