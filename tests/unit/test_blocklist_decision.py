"""The blocklist decision (matching.blocklist) and who counts as an outside party
(matching.parties): pure, so every path that stores items decides the same way."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.model import AddressKind, Participant, Role
from matching.blocklist import (
    BlockEntryError,
    Blocklist,
    is_blocked,
    normalize_entry,
    normalize_user,
)
from matching.index import IdentityIndex
from matching.parties import external_parties

INDEX = IdentityIndex(internal_domains=("ourco.example",), region="DE")


def _mail(*addresses: str) -> list[Participant]:
    return [Participant(Role.TO, a) for a in addresses]


@pytest.mark.parametrize(
    ("text", "entry"),
    [
        ("  Dr.Who@Praxis-Example.DE ", "dr.who@praxis-example.de"),
        ("jane+news@example.com", "jane@example.com"),
        ("J.A.N.E@googlemail.com", "jane@gmail.com"),
        ("Praxis-Example.DE", "praxis-example.de"),
        ("@praxis-example.de", "praxis-example.de"),
        ("bücher.example", "xn--bcher-kva.example"),
    ],
)
def test_entries_are_normalised_like_participants(text: str, entry: str) -> None:
    assert normalize_entry(text) == entry


@pytest.mark.parametrize("text", ["", "de", "not an address@", "a@b", "http://acme.de/", "@"])
def test_anything_else_is_refused_with_a_message(text: str) -> None:
    with pytest.raises(BlockEntryError, match=r"address|domain"):
        normalize_entry(text)


def test_users_are_mailbox_owners_compared_without_case() -> None:
    assert normalize_user(" Anna@OurCo.example ") == "anna@ourco.example"
    assert normalize_user("") == ""
    with pytest.raises(BlockEntryError, match="--user"):
        normalize_user("anna")


def test_a_domain_covers_its_subdomains_by_whole_labels_only() -> None:
    listed = Blocklist.of([("praxis.de", "")])
    assert listed.blocks("dr@praxis.de", "")
    assert listed.blocks("dr@eu.mail.praxis.de", "")
    assert not listed.blocks("dr@notpraxis.de", "")
    assert not listed.blocks("dr@praxis.de.example.com", "")
    assert not listed.blocks("+4951168900756", "")  # numbers are never listed


def test_a_users_entry_holds_in_that_users_mailboxes_only() -> None:
    listed = Blocklist.of([("doc@praxis.de", "anna@ourco.example")])
    assert listed.blocks("doc@praxis.de", "Anna@OurCo.example")
    assert not listed.blocks("doc@praxis.de", "tom@ourco.example")
    assert not listed.blocks("doc@praxis.de", "")  # a connector without owner: admin-wide only
    assert bool(listed) and not bool(Blocklist())


def test_staff_and_extensions_are_not_parties_and_a_withheld_number_is_unknown() -> None:
    participants = [
        Participant(Role.FROM, "anna@ourco.example"),
        Participant(Role.TO, "Doc@Praxis.de", name="Dr Doc"),
        Participant(Role.CC, "undisclosed-recipients:;"),
        Participant(Role.CALLER, "anonymous", AddressKind.PHONE),
        Participant(Role.CALLEE, "201", AddressKind.PHONE),
        Participant(Role.CALLEE, "0511 6890756", AddressKind.PHONE),
    ]
    assert external_parties(participants, INDEX) == ["doc@praxis.de", None, "+495116890756"]


def test_an_item_is_blocked_when_every_outside_party_is() -> None:
    listed = Blocklist.of([("praxis.de", ""), ("friend@gmail.com", "anna@ourco.example")])
    doctor = external_parties(_mail("anna@ourco.example", "doc@praxis.de"), INDEX)
    assert is_blocked(doctor, listed, "tom@ourco.example")
    both = external_parties(_mail("doc@praxis.de", "friend@gmail.com"), INDEX)
    assert is_blocked(both, listed, "anna@ourco.example")
    assert not is_blocked(both, listed, "tom@ourco.example")
    customer = external_parties(_mail("doc@praxis.de", "buyer@acme.de"), INDEX)
    assert not is_blocked(customer, listed, "anna@ourco.example")
    assert not is_blocked(external_parties(_mail("tom@ourco.example"), INDEX), listed, "")
    assert not is_blocked(["doc@praxis.de", None], listed, "")  # a withheld caller is unknown


ADDRESSES = st.sampled_from(
    ["doc@praxis.de", "x@eu.praxis.de", "buyer@acme.de", "friend@gmail.com", "me@ourco.example"]
)


@given(st.lists(ADDRESSES, max_size=5), st.lists(st.sampled_from(["praxis.de", "acme.de"])))
def test_blocked_means_at_least_one_party_and_each_one_listed(
    addresses: list[str], domains: list[str]
) -> None:
    listed = Blocklist.of((d, "") for d in domains)
    parties = external_parties(_mail(*addresses), INDEX)
    expected = bool(parties) and all(
        p is not None and any(p.endswith(("@" + d, "." + d)) for d in domains) for p in parties
    )
    assert is_blocked(parties, listed, "") is expected
