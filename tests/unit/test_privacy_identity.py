"""Naming the person of a data-subject request (hub.privacy): one address or number, read as
matching reads participants, and every way a number may be written in stored text."""

from __future__ import annotations

import pytest

from hub.privacy import PrivacyError, identity_key, phone_spellings


@pytest.mark.parametrize(
    ("identifier", "key"),
    [
        (" Jane.Roe+news@Praxis-Example.DE ", "jane.roe@praxis-example.de"),
        ("J.Roe@googlemail.com", "jroe@gmail.com"),
        ("0511 689 00756", "+4951168900756"),
        ("+49 (0)511 68900756", "+4951168900756"),
        ("0049 511 68900756", "+4951168900756"),
    ],
)
def test_the_identifier_is_normalised_like_a_participant(identifier: str, key: str) -> None:
    assert identity_key(identifier, "DE") == key


@pytest.mark.parametrize("identifier", ["Jane Roe", "6890756", "jane@", ""])
def test_anything_else_is_refused(identifier: str) -> None:
    with pytest.raises(PrivacyError, match="neither a mail address nor a complete phone number"):
        identity_key(identifier, "DE")


def test_a_number_is_searched_as_written_nationally_and_internationally() -> None:
    assert phone_spellings("+4951168900756") >= {
        "+4951168900756",
        "4951168900756",
        "+49 511 68900756",
        "0511 68900756",
        "051168900756",
    }
