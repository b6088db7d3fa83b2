"""How long a login key is refused after its failures (storage.throttle.block_seconds)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from storage.throttle import (
    FIRST_BLOCK,
    KEY_LENGTH,
    LIMIT,
    MAX_BLOCK,
    account_key,
    block_seconds,
    client_key,
)


def test_no_block_below_the_limit() -> None:
    assert [block_seconds(n) for n in range(LIMIT)] == [0] * LIMIT


def test_the_block_starts_at_the_limit_and_doubles_up_to_an_hour() -> None:
    assert [block_seconds(n) for n in range(LIMIT, LIMIT + 9)] == [
        30,
        60,
        120,
        240,
        480,
        960,
        1920,
        3600,
        3600,
    ]
    assert (LIMIT, FIRST_BLOCK, MAX_BLOCK) == (10, 30, 3600)


@given(st.integers(min_value=0, max_value=10**12))
def test_the_block_never_shrinks_and_never_exceeds_the_cap(failures: int) -> None:
    assert 0 <= block_seconds(failures) <= block_seconds(failures + 1) <= MAX_BLOCK


def test_keys_name_their_kind_and_fit_the_column() -> None:
    assert account_key(" Anna@OurCo.example ") == "account:anna@ourco.example"
    assert client_key("2001:DB8::1") == "client:2001:db8::1"
    assert len(account_key("a" * 1000 + "@x.example")) == KEY_LENGTH
