"""The driver interface of the connector contract test (its module: tests/integration/
test_connector_contract.py).

Every connector kind that fetches passes one contract, through the production sync path: a
second sync fetches only what was added, a sync from an older cursor doubles and loses nothing,
a malformed item is quarantined with its reason while the sync goes on, and a source error is
reported as a readable error naming the connector. A kind takes part by a driver: given a
fresh directory, it sets up a source of that kind (files, or a real or fake server) and yields
what the test needs to add connectors for it and to change it; the test lists it in `DRIVERS`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path


@dataclass
class ContractSource:
    kind: str
    settings: dict[str, str]
    secrets: dict[str, str]
    add_items: Callable[[int], Awaitable[None]]  # n new readable items in the source
    add_malformed: Callable[[], Awaitable[None]]  # one item translation must quarantine
    break_source: Callable[[], Awaitable[None]]  # the next sync fails with a source error


Driver = Callable[[Path], AbstractAsyncContextManager[ContractSource]]  # given tmp_path
