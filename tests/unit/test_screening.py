"""What ingest refuses (hub.screening): blocklisted items, and items naming an erased person
dated before the erasure."""

from __future__ import annotations

from datetime import UTC, datetime

from hub.model import AddressKind, Channel, Interaction, Participant, RawItem, Role, Translated
from hub.screening import BLOCKED, ERASED, Screen, identity_digest, screen_items
from matching.blocklist import Blocklist
from matching.index import IdentityIndex

INDEX = IdentityIndex(internal_domains=("ourco.example",), region="DE")
KEY = "screen-secret"
ERASED_AT = datetime(2024, 6, 1, tzinfo=UTC)


def _item(when: datetime, *addresses: str, kind: AddressKind = AddressKind.EMAIL) -> Translated:
    participants = [Participant(Role.TO, a, kind) for a in addresses]
    interaction = Interaction(Channel.EMAIL, when, f"k{addresses}{when}", participants=participants)
    return Translated(RawItem(str(addresses), b""), interaction)


def test_the_digest_is_keyed() -> None:
    digest = identity_digest(KEY, "jane@praxis.de")
    assert len(digest) == 64 and "jane" not in digest
    assert digest == identity_digest(KEY, "jane@praxis.de")
    assert digest != identity_digest("another key", "jane@praxis.de")


def test_items_naming_an_erased_person_before_the_erasure_are_refused() -> None:
    screen = Screen(
        erased={
            identity_digest(KEY, "jane@praxis.de"): ERASED_AT,
            identity_digest(KEY, "+4951168900756"): ERASED_AT,
        },
        secret_key=KEY,
    )
    old = _item(datetime(2024, 5, 1, tzinfo=UTC), "anna@ourco.example", "Jane@Praxis.de")
    naive = _item(datetime(2024, 5, 1), "jane+x@praxis.de")
    call = _item(datetime(2024, 5, 1, tzinfo=UTC), "0511 68900756", kind=AddressKind.PHONE)
    new = _item(datetime(2024, 7, 1, tzinfo=UTC), "jane@praxis.de")
    other = _item(datetime(2024, 5, 1, tzinfo=UTC), "buyer@acme.de")
    kept, refused = screen_items(screen, [old, naive, call, new, other], "", INDEX)
    assert kept == [new, other]
    assert [s.raw for s in refused] == [old.raw, naive.raw, call.raw]
    assert {s.reason for s in refused} == {ERASED}


def test_blocklisted_items_are_refused_for_the_owner_of_the_mailbox() -> None:
    screen = Screen(Blocklist.of([("praxis.de", "anna@ourco.example")]))
    item = _item(ERASED_AT, "anna@ourco.example", "doc@praxis.de")
    assert screen_items(screen, [item], "tom@ourco.example", INDEX) == ([item], [])
    kept, refused = screen_items(screen, [item], "anna@ourco.example", INDEX)
    assert kept == [] and [s.reason for s in refused] == [BLOCKED]


def test_an_empty_screen_passes_everything_untouched() -> None:
    items = [_item(ERASED_AT, "doc@praxis.de")]
    assert not Screen()
    assert screen_items(Screen(), items, "", INDEX) == (items, [])
