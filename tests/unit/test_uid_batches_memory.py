"""The IMAP connector's batches of a folder's UIDs: in order, and made one at a time.

A folder of 200,000 messages is read in 800 batches; the batches must not all exist at once
beside the folder's UIDs (tests/integration/test_imap_memory.py has the sync around it).
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from typing import overload

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.imap import FIRST_BATCH_UIDS, MAX_BATCH_UIDS, _chunks


class CountedUids(Sequence[int]):
    """UIDs 1..n that count how many of them were copied out by slicing."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.copied = 0

    def __len__(self) -> int:
        return self.n

    @overload
    def __getitem__(self, key: int) -> int: ...
    @overload
    def __getitem__(self, key: slice) -> Sequence[int]: ...
    def __getitem__(self, key: int | slice) -> int | Sequence[int]:
        if isinstance(key, int):
            return range(1, self.n + 1)[key]
        part = range(1, self.n + 1)[key]
        self.copied += len(part)
        return part


@given(st.lists(st.integers(1, 2**32 - 1), unique=True, max_size=2_000).map(sorted))
def test_batches_are_the_uids_in_order_a_short_first_one_then_full_ones(uids: list[int]) -> None:
    batches = list(_chunks(array("Q", uids)))
    assert [uid for batch in batches for uid in batch] == uids
    assert all(isinstance(batch, list) and batch for batch in batches)
    if batches:
        assert len(batches[0]) == min(len(uids), FIRST_BATCH_UIDS)
        assert all(len(batch) == MAX_BATCH_UIDS for batch in batches[1:-1])
        assert len(batches[-1]) <= MAX_BATCH_UIDS


def test_a_batch_is_made_only_when_it_is_due() -> None:
    uids = CountedUids(200_000)
    batches = _chunks(uids)
    assert uids.copied == 0
    assert next(batches) == list(range(1, FIRST_BATCH_UIDS + 1))
    assert uids.copied == FIRST_BATCH_UIDS
    assert next(batches)[0] == FIRST_BATCH_UIDS + 1
    assert uids.copied == FIRST_BATCH_UIDS + MAX_BATCH_UIDS


@pytest.mark.parametrize("n", [0, 1, FIRST_BATCH_UIDS, FIRST_BATCH_UIDS + 1])
def test_small_folders(n: int) -> None:
    batches = list(_chunks(array("Q", range(1, n + 1))))
    assert batches == ([list(range(1, min(n, FIRST_BATCH_UIDS) + 1))] if n else []) + (
        [[FIRST_BATCH_UIDS + 1]] if n > FIRST_BATCH_UIDS else []
    )
