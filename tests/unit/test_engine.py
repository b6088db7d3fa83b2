"""attribute() and its rules against a small in-memory directory.

The attribution policy of DESIGN.md is what users see on every timeline: an item on the
wrong customer, or a newsletter logged as a conversation, is a visible error. Each test
builds the interaction a connector would hand over and checks the decision, including
which rule made each attribution, so that the explanation shown to users stays true.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.model import (
    Account,
    AddressKind,
    Attribution,
    Channel,
    Contact,
    Direction,
    Interaction,
    Participant,
    ReviewKind,
    Role,
)
from matching.engine import Decision, ResolvedParticipant, attribute, direction_of, resolve
from matching.identities import FreeMail, normalize_email
from matching.index import AccountRef, IdentityIndex
from matching.rules import (
    ACCOUNT_DOMAIN,
    CONTACT_EMAIL,
    CONTACT_PHONE,
    THREAD,
    account_by_domain,
    bulk_reason,
    contact_by_email,
    contact_by_phone,
)

ELBE, ISAR, FREEMAIL_LISTED = 1, 2, 3
JANA, PIET, BERATER = 10, 11, 12
RULES = {CONTACT_EMAIL, CONTACT_PHONE, ACCOUNT_DOMAIN}


def _key(address: str) -> str:
    key = normalize_email(address)
    assert key is not None
    return key


def _directory() -> IdentityIndex:
    """Two customers, a contact on free mail, and an account that wrongly lists gmail.com."""
    accounts = [
        Account("Elbe Logistik GmbH", ("elbe-logistik.de",), id=ELBE),
        Account("Isar Maschinenbau AG", ("isar-mb.de", "isar-maschinenbau.de"), id=ISAR),
        Account("Lists Gmail By Mistake", ("gmail.com",), id=FREEMAIL_LISTED),
    ]
    contacts = [
        Contact(
            "Jana Ohlsen", ELBE, (_key("j.ohlsen@elbe-logistik.de"),), ("+49403344556",), id=JANA
        ),
        Contact("Piet Brandt", ELBE, (_key("piet.brandt@gmail.com"),), ("+491712233445",), id=PIET),
        Contact("Berta Berater", ISAR, (_key("berater@elbe-logistik.de"),), (), id=BERATER),
    ]
    return IdentityIndex.build(accounts, contacts, internal_domains=["ourco.example"], region="DE")


@pytest.fixture
def index() -> IdentityIndex:
    return _directory()


def _mail(*parties: tuple[Role, str], headers: dict[str, str] | None = None) -> Interaction:
    return Interaction(
        channel=Channel.EMAIL,
        occurred_at=datetime(2024, 1, 8, 9, tzinfo=UTC),
        dedupe_key="mid:<test@example>",
        participants=[Participant(role, address) for role, address in parties],
        headers=headers or {},
    )


def _call(caller: str, callee: str) -> Interaction:
    return Interaction(
        channel=Channel.CALL,
        occurred_at=datetime(2024, 1, 9, 14, tzinfo=UTC),
        dedupe_key="asterisk:1:201",
        participants=[
            Participant(Role.CALLER, caller, AddressKind.PHONE),
            Participant(Role.CALLEE, callee, AddressKind.PHONE),
        ],
    )


def _pairs(decision: Decision) -> set[tuple[int, int | None, str]]:
    return {(a.account_id, a.contact_id, a.rule) for a in decision.attributions}


def test_contact_email_matches_after_normalising(index: IdentityIndex) -> None:
    decision = attribute(
        _mail((Role.FROM, " J.Ohlsen+angebot@Elbe-Logistik.DE "), (Role.TO, "anna@ourco.example")),
        index,
    )
    assert _pairs(decision) == {(ELBE, JANA, CONTACT_EMAIL)}
    (attribution,) = decision.attributions
    assert attribution.confidence == 1.0
    assert "Jana Ohlsen" in attribution.explanation
    assert "Elbe Logistik GmbH" in attribution.explanation
    assert decision.direction is Direction.INBOUND
    assert decision.not_logged == ""
    assert [p.contact_id for p in decision.participants] == [JANA, None]


def test_contact_phone_matches_national_numbers_and_skips_extensions(index: IdentityIndex) -> None:
    decision = attribute(_call("0171 2233445", "201"), index)
    assert _pairs(decision) == {(ELBE, PIET, CONTACT_PHONE)}
    assert decision.direction is Direction.INBOUND
    caller, callee = decision.participants
    assert (caller.normalized, caller.internal) == ("+491712233445", False)
    assert (callee.normalized, callee.internal) == ("201", True)


def test_outbound_call_from_an_extension(index: IdentityIndex) -> None:
    decision = attribute(_call("201", "040 3344556"), index)
    assert _pairs(decision) == {(ELBE, JANA, CONTACT_PHONE)}
    assert decision.direction is Direction.OUTBOUND


def test_anonymous_and_local_numbers_match_nothing(index: IdentityIndex) -> None:
    """`3344556` is Jana's number without area code: guessing it would be a coin toss."""
    for caller in ("anonymous", "3344556", ""):
        decision = attribute(_call(caller, "201"), index)
        assert decision.attributions == []


@pytest.mark.parametrize("caller", ["anonymous", "Restricted", "", "3344556"])
def test_a_withheld_caller_is_an_unknown_outsider_not_staff(
    index: IdentityIndex, caller: str
) -> None:
    """A call from a withheld number is an inbound call from someone unknown: unmatched, on
    its owner's list, not "internal only" (issue 13)."""
    decision = attribute(_call(caller, "201"), index)
    assert decision.direction is Direction.INBOUND
    assert decision.not_logged == ""
    outgoing = attribute(_call("201", caller), index)
    assert outgoing.direction is Direction.OUTBOUND and outgoing.not_logged == ""


def test_account_domain_walks_up_to_the_nearest_listed_parent(index: IdentityIndex) -> None:
    decision = attribute(
        _mail((Role.FROM, "anna@ourco.example"), (Role.TO, "einkauf@eu.sued.isar-mb.de")), index
    )
    assert _pairs(decision) == {(ISAR, None, ACCOUNT_DOMAIN)}
    (attribution,) = decision.attributions
    assert attribution.confidence < 1.0
    assert "Isar Maschinenbau AG" in attribution.explanation
    assert "isar-mb.de" in attribution.explanation
    assert decision.direction is Direction.OUTBOUND


@pytest.mark.parametrize("address", ["x@notisar-mb.de", "x@isar-mb.de.example.com", "x@mb.de"])
def test_account_domain_counts_whole_labels_only(index: IdentityIndex, address: str) -> None:
    decision = attribute(_mail((Role.FROM, address), (Role.TO, "anna@ourco.example")), index)
    assert decision.attributions == []
    assert decision.not_logged == ""


def test_free_mail_sender_is_not_attributed_by_domain(index: IdentityIndex) -> None:
    """gmail.com is listed by an account, yet an unknown gmail sender is nobody's customer."""
    decision = attribute(
        _mail((Role.FROM, "someone.else@gmail.com"), (Role.TO, "anna@ourco.example")), index
    )
    assert decision.attributions == []
    assert account_by_domain("someone@gmail.com", index) == []


def test_free_mail_sender_is_attributed_when_the_address_is_a_contact(
    index: IdentityIndex,
) -> None:
    decision = attribute(
        _mail((Role.FROM, "Piet.Brandt+crm@googlemail.com"), (Role.TO, "anna@ourco.example")),
        index,
    )
    assert _pairs(decision) == {(ELBE, PIET, CONTACT_EMAIL)}


def test_configured_free_mail_domains_are_excluded_too() -> None:
    index = IdentityIndex.build(
        [Account("Hosted", ("mail.example-free.de",), id=7)],
        [],
        internal_domains=["ourco.example"],
        free_mail=FreeMail(["mail.example-free.de"]),
    )
    decision = attribute(_mail((Role.FROM, "x@mail.example-free.de")), index)
    assert decision.attributions == []


def test_a_contact_match_decides_even_on_another_accounts_domain(index: IdentityIndex) -> None:
    """Berta works for Isar from an elbe-logistik.de address; the contact wins."""
    decision = attribute(
        _mail((Role.FROM, "berater@elbe-logistik.de"), (Role.TO, "anna@ourco.example")), index
    )
    assert _pairs(decision) == {(ISAR, BERATER, CONTACT_EMAIL)}


def test_contact_attribution_replaces_the_domain_one_for_the_same_account(
    index: IdentityIndex,
) -> None:
    decision = attribute(
        _mail(
            (Role.FROM, "j.ohlsen@elbe-logistik.de"),
            (Role.CC, "lager@elbe-logistik.de"),
            (Role.TO, "anna@ourco.example"),
        ),
        index,
    )
    assert _pairs(decision) == {(ELBE, JANA, CONTACT_EMAIL)}


def test_several_customers_on_one_item(index: IdentityIndex) -> None:
    decision = attribute(
        _mail(
            (Role.FROM, "anna@ourco.example"),
            (Role.TO, "j.ohlsen@elbe-logistik.de"),
            (Role.TO, "einkauf@isar-maschinenbau.de"),
            (Role.CC, "tom@ourco.example"),
        ),
        index,
    )
    assert _pairs(decision) == {(ELBE, JANA, CONTACT_EMAIL), (ISAR, None, ACCOUNT_DOMAIN)}
    assert decision.direction is Direction.OUTBOUND


def test_each_participant_attributes_once(index: IdentityIndex) -> None:
    decision = attribute(
        _mail(
            (Role.FROM, "j.ohlsen@elbe-logistik.de"),
            (Role.CC, "J.Ohlsen@elbe-logistik.de"),
            (Role.TO, "anna@ourco.example"),
        ),
        index,
    )
    assert len(decision.attributions) == 1


@pytest.mark.parametrize(
    "others", [["tom@ourco.example"], ["tom@eu.ourco.example"], ["Tom <not-an-address>"]]
)
def test_internal_only_mail_is_not_logged(index: IdentityIndex, others: list[str]) -> None:
    parties = [(Role.FROM, "anna@ourco.example"), *((Role.TO, o) for o in others)]
    decision = attribute(_mail(*parties), index)
    assert decision.attributions == []
    assert decision.direction is Direction.INTERNAL
    assert decision.not_logged == "internal only"


def test_call_between_extensions_is_internal(index: IdentityIndex) -> None:
    decision = attribute(_call("201", "202"), index)
    assert decision.direction is Direction.INTERNAL
    assert decision.attributions == []


@pytest.mark.parametrize(
    "headers",
    [
        {"List-Unsubscribe": "<mailto:unsubscribe@elbe-logistik.de>"},
        {"list-id": "<news.elbe-logistik.de>"},
        {"Precedence": "bulk"},
        {"Precedence": " List "},
        {"Precedence": "junk"},
        {"Auto-Submitted": "auto-replied"},
        {"AUTO-SUBMITTED": "auto-generated"},
    ],
)
def test_bulk_and_automated_mail_is_not_logged(
    index: IdentityIndex, headers: dict[str, str]
) -> None:
    decision = attribute(
        _mail(
            (Role.FROM, "j.ohlsen@elbe-logistik.de"),
            (Role.TO, "anna@ourco.example"),
            headers=headers,
        ),
        index,
    )
    assert decision.attributions == []
    assert decision.not_logged.startswith("bulk or automated")
    assert decision.participants[0].contact_id == JANA


@pytest.mark.parametrize(
    "headers", [{}, {"Auto-Submitted": "no"}, {"Precedence": "first-class"}, {"X-Mailer": "x"}]
)
def test_personal_mail_headers_are_not_bulk(headers: dict[str, str]) -> None:
    assert bulk_reason(headers) == ""


def test_bulk_reason_names_the_header() -> None:
    assert bulk_reason({"Precedence": "Bulk"}) == "Precedence: bulk"
    assert bulk_reason({"Auto-Submitted": "auto-replied"}) == "Auto-Submitted: auto-replied"
    assert "List-Unsubscribe" in bulk_reason({"list-unsubscribe": "<x>"})


def test_bulk_headers_do_not_stop_calls_from_being_logged(index: IdentityIndex) -> None:
    call = _call("0171 2233445", "201")
    call.headers = {"Precedence": "bulk"}
    assert _pairs(attribute(call, index)) == {(ELBE, PIET, CONTACT_PHONE)}


@pytest.mark.parametrize(
    ("organizer", "expected"),
    [("anna@ourco.example", Direction.OUTBOUND), ("j.ohlsen@elbe-logistik.de", Direction.INBOUND)],
)
def test_meeting_direction_follows_the_organizer(
    index: IdentityIndex, organizer: str, expected: Direction
) -> None:
    meeting = Interaction(
        channel=Channel.MEETING,
        occurred_at=datetime(2024, 1, 10, 9, tzinfo=UTC),
        dedupe_key="ics:meet-1",
        participants=[
            Participant(Role.ORGANIZER, organizer),
            Participant(Role.ATTENDEE, "anna@ourco.example"),
            Participant(Role.ATTENDEE, "j.ohlsen@elbe-logistik.de"),
        ],
    )
    decision = attribute(meeting, index)
    assert decision.direction is expected
    assert _pairs(decision) == {(ELBE, JANA, CONTACT_EMAIL)}


def test_mail_without_originator_counts_as_inbound(index: IdentityIndex) -> None:
    decision = attribute(_mail((Role.TO, "j.ohlsen@elbe-logistik.de")), index)
    assert decision.direction is Direction.INBOUND


def test_direction_is_outbound_only_when_every_originator_is_ours(index: IdentityIndex) -> None:
    """A mail sent from our address on behalf of a customer address is still inbound."""
    resolved = []
    for address in ("anna@ourco.example", "j.ohlsen@elbe-logistik.de"):
        participant = Participant(Role.FROM, address)
        normalized, internal = resolve(participant, index)
        resolved.append(ResolvedParticipant(participant, normalized, internal, None))
    assert direction_of(resolved) is Direction.INBOUND
    assert direction_of(resolved[:1]) is Direction.INTERNAL


def test_rules_return_explained_candidates(index: IdentityIndex) -> None:
    assert contact_by_email("j.ohlsen@elbe-logistik.de", index) == [
        (JANA, ELBE, "j.ohlsen@elbe-logistik.de is Jana Ohlsen at Elbe Logistik GmbH")
    ]
    assert contact_by_phone("+491712233445", index)[0][:2] == (PIET, ELBE)
    assert contact_by_email("nobody@elbe-logistik.de", index) == []
    assert account_by_domain("x@elbe-logistik.de", index) == [
        (ELBE, "elbe-logistik.de belongs to Elbe Logistik GmbH")
    ]


def test_index_refuses_unstored_records_and_does_not_duplicate_refs() -> None:
    index = IdentityIndex()
    with pytest.raises(ValueError, match="with an id"):
        index.add_account(Account("No id", ("x.de",)))
    with pytest.raises(ValueError, match="with an id"):
        index.add_contact(Contact("No id", None, ("a@x.de",)))
    account = Account("Elbe", ("elbe-logistik.de",), id=1)
    index.add_account(account)
    index.add_account(account)
    assert index.domains["elbe-logistik.de"] == [AccountRef(1, "Elbe")]
    contact = Contact("Jana", 1, ("jana@elbe-logistik.de",), ("+49403344556",), id=5)
    index.add_contact(contact)
    index.add_contact(contact)
    assert len(index.emails["jana@elbe-logistik.de"]) == 1
    assert index.emails["jana@elbe-logistik.de"][0].account_name == "Elbe"
    assert len(index.phones["+49403344556"]) == 1


def test_a_shared_address_attributes_to_every_contact_that_owns_it() -> None:
    """info@ listed for two people at two customers: both are told, neither is guessed."""
    index = IdentityIndex.build(
        [Account("A", ("a.de",), id=1), Account("B", ("b.de",), id=2)],
        [
            Contact("Info A", 1, ("info@shared.de",), id=10),
            Contact("Info B", 2, ("info@shared.de",), id=20),
        ],
    )
    decision = attribute(_mail((Role.FROM, "info@shared.de")), index)
    assert _pairs(decision) == {(1, 10, CONTACT_EMAIL), (2, 20, CONTACT_EMAIL)}
    [case] = decision.review
    assert (case.kind, case.key, set(case.candidates)) == (
        ReviewKind.SHARED_ADDRESS,
        "info@shared.de",
        {10, 20},
    )


def test_a_domain_listed_by_two_accounts_attributes_to_both_and_asks() -> None:
    index = IdentityIndex.build(
        [Account("Holding", ("acme.de",), id=1), Account("Tochter", ("acme.de",), id=2)], []
    )
    decision = attribute(_mail((Role.FROM, "x@eu.acme.de")), index)
    assert {a.account_id for a in decision.attributions} == {1, 2}
    [case] = decision.review
    assert (case.kind, case.key, set(case.candidates)) == (
        ReviewKind.SHARED_DOMAIN,
        "acme.de",
        {1, 2},
    )


def test_unknown_free_mail_sender_without_thread_goes_to_review(index: IdentityIndex) -> None:
    mail = _mail((Role.FROM, "Neue.Kundin@web.de"), (Role.TO, "anna@ourco.example"))
    decision = attribute(mail, index)
    assert decision.attributions == []
    [case] = decision.review
    assert (case.kind, case.key) == (ReviewKind.UNKNOWN_SENDER, "neue.kundin@web.de")


def test_unknown_sender_at_a_company_domain_or_on_a_thread_is_not_queued(
    index: IdentityIndex,
) -> None:
    company = attribute(_mail((Role.FROM, "a@unbekannt-gmbh.de")), index)
    assert company.review == []
    reply = _mail((Role.FROM, "neu@web.de"))
    reply.in_reply_to = ["<parent@x>"]
    threaded = attribute(reply, index, {"<parent@x>": frozenset({ELBE})})
    assert threaded.review == [] and {a.account_id for a in threaded.attributions} == {ELBE}


def test_unknown_caller_goes_to_review_but_not_an_anonymous_one(index: IdentityIndex) -> None:
    [case] = attribute(_call("+49 89 1234567", "201"), index).review
    assert (case.kind, case.key) == (ReviewKind.UNKNOWN_SENDER, "+49891234567")
    assert attribute(_call("anonymous", "201"), index).review == []


@pytest.mark.parametrize(
    "name", ["Jana Ohlsen", "Ohlsen, Jana", "JANA OHLSEN (Elbe)", "Jána Öhlsen"]
)
def test_a_contacts_name_on_an_unrelated_address_goes_to_review_only(
    index: IdentityIndex, name: str
) -> None:
    mail = _mail((Role.TO, "anna@ourco.example"))
    mail.participants.insert(0, Participant(Role.FROM, "jana.privat@web.de", name=name))
    decision = attribute(mail, index)
    assert decision.attributions == []
    kinds = {case.kind: case for case in decision.review}
    assert kinds[ReviewKind.NAME_LOOKALIKE].candidates == (JANA,)
    assert kinds[ReviewKind.NAME_LOOKALIKE].key == "jana.privat@web.de"


def test_single_names_and_addresses_in_the_name_field_are_no_lookalikes(
    index: IdentityIndex,
) -> None:
    for name in ("Jana", "j.ohlsen@elbe-logistik.de"):
        mail = _mail((Role.TO, "anna@ourco.example"))
        mail.participants.insert(0, Participant(Role.FROM, "x@unbekannt.de", name=name))
        assert attribute(mail, index).review == []


def test_ignored_keys_and_unlogged_items_open_no_case(index: IdentityIndex) -> None:
    mail = _mail((Role.FROM, "neue.kundin@web.de"))
    index.ignored.add("neue.kundin@web.de")
    assert attribute(mail, index).review == []
    bulk = _mail((Role.FROM, "news@web.de"), headers={"List-Id": "<n.web.de>"})
    assert attribute(bulk, index).review == []


def test_incremental_directory_updates_take_effect(index: IdentityIndex) -> None:
    mail = _mail((Role.FROM, "neu@weser-handel.de"), (Role.TO, "anna@ourco.example"))
    assert attribute(mail, index).attributions == []
    index.add_account(Account("Weser Handel", ("weser-handel.de",), id=4))
    assert _pairs(attribute(mail, index)) == {(4, None, ACCOUNT_DOMAIN)}


participants = st.builds(
    Participant,
    role=st.sampled_from(Role),
    address=st.one_of(
        st.text(max_size=40),
        st.sampled_from(
            [
                "j.ohlsen@elbe-logistik.de",
                "anna@ourco.example",
                "x@sued.isar-mb.de",
                "piet.brandt@gmail.com",
                "0171 2233445",
                "201",
                "anonymous",
            ]
        ),
        st.from_regex(r"\A[a-z.+]{1,8}@[a-zä.\-]{1,12}\Z"),
        st.from_regex(r"\A[+0-9 ()\-]{0,16}\Z"),
    ),
    kind=st.sampled_from(AddressKind),
    name=st.text(max_size=10),
)


@given(
    st.lists(participants, max_size=8),
    st.sampled_from(Channel),
    st.dictionaries(
        st.sampled_from(["Precedence", "Auto-Submitted", "List-Id", "X-Other"]), st.text(max_size=8)
    ),
)
def test_attribute_never_raises_and_keeps_its_invariants(
    parties: list[Participant], channel: Channel, headers: dict[str, str]
) -> None:
    """Whatever a source hands over, matching decides; it never stops a sync."""
    index = _directory()
    interaction = Interaction(
        channel=channel,
        occurred_at=datetime(2024, 1, 1, tzinfo=UTC),
        dedupe_key="k",
        participants=parties,
        headers=headers,
    )
    decision = attribute(interaction, index)
    assert len(decision.participants) == len(parties)
    assert all(isinstance(a, Attribution) and a.rule in RULES for a in decision.attributions)
    assert all(a.explanation for a in decision.attributions)
    assert {a.account_id for a in decision.attributions} <= {ELBE, ISAR}
    if decision.direction is Direction.INTERNAL or decision.not_logged:
        assert decision.attributions == []
    keys = [(a.account_id, a.contact_id) for a in decision.attributions]
    assert len(keys) == len(set(keys))


def _reply(sender: str, *parents: str) -> Interaction:
    mail = _mail((Role.FROM, sender), (Role.TO, "anna@ourco.example"))
    mail.in_reply_to = list(parents[:1])
    mail.references = list(parents)
    return mail


def test_thread_carries_a_reply_from_an_unknown_address(index: IdentityIndex) -> None:
    threads = {"<a@x>": frozenset({ELBE}), "<b@x>": frozenset({ISAR})}
    decision = attribute(_reply("neu@unbekannt.example", "<b@x>", "<a@x>"), index, threads)
    assert _pairs(decision) == {(ISAR, None, THREAD), (ELBE, None, THREAD)}
    assert all(a.confidence < 0.9 for a in decision.attributions)
    assert "answers <b@x>, which belongs to Isar Maschinenbau AG" in {
        a.explanation for a in decision.attributions
    }


def test_a_direct_match_wins_over_the_thread(index: IdentityIndex) -> None:
    threads = {"<a@x>": frozenset({ISAR})}
    decision = attribute(_reply("j.ohlsen@elbe-logistik.de", "<a@x>"), index, threads)
    assert _pairs(decision) == {(ELBE, JANA, CONTACT_EMAIL)}


def test_no_thread_for_unknown_parents_or_unlogged_replies(index: IdentityIndex) -> None:
    assert attribute(_reply("x@unbekannt.example", "<gone@x>"), index, {}).attributions == []
    bulk = _reply("x@unbekannt.example", "<a@x>")
    bulk.headers = {"Precedence": "bulk"}
    assert attribute(bulk, index, {"<a@x>": frozenset({ELBE})}).attributions == []
