"""The pure parts of storage.users: password hashes, user addresses, token states."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from storage.tables import TokenRow
from storage.tokens import token_state
from storage.users import _DUMMY_HASH, UserError, check_password, hash_password, user_address

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def test_a_hash_checks_its_password_only() -> None:
    stored = hash_password("correct horse")
    assert stored.startswith("scrypt$") and "correct horse" not in stored
    assert check_password("correct horse", stored)
    assert not check_password("correct horse ", stored)
    assert hash_password("correct horse") != stored  # salted


@pytest.mark.parametrize(
    "stored", ["", "scrypt", "scrypt$zz$00", "bcrypt$00$00", "scrypt$00", "plain text"]
)
def test_a_malformed_hash_matches_nothing(stored: str) -> None:
    assert not check_password("", stored)
    assert not check_password("plain text", stored)


def test_the_dummy_hash_is_a_real_hash_that_costs_a_full_check() -> None:
    """An unknown address is checked against it: it must parse, or the check would be quick."""
    scheme, salt, digest = _DUMMY_HASH.split("$")
    assert (scheme, len(bytes.fromhex(salt)), len(bytes.fromhex(digest))) == ("scrypt", 16, 64)
    assert not check_password("", _DUMMY_HASH)


def test_user_addresses_are_trimmed_and_lower_cased() -> None:
    assert user_address("  Anna.Berg@OurCo.Example ") == "anna.berg@ourco.example"


@pytest.mark.parametrize(
    "email", ["", "anna", "@ourco.example", "anna@", "an na@ourco.example", "anna@our\x1bco.de"]
)
def test_what_is_not_an_address_is_refused(email: str) -> None:
    with pytest.raises(UserError, match="is not an email address"):
        user_address(email)


def _token(**dates: datetime | None) -> TokenRow:
    return TokenRow(user_id=1, token_sha256="0" * 64, created_at=NOW - timedelta(days=1), **dates)


def test_token_states() -> None:
    assert token_state(_token(), NOW) == "active"
    assert token_state(_token(expires_at=NOW + timedelta(seconds=1)), NOW) == "active"
    assert token_state(_token(expires_at=NOW), NOW) == "expired"
    assert token_state(_token(revoked_at=NOW - timedelta(hours=1)), NOW) == "revoked"
    expired_and_revoked = _token(expires_at=NOW - timedelta(days=1), revoked_at=NOW)
    assert token_state(expired_and_revoked, NOW) == "revoked"
