"""suggest() and signature_of(): what the review queue offers a person to click.

A suggestion is one click away from teaching the directory that an address is somebody's, so
the order matters: what the sender's own signature proves must come before what a display name
merely claims, a quoted reply (other people's signatures) must prove nothing, and near
spellings of a name must be found while unrelated names are not offered at all.
"""

from __future__ import annotations

import pytest

from hub.model import Account, Contact, ReviewKind
from matching.index import IdentityIndex
from matching.suggest import MAX_SUGGESTIONS, Signature, Suggestion, signature_of, suggest

ELBE, ISAR, ALSTER = 1, 2, 3
JANA, PIET, JAN, TOM, EVA = 10, 11, 12, 13, 14


def _index() -> IdentityIndex:
    accounts = [
        Account("Elbe Logistik GmbH", ("elbe-logistik.de",), id=ELBE),
        Account("Isar Maschinenbau AG", ("isar-mb.de", "shared.example"), id=ISAR),
        Account("Alster AG", ("alster.example", "shared.example"), id=ALSTER),
    ]
    contacts = [
        Contact("Jana Ohlsen", ELBE, ("j.ohlsen@elbe-logistik.de",), ("+49403344556",), id=JANA),
        Contact("Piet Brandt", ELBE, ("piet@elbe-logistik.de",), ("+491712233445",), id=PIET),
        Contact("Jan Olsen", ISAR, ("jan.olsen@isar-mb.de",), (), id=JAN),
        Contact("Tom Rieger", ISAR, ("tom@isar-mb.de", "berater@consult.example"), (), id=TOM),
        Contact("Eva Kurz", ALSTER, ("eva@alster.example", "berater@consult.example"), (), id=EVA),
    ]
    return IdentityIndex.build(accounts, contacts, internal_domains=["ourco.example"], region="DE")


@pytest.fixture
def index() -> IdentityIndex:
    return _index()


def _who(suggestions: list[Suggestion]) -> list[tuple[int | None, int | None, int]]:
    """(account, contact, score) in the order offered."""
    return [(s.account_id, s.contact_id, s.score) for s in suggestions]


def test_a_display_name_finds_the_contact_and_near_spellings_rank_below(
    index: IdentityIndex,
) -> None:
    found = suggest(ReviewKind.UNKNOWN_SENDER, "jo1984@gmail.com", "Jana Ohlsen", [], [], index)
    # Jan Olsen (token_sort_ratio 90) is a near spelling; nobody else comes near the cutoff.
    assert _who(found) == [(ELBE, JANA, 95), (ISAR, JAN, 90)]
    assert found[0].label == "Jana Ohlsen at Elbe Logistik GmbH"
    assert "has the name of" in found[0].reason and "is like" in found[1].reason


@pytest.mark.parametrize("name", ["Ohlsen, Jana", "JANA OHLSEN", "Jana Ohlsén"])
def test_the_name_is_compared_as_a_name_not_as_a_string(index: IdentityIndex, name: str) -> None:
    found = suggest(ReviewKind.UNKNOWN_SENDER, "x@gmail.com", name, [], [], index)
    assert _who(found)[0] == (ELBE, JANA, 95)


def test_a_misspelt_name_is_still_offered(index: IdentityIndex) -> None:
    found = suggest(ReviewKind.UNKNOWN_SENDER, "x@gmail.com", "Jana Ohlson", [], [], index)
    assert found[0].contact_id == JANA and 80 <= found[0].score < 95


def test_an_unrelated_name_is_offered_nobody(index: IdentityIndex) -> None:
    assert suggest(ReviewKind.UNKNOWN_SENDER, "x@gmail.com", "Karl Hansen", [], [], index) == []
    assert suggest(ReviewKind.UNKNOWN_SENDER, "x@gmail.com", "", [], [], index) == []


def test_the_local_part_as_written_reads_as_a_name(index: IdentityIndex) -> None:
    """The Gmail key has lost its dots ("janaohlsen84"); the address as written still has them."""
    key = "janaohlsen84@gmail.com"
    assert suggest(ReviewKind.UNKNOWN_SENDER, key, "", [], [], index) == []
    found = suggest(
        ReviewKind.UNKNOWN_SENDER, key, "", [], [], index, spellings=["Jana.Ohlsen84+crm@GMail.com"]
    )
    assert _who(found)[0] == (ELBE, JANA, 95)


def test_a_number_in_the_signature_beats_the_display_name(index: IdentityIndex) -> None:
    """The sender calls herself Jana Ohlsen but signs with Piet Brandt's mobile number."""
    body = "Hallo Anna,\nbitte um Rückruf.\n\n-- \nP. Brandt\nMobil: 0171 2233445\n"
    found = suggest(ReviewKind.UNKNOWN_SENDER, "x@gmail.com", "Jana Ohlsen", [body], [], index)
    assert _who(found)[:2] == [(ELBE, PIET, 100), (ELBE, JANA, 95)]
    assert found[0].reason == "the signature gives +491712233445"


def test_an_address_in_the_signature_beats_the_display_name(index: IdentityIndex) -> None:
    body = "Gruß\nJan\nBüro: jan.olsen@isar-mb.de\n"
    found = suggest(ReviewKind.UNKNOWN_SENDER, "x@gmail.com", "Jana Ohlsen", [body], [], index)
    assert _who(found)[0] == (ISAR, JAN, 100)
    assert (ELBE, JANA, 95) in _who(found)


def test_a_signature_beats_even_a_name_matching_already_suspects(index: IdentityIndex) -> None:
    """name-lookalike: matching names Jana as candidate; the signature says it is Piet."""
    body = "Danke.\n\nPiet Brandt | Tel. +49 171 2233445"
    found = suggest(
        ReviewKind.NAME_LOOKALIKE, "jana@other.example", "Jana Ohlsen", [body], [JANA], index
    )
    assert _who(found)[:2] == [(ELBE, PIET, 100), (ELBE, JANA, 95)]


def test_quoted_replies_prove_nothing(index: IdentityIndex) -> None:
    """Jana's number and address are in the quoted part only: they are hers, not the sender's."""
    bodies = [
        "Passt.\n\nAm 08.01.2024 um 09:00 schrieb Jana Ohlsen <j.ohlsen@elbe-logistik.de>:\n"
        "> Bitte melden Sie sich.\n> Jana Ohlsen\n> Tel. 040 3344556\n",
        "ok\n\nOn Mon, Jan 8, 2024 at 9:00 AM Jana Ohlsen <j.ohlsen@elbe-logistik.de> wrote:\n"
        "> Hallo\n",
        "ok\n\nOn Mon, Jan 8, 2024 at 9:00 AM Jana Ohlsen <\nj.ohlsen@elbe-logistik.de> wrote:\n",
        "Siehe unten.\n\n-----Original Message-----\nFrom: Jana Ohlsen\nTel. 040 3344556\n",
        "FYI\n\n---------- Forwarded message ---------\nVon: Piet <piet@elbe-logistik.de>\n",
        "Gern.\n> Tel. 040 3344556\n> j.ohlsen@elbe-logistik.de\n",
    ]
    for body in bodies:
        assert signature_of(body, "DE") == Signature((), (), ()), body
        assert suggest(ReviewKind.UNKNOWN_SENDER, "x@gmail.com", "", [body], [], index) == [], body


def test_the_signature_is_what_follows_the_delimiter(index: IdentityIndex) -> None:
    body = (
        "Rufen Sie bitte Herrn Brandt an: 0171 2233445.\n\n-- \nJana Ohlsen\n"
        "Tel. 040 3344556\nwww.Elbe-Logistik.de\n"
    )
    assert signature_of(body, "DE") == Signature((), ("+49403344556",), ("elbe-logistik.de",))


def test_the_signature_reads_addresses_numbers_and_web_domains() -> None:
    body = (
        "Danke!\n\nJana Ohlsen\nJ.Ohlsen+crm@Elbe-Logistik.de\n+49 (0)40 334455-6\n"
        "www.elbe-logistik.de"
    )
    signature = signature_of(body, "DE")
    assert signature.emails == ("j.ohlsen@elbe-logistik.de",)
    assert signature.phones == ("+49403344556",)
    assert signature.domains == ("elbe-logistik.de",)
    assert signature_of("", "DE") == Signature((), (), ())


def test_the_senders_own_address_in_the_signature_is_no_evidence(index: IdentityIndex) -> None:
    """An address already in the directory would not be in review; its own key proves nothing."""
    body = "--\nBerater\nberater@consult.example\n"
    found = suggest(
        ReviewKind.SHARED_ADDRESS, "berater@consult.example", "", [body], [TOM, EVA], index
    )
    assert {s.score for s in found} == {95}


def test_a_web_domain_in_the_signature_suggests_creating_the_contact_there(
    index: IdentityIndex,
) -> None:
    body = "Viele Grüße\nK. Hansen\nwww.isar-mb.de"
    (only,) = suggest(ReviewKind.UNKNOWN_SENDER, "k.h@gmail.com", "K. Hansen", [body], [], index)
    assert (only.account_id, only.contact_id, only.score) == (ISAR, None, 85)
    assert only.label == "Isar Maschinenbau AG" and "isar-mb.de" in only.reason


def test_a_shared_domain_suggests_the_accounts_listing_it(index: IdentityIndex) -> None:
    found = suggest(ReviewKind.SHARED_DOMAIN, "shared.example", "", [], [ISAR, ALSTER], index)
    assert [(s.account_id, s.contact_id, s.label) for s in found] == [
        (ISAR, None, "Isar Maschinenbau AG"),
        (ALSTER, None, "Alster AG"),
    ]
    assert all(s.reason == "lists shared.example" for s in found)
    assert suggest(ReviewKind.SHARED_DOMAIN, "shared.example", "", [], [999], index) == []


def test_a_shared_address_suggests_its_holders_and_the_name_decides(index: IdentityIndex) -> None:
    found = suggest(
        ReviewKind.SHARED_ADDRESS, "berater@consult.example", "Eva Kurz", [], [TOM, EVA], index
    )
    assert [s.contact_id for s in found] == [EVA, TOM]
    assert found[1].reason == "Tom Rieger at Isar Maschinenbau AG has berater@consult.example"


def test_at_most_a_handful_best_first(index: IdentityIndex) -> None:
    crowd = [Contact(f"Jana Ohlsen{'a' * n}", ELBE, (), (), id=100 + n) for n in range(12)]
    many = IdentityIndex.build([Account("Elbe", ("elbe.de",), id=ELBE)], crowd, region="DE")
    found = suggest(ReviewKind.UNKNOWN_SENDER, "x@gmail.com", "Jana Ohlsen", [], [], many)
    assert len(found) == MAX_SUGGESTIONS
    scores = [s.score for s in found]
    assert scores == sorted(scores, reverse=True)


def test_a_name_is_compared_only_with_names_a_typo_away() -> None:
    """The fuzzy comparison reads the names that share a word or a word one letter off; a
    directory of 20,000 unrelated names is not read at all."""
    contacts = [
        Contact("Jon Smith", None, (), (), id=1),  # Smith: the same word
        Contact("Johnny Smyth", None, (), (), id=2),  # Smyth: one letter changed
        Contact("Jahn Smiths", None, (), (), id=3),  # Smiths: one letter more
        Contact("Karl Hansen", None, (), (), id=4),
        *(Contact(f"Name{i:05d} Other{i:05d}", None, (), (), id=100 + i) for i in range(20_000)),
    ]
    index = IdentityIndex.build([], contacts, region="DE")
    assert sorted(index.names_near("john smith")) == ["jahn smiths", "johnny smyth", "jon smith"]
    found = suggest(ReviewKind.UNKNOWN_SENDER, "x@gmail.com", "John Smith", [], [], index)
    assert [s.contact_id for s in found] == [1, 3, 2]


def test_a_name_many_contacts_share_offers_a_handful_and_says_so() -> None:
    contacts = [Contact("Thomas Müller", None, (), (), id=i) for i in range(1, 301)]
    index = IdentityIndex.build([], contacts, region="DE")
    found = suggest(ReviewKind.UNKNOWN_SENDER, "tm@gmail.com", "Thomas Müller", [], [], index)
    assert len(found) == MAX_SUGGESTIONS
    assert all("one of 300 contacts of that name" in s.reason for s in found)
