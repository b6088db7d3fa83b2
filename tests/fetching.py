"""A connector run the way a sync runs it, storage left out: for tests of what a connector
fetches and how it translates.

`hub.pipeline.sync_connector` takes batches from `Connector.raw_batches` (retries, stall
timeouts, readable errors) and has `Hub.translate` translate each: `translate_and_pack` in a
thread for a small batch, or in worker processes for a big one (the same items either way:
tests/integration/test_pipeline.py), then `with_raws`. `fetched_batches` runs exactly that, the
thread path, so that a connector test exercises the code production runs and not a test-only
path. What comes back is what storage gets: raws and attachments packed, the body text packed
(read it with `storage.packing.body_text`), no HTML body.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

from connectors.base import Connector
from hub.model import Quarantined, Skipped, Translated
from hub.translation import translate_and_pack, with_raws

Item = Translated | Quarantined | Skipped


@dataclass
class FetchedBatch:
    """One batch as the pipeline hands it on: translated items, the cursor to commit with
    them (through JSON, as the connector row stores it) and how many raw items were fetched."""

    items: list[Item]
    cursor: dict[str, Any]
    fetched: int


async def fetched_batches(
    connector: Connector, cursor: Mapping[str, Any] | None = None
) -> AsyncIterator[FetchedBatch]:
    """The batches one sync pass of `connector` after `cursor` would store."""
    args = (type(connector), connector.name, dict(connector.settings), connector.context)
    async for raws, next_cursor in connector.raw_batches(dict(cursor or {})):
        items = await asyncio.to_thread(translate_and_pack, *args, raws)
        yield FetchedBatch(with_raws(items, raws), json.loads(json.dumps(next_cursor)), len(raws))


async def fetch_all(
    connector: Connector, cursor: Mapping[str, Any] | None = None
) -> tuple[list[Item], dict[str, Any]]:
    """Every item one sync pass after `cursor` would store, and the cursor it would leave."""
    items: list[Item] = []
    last = dict(cursor or {})
    async for batch in fetched_batches(connector, last):
        items += batch.items
        last = batch.cursor
    return items, last
