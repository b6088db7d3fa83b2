"""The hub-level connector settings (`create_contacts`, `owner`, `visibility`, `private_marker`,
`audit_reads`), accepted by every kind.

They are checked where connectors are added, so that a typo is refused at once instead of
silently meaning "off" at every sync.
"""

from __future__ import annotations

import re

import pytest

from connectors.base import CREATE_CONTACTS, ConfigurationError
from connectors.registry import KINDS, connector_class
from matching.autocreate import ContactPolicy


def _minimal(kind: str) -> dict[str, str]:
    cls = connector_class(kind)
    return {**{key: "x" for key in cls.required}, **cls.example}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_kind_has_a_valid_minimal_configuration(kind: str) -> None:
    connector_class(kind).validate_settings(_minimal(kind))


def test_the_setting_and_the_policy_name_the_same_values() -> None:
    assert list(CREATE_CONTACTS) == [policy.value for policy in ContactPolicy]


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("policy", CREATE_CONTACTS)
def test_every_kind_accepts_the_policy_and_an_owner(kind: str, policy: str) -> None:
    settings = {**_minimal(kind), "create_contacts": policy, "owner": "anna@ourco.example"}
    connector_class(kind).validate_settings(settings)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_kind_refuses_a_bad_policy_naming_the_allowed_values(kind: str) -> None:
    settings = {**_minimal(kind), "create_contacts": "always"}
    with pytest.raises(ConfigurationError) as refused:
        connector_class(kind).validate_settings(settings)
    assert str(refused.value) == (
        f"{kind}: create_contacts='always'; use off, written-to or account-domain"
    )


@pytest.mark.parametrize("owner", ["anna", "anna@localhost", "Anna <anna@ourco.example>", ""])
def test_an_owner_must_be_a_mail_address(owner: str) -> None:
    with pytest.raises(ConfigurationError, match=r"owner=.* is not a mail address"):
        connector_class("mbox").validate_settings({"path": "x", "owner": owner})


def test_the_hub_settings_are_listed_with_the_kinds_own() -> None:
    with pytest.raises(ConfigurationError) as refused:
        connector_class("mbox").validate_settings({"path": "x", "colour": "blue"})
    assert str(refused.value) == (
        "mbox: unknown setting colour (known: audit_reads, create_contacts, interval, owner, path, "
        "private_marker, visibility)"
    )


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"visibility": "secret"}, "visibility='secret'; use full, subject or metadata"),
        ({"audit_reads": "sometimes"}, "audit_reads='sometimes'; use on or off"),
    ],
)
def test_visibility_and_audit_reads_are_checked(settings: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        connector_class("mbox").validate_settings({"path": "x", **settings})


def test_the_owner_setting_wins_and_a_login_that_is_an_address_stands_in() -> None:
    imap = connector_class("imap")
    base = {"host": "mail.ourco.example"}
    assert imap.mailbox_owner({**base, "username": "anna@ourco.example"}) == "anna@ourco.example"
    assert imap.mailbox_owner({**base, "username": "anna"}) == ""
    both = {**base, "username": "svc-crm@ourco.example", "owner": "anna@ourco.example"}
    assert imap.mailbox_owner(both) == "anna@ourco.example"
    assert connector_class("mbox").mailbox_owner({"path": "x"}) == ""
