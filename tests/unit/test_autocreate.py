"""Contact auto-creation: who becomes a contact on their own, under each connector policy.

A wrongly created contact is worse than a missing one: it attributes every later item of that
address with full confidence, to whichever account it was filed under. So besides what each
policy creates, every trap is checked: free mail, a domain two accounts list, bulk mail,
internal-only mail, machine mailboxes, known contacts, staff other than the mailbox owner.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from hub.model import Account, AddressKind, Channel, Contact, Interaction, Participant, Role
from matching.autocreate import (
    ContactPolicy,
    NewContact,
    contact_name,
    contacts_for_batch,
    contacts_to_create,
    is_automated,
)
from matching.engine import attribute
from matching.index import IdentityIndex

ACME, ISAR, SHARED_A, SHARED_B, GMAIL_LISTED = 1, 2, 3, 4, 5
JANE = 10
OWNER = "anna@ourco.example"
OFF, WRITTEN_TO, ACCOUNT_DOMAIN = (
    ContactPolicy.OFF,
    ContactPolicy.WRITTEN_TO,
    ContactPolicy.ACCOUNT_DOMAIN,
)


@pytest.fixture
def index() -> IdentityIndex:
    """ACME and Isar own their domains; two accounts claim one domain; one lists gmail.com."""
    accounts = [
        Account("ACME GmbH", ("acme.de",), id=ACME),
        Account("Isar Maschinenbau AG", ("isar-mb.de",), id=ISAR),
        Account("Holding A", ("holding.de",), id=SHARED_A),
        Account("Holding B", ("holding.de",), id=SHARED_B),
        Account("Lists Gmail By Mistake", ("gmail.com",), id=GMAIL_LISTED),
    ]
    contacts = [Contact("Jane Doe", ACME, ("jane.doe@acme.de",), id=JANE)]
    return IdentityIndex.build(accounts, contacts, internal_domains=["ourco.example"])


def _party(role: Role, text: str) -> Participant:
    """`Name <address>` or a bare address, as a connector hands it over."""
    name, _, address = text.rpartition("<")
    if not address:
        return Participant(role, text)
    return Participant(role, address.rstrip(">"), AddressKind.EMAIL, name.strip())


def _mail(
    sender: str,
    to: tuple[str, ...] = (),
    cc: tuple[str, ...] = (),
    bcc: tuple[str, ...] = (),
    headers: dict[str, str] | None = None,
) -> Interaction:
    parties = [(Role.FROM, sender), *((Role.TO, a) for a in to)]
    parties += [*((Role.CC, a) for a in cc), *((Role.BCC, a) for a in bcc)]
    return Interaction(
        channel=Channel.EMAIL,
        occurred_at=datetime(2024, 1, 8, 9, tzinfo=UTC),
        dedupe_key="mid:<t@x>",
        participants=[_party(role, text) for role, text in parties],
        headers=headers or {},
    )


def _created(
    interaction: Interaction, index: IdentityIndex, policy: ContactPolicy, owner: str = OWNER
) -> list[NewContact]:
    return contacts_to_create(interaction, attribute(interaction, index), index, policy, owner)


def test_off_creates_nothing(index: IdentityIndex) -> None:
    outbound = _mail(OWNER, to=("Bob Meier <bob.meier@acme.de>",))
    inbound = _mail("Bob Meier <bob.meier@acme.de>", to=(OWNER,))
    assert _created(outbound, index, OFF) == []
    assert _created(inbound, index, OFF) == []


def test_written_to_creates_every_recipient_of_the_owners_mail(index: IdentityIndex) -> None:
    mail = _mail(
        OWNER,
        to=("Bob Meier <bob.meier@acme.de>",),
        cc=("Carl Huber <carl.huber@isar-mb.de>", "tom@ourco.example"),
        bcc=("dora@eu.acme.de",),
    )
    assert _created(mail, index, WRITTEN_TO) == [
        NewContact(ACME, "Bob Meier", "bob.meier@acme.de"),
        NewContact(ISAR, "Carl Huber", "carl.huber@isar-mb.de"),
        NewContact(ACME, "Dora", "dora@eu.acme.de"),
    ]


def test_written_to_never_creates_senders_of_inbound_mail(index: IdentityIndex) -> None:
    inbound = _mail("Bob Meier <bob.meier@acme.de>", to=(OWNER,), cc=("carl@isar-mb.de",))
    assert _created(inbound, index, WRITTEN_TO) == []


def test_written_to_counts_the_owner_only_not_other_staff(index: IdentityIndex) -> None:
    """A colleague's mail in this mailbox (a Cc, a shared folder) is not the owner writing."""
    by_colleague = _mail("tom@ourco.example", to=("bob.meier@acme.de",))
    assert _created(by_colleague, index, WRITTEN_TO, owner=OWNER) == []
    by_owner = _mail("Anna <ANNA+crm@ourco.example>", to=("bob.meier@acme.de",))
    assert [c.address for c in _created(by_owner, index, WRITTEN_TO)] == ["bob.meier@acme.de"]


def test_written_to_without_an_owner_counts_any_staff_sender(index: IdentityIndex) -> None:
    by_colleague = _mail("tom@ourco.example", to=("bob.meier@acme.de",))
    assert [c.address for c in _created(by_colleague, index, WRITTEN_TO, owner="")] == [
        "bob.meier@acme.de"
    ]
    from_outside = _mail("carl@isar-mb.de", to=("bob.meier@acme.de", "tom@ourco.example"))
    assert _created(from_outside, index, WRITTEN_TO, owner="") == []


def test_written_to_is_about_mail_not_meetings(index: IdentityIndex) -> None:
    meeting = Interaction(
        channel=Channel.MEETING,
        occurred_at=datetime(2024, 1, 8, 9, tzinfo=UTC),
        dedupe_key="ics:1",
        participants=[
            Participant(Role.ORGANIZER, OWNER),
            Participant(Role.ATTENDEE, "bob.meier@acme.de", AddressKind.EMAIL, "Bob Meier"),
        ],
    )
    assert _created(meeting, index, WRITTEN_TO) == []
    assert _created(meeting, index, ACCOUNT_DOMAIN) == [
        NewContact(ACME, "Bob Meier", "bob.meier@acme.de")
    ]


def test_account_domain_creates_every_external_party(index: IdentityIndex) -> None:
    inbound = _mail(
        "Bob Meier <bob.meier@acme.de>", to=(OWNER,), cc=("Carl Huber <carl.huber@isar-mb.de>",)
    )
    assert _created(inbound, index, ACCOUNT_DOMAIN) == [
        NewContact(ACME, "Bob Meier", "bob.meier@acme.de"),
        NewContact(ISAR, "Carl Huber", "carl.huber@isar-mb.de"),
    ]


def test_account_domain_skips_phone_parties(index: IdentityIndex) -> None:
    call = Interaction(
        channel=Channel.CALL,
        occurred_at=datetime(2024, 1, 8, 9, tzinfo=UTC),
        dedupe_key="cdr:1",
        participants=[
            Participant(Role.CALLER, "+49 171 9998887", AddressKind.PHONE),
            Participant(Role.CALLEE, "201", AddressKind.PHONE),
        ],
    )
    assert _created(call, index, ACCOUNT_DOMAIN) == []


@pytest.mark.parametrize("policy", [WRITTEN_TO, ACCOUNT_DOMAIN])
@pytest.mark.parametrize(
    "address",
    [
        "someone@gmail.com",  # free mail, although an account lists it
        "someone@googlemail.com",
        "someone@holding.de",  # listed by two accounts
        "someone@unknown-company.de",  # no account at all
        "someone@notacme.de",  # not a subdomain of acme.de
    ],
)
def test_no_contact_without_exactly_one_account_by_domain(
    index: IdentityIndex, policy: ContactPolicy, address: str
) -> None:
    assert _created(_mail(OWNER, to=(address,)), index, policy) == []
    assert _created(_mail(address, to=(OWNER,)), index, ACCOUNT_DOMAIN) == []


@pytest.mark.parametrize("policy", [WRITTEN_TO, ACCOUNT_DOMAIN])
@pytest.mark.parametrize(
    "headers",
    [{"List-Id": "<news.acme.de>"}, {"Precedence": "bulk"}, {"Auto-Submitted": "auto-replied"}],
)
def test_bulk_and_automated_mail_creates_nothing(
    index: IdentityIndex, policy: ContactPolicy, headers: dict[str, str]
) -> None:
    mail = _mail(OWNER, to=("bob.meier@acme.de",), headers=headers)
    assert _created(mail, index, policy) == []


def test_staff_never_become_contacts_even_at_a_listed_domain() -> None:
    """An account that lists our own domain (a subsidiary, a mistake) gets none of our staff."""
    index = IdentityIndex.build(
        [Account("ACME GmbH", ("acme.de",), id=ACME), Account("Us", ("ourco.example",), id=ISAR)],
        [],
        internal_domains=["ourco.example"],
    )
    mail = _mail("tom@ourco.example", to=("bob@acme.de",), cc=(OWNER,))
    assert _created(mail, index, ACCOUNT_DOMAIN) == [NewContact(ACME, "Bob", "bob@acme.de")]


def test_internal_only_mail_creates_nothing(index: IdentityIndex) -> None:
    mail = _mail(OWNER, to=("tom@ourco.example", "Bob <lead@sales.ourco.example>"))
    assert _created(mail, index, ACCOUNT_DOMAIN) == []
    assert _created(mail, index, WRITTEN_TO) == []


@pytest.mark.parametrize(
    "local",
    [
        "noreply",
        "no-reply",
        "No_Reply",
        "donotreply",
        "do-not-reply",
        "mailer-daemon",
        "MAILER-DAEMON",
        "postmaster",
        "bounce",
        "bounces+4711",
        "bounce-abc123",
        "noreply.billing",
        "autoreply",
    ],
)
def test_machine_mailboxes_are_never_contacts(index: IdentityIndex, local: str) -> None:
    address = f"{local}@acme.de"
    assert _created(_mail(OWNER, to=(address,)), index, WRITTEN_TO) == []
    assert _created(_mail(address, to=(OWNER,)), index, ACCOUNT_DOMAIN) == []


def test_people_are_not_taken_for_machines() -> None:
    assert not is_automated("nora.reply@acme.de")
    assert not is_automated("post@acme.de")
    assert not is_automated("jane.doe@acme.de")


def test_a_known_contact_is_not_created_again(index: IdentityIndex) -> None:
    """Also under another spelling of the same address (case, +tag)."""
    mail = _mail(OWNER, to=("Jane <Jane.Doe+crm@ACME.de>",), cc=("bob@acme.de",))
    assert [c.address for c in _created(mail, index, WRITTEN_TO)] == ["bob@acme.de"]


def test_an_address_people_chose_to_ignore_is_not_created(index: IdentityIndex) -> None:
    index.ignored.add("bob@acme.de")
    assert _created(_mail(OWNER, to=("bob@acme.de",)), index, WRITTEN_TO) == []


def test_the_owner_is_never_created(index: IdentityIndex) -> None:
    """A mailbox at a customer's own domain (a shared project inbox): its owner is no lead."""
    owner = "projekt@isar-mb.de"
    mail = _mail(f"Projekt <{owner}>", to=("bob@acme.de",))
    assert _created(mail, index, ACCOUNT_DOMAIN, owner=owner) == [
        NewContact(ACME, "Bob", "bob@acme.de")
    ]
    assert _created(mail, index, WRITTEN_TO, owner=owner) == [
        NewContact(ACME, "Bob", "bob@acme.de")
    ]


@pytest.mark.parametrize(
    ("display", "address", "name"),
    [
        ("  Bob \n  Meier ", "bob@acme.de", "Bob Meier"),
        ("Meier, Bob (ACME)", "bob@acme.de", "Meier, Bob (ACME)"),
        ("", "jane.doe@acme.de", "Jane Doe"),
        ("bob.meier@acme.de", "bob.meier@acme.de", "Bob Meier"),
        ("'carl@isar-mb.de'", "bob_meier@acme.de", "Bob Meier"),
        ("", "k-h.mueller@acme.de", "K H Mueller"),
        ("", "jdoe2@acme.de", "Jdoe2"),
        ("", "4711@acme.de", "4711@acme.de"),
        ("", "4711.0815@acme.de", "4711.0815@acme.de"),
    ],
)
def test_the_name_is_the_display_name_or_read_from_the_address(
    display: str, address: str, name: str
) -> None:
    assert contact_name(display, address)[0] == name


def test_a_display_name_that_is_an_address_is_not_taken_as_the_name(index: IdentityIndex) -> None:
    mail = _mail(OWNER, to=("jane.roe@acme.de <jane.roe@acme.de>", "Bob@Acme.de <pm@acme.de>"))
    assert _created(mail, index, WRITTEN_TO) == [
        NewContact(ACME, "Jane Roe", "jane.roe@acme.de"),
        NewContact(ACME, "Pm", "pm@acme.de"),
    ]


def test_a_batch_asks_once_per_address_and_prefers_a_display_name(index: IdentityIndex) -> None:
    mails = [
        _mail(OWNER, to=("bob.meier@acme.de", "Carl Huber <carl@isar-mb.de>")),
        _mail(OWNER, to=("Robert Meier <Bob.Meier@acme.de>", "Karl H. <carl@isar-mb.de>")),
        _mail(OWNER, to=("bob.meier@acme.de",)),
    ]
    decided = [(m, attribute(m, index)) for m in mails]
    assert contacts_for_batch(decided, index, WRITTEN_TO, OWNER) == [
        NewContact(ACME, "Robert Meier", "bob.meier@acme.de"),
        NewContact(ISAR, "Carl Huber", "carl@isar-mb.de"),
    ]
    assert contacts_for_batch(decided, index, OFF, OWNER) == []


def test_one_item_names_an_address_once(index: IdentityIndex) -> None:
    mail = _mail("bob@acme.de", to=(OWNER,), cc=("Bob Meier <bob@acme.de>",))
    assert _created(mail, index, ACCOUNT_DOMAIN) == [NewContact(ACME, "Bob Meier", "bob@acme.de")]
