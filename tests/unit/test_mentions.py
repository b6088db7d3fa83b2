"""Finding an erased person in text, bytes and JSON (storage.mentions): over-removal is safe,
a miss is a leak."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from storage.mentions import ERASED, Mentions

JANE = Mentions.of(["jane@praxis.de", "+4951168900756", "0511 68900756", "Jane Doe", "201", ""])


def test_short_spellings_are_left_out_and_longest_come_first() -> None:
    assert JANE.needles == ("+4951168900756", "jane@praxis.de", "0511 68900756", "jane doe")


def test_text_is_searched_without_case() -> None:
    assert JANE.in_text("Re: call from JANE DOE")
    assert JANE.in_text("Call 0511 68900756 → 201")
    assert not JANE.in_text("Jane called")
    assert not JANE.in_text(None) and not JANE.in_text("")


def test_raw_bytes_are_read_as_utf8_and_latin1() -> None:
    assert JANE.in_bytes(b"From: Jane Doe <Jane@Praxis.de>\r\n")
    assert Mentions.of(["Jürgen Müller"]).in_bytes("To: Jürgen Müller".encode("latin-1"))
    assert Mentions.of(["Jürgen Müller"]).in_bytes("To: JÜRGEN MÜLLER".encode())
    assert not JANE.in_bytes(b"\x28\xb5\x2f\xfd compressed")


def test_json_is_scrubbed_value_by_value() -> None:
    before = {
        "contact": {"name": "Jane Doe", "emails": ["jane@praxis.de", "office@praxis.de"]},
        "jane@praxis.de": "a key that names her",
        "count": 3,
    }
    assert JANE.in_value(before)
    after = JANE.scrub(before)
    assert after == {
        "contact": {"name": ERASED, "emails": [ERASED, "office@praxis.de"]},
        "count": 3,
    }
    assert not JANE.in_value(after)


@given(
    st.recursive(st.text() | st.integers(), lambda c: st.lists(c) | st.dictionaries(st.text(), c))
)
def test_a_scrubbed_value_never_mentions_the_person(value: object) -> None:
    assert not JANE.in_value(JANE.scrub(value))
