"""hub.policy: who sees what of an item, and what each role may do (DESIGN.md "Who sees what")."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.model import Disclosure
from hub.policy import (
    ATTRIBUTED,
    ItemSource,
    Permission,
    Role,
    Viewer,
    audits_read,
    disclosure,
    may_read_quarantined,
    may_send_through,
    read_scope,
    shows_attachments,
    shows_body,
    shows_subject,
)

ANNA = Viewer.of("Anna@OurCo.example", "sales")
BOB = Viewer.of("bob@ourco.example", "manager")
CAROL = Viewer.of("carol@ourco.example", "callcenter")
IT = Viewer.of("it@ourco.example", "admin")
ANNAS = ItemSource("anna@ourco.example", "full", "anna-mail")
PBX = ItemSource("", "full", "pbx")


def test_the_owner_sees_everything_of_her_own_items_whatever_the_cap_or_role() -> None:
    capped = ItemSource("anna@ourco.example", "metadata", "anna-mail")
    assert disclosure(ANNA, attributed=False, sources=[capped]) is Disclosure.FULL
    as_callcenter = Viewer("anna@ourco.example", Role.CALLCENTER)
    assert disclosure(as_callcenter, attributed=True, sources=[capped]) is Disclosure.FULL


@pytest.mark.parametrize("viewer", [BOB, CAROL, IT])
def test_an_unattributed_item_of_a_mailbox_does_not_exist_for_anyone_else(viewer: Viewer) -> None:
    assert disclosure(viewer, attributed=False, sources=[ANNAS]) is Disclosure.NONE


def test_an_unattributed_item_nobody_owns_is_metadata_for_it_and_nothing_for_others() -> None:
    assert disclosure(IT, attributed=False, sources=[PBX]) is Disclosure.METADATA
    for viewer in (ANNA, BOB, CAROL):
        assert disclosure(viewer, attributed=False, sources=[PBX]) is Disclosure.NONE
    # Once anybody owns a copy, it is theirs: not IT's.
    assert disclosure(IT, attributed=False, sources=[PBX, ANNAS]) is Disclosure.NONE


@pytest.mark.parametrize(
    ("viewer", "expected"),
    [
        (BOB, Disclosure.FULL),
        (Viewer("dora@ourco.example", Role.SALES), Disclosure.FULL),
        (CAROL, Disclosure.SUBJECT),
        (IT, Disclosure.METADATA),
    ],
)
def test_attributed_items_by_role(viewer: Viewer, expected: Disclosure) -> None:
    assert disclosure(viewer, attributed=True, sources=[ANNAS]) is expected


def test_the_cap_limits_everyone_but_the_owner_and_the_most_open_copy_counts() -> None:
    capped = ItemSource("anna@ourco.example", "subject", "anna-mail")
    assert disclosure(BOB, attributed=True, sources=[capped]) is Disclosure.SUBJECT
    metadata = ItemSource("anna@ourco.example", "metadata", "anna-mail")
    assert disclosure(CAROL, attributed=True, sources=[metadata]) is Disclosure.METADATA
    also_in_toms = ItemSource("tom@ourco.example", "full", "tom-mail")
    assert disclosure(BOB, attributed=True, sources=[metadata, also_in_toms]) is Disclosure.FULL


def test_what_each_level_shows() -> None:
    assert not shows_subject(Disclosure.METADATA) and shows_subject(Disclosure.SUBJECT)
    assert not shows_body(Disclosure.SUBJECT, "email")
    assert shows_body(Disclosure.SUBJECT, "call"), "call notes are for the call center"
    assert not shows_body(Disclosure.METADATA, "call")
    assert shows_body(Disclosure.FULL, "email")
    assert not shows_attachments(Disclosure.SUBJECT) and shows_attachments(Disclosure.FULL)


@pytest.mark.parametrize(
    ("role", "allowed"),
    [
        (Role.ADMIN, {Permission.ADMINISTER}),
        (Role.MANAGER, {Permission.CORRECT, Permission.REVIEW, Permission.MERGE}),
        (Role.SALES, {Permission.CORRECT, Permission.REVIEW}),
        (Role.CALLCENTER, {Permission.CORRECT}),
    ],
)
def test_actions_by_role(role: Role, allowed: set[Permission]) -> None:
    viewer = Viewer("x@ourco.example", role)
    everyone = {Permission.PUBLIC, Permission.SIGNED_IN, Permission.READ, Permission.SEND}
    assert {p for p in Permission if viewer.may(p)} == everyone | allowed


def test_sending_and_raw_quarantine_belong_to_the_owner() -> None:
    assert may_send_through(ANNA, "anna@ourco.example")
    assert not may_send_through(ANNA, "bob@ourco.example") and not may_send_through(ANNA, "")
    assert not may_send_through(IT, "anna@ourco.example")
    assert may_read_quarantined(ANNA, "anna@ourco.example")
    assert not may_read_quarantined(IT, "anna@ourco.example")
    assert may_read_quarantined(IT, "") and not may_read_quarantined(ANNA, "")


def test_reads_are_audited_for_marked_connectors_by_anyone_but_the_owner() -> None:
    assert audits_read(BOB, [ANNAS], {"anna-mail"})
    assert not audits_read(ANNA, [ANNAS], {"anna-mail"})
    assert not audits_read(BOB, [ANNAS], {"pbx"})


sources = st.lists(
    st.builds(
        ItemSource,
        st.sampled_from(["", "anna@ourco.example", "tom@ourco.example"]),
        st.sampled_from(["full", "subject", "metadata"]),
    ),
    min_size=1,
    max_size=3,
)
viewers = st.builds(
    Viewer, st.sampled_from(["anna@ourco.example", "zoe@ourco.example"]), st.sampled_from(Role)
)


@given(viewers, st.booleans(), sources)
def test_nobody_but_an_owner_sees_more_than_the_role_allows(
    viewer: Viewer, attributed: bool, seen: list[ItemSource]
) -> None:
    level = disclosure(viewer, attributed=attributed, sources=seen)
    if any(viewer.owns(s.owner) for s in seen):
        assert level is Disclosure.FULL
    else:
        assert level <= ATTRIBUTED[viewer.role]
        assert level <= max(Disclosure.of_cap(s.visibility) for s in seen)
        assert attributed or level <= read_scope(viewer).ownerless


@given(viewers, sources)
def test_an_attribution_never_hides_what_was_visible(
    viewer: Viewer, seen: list[ItemSource]
) -> None:
    before = disclosure(viewer, attributed=False, sources=seen)
    assert disclosure(viewer, attributed=True, sources=seen) >= min(before, ATTRIBUTED[viewer.role])
