"""Retention (hub.retention): per channel, by age, through the deletion mechanism; run by the
scheduler once per pass (SQLite, or PostgreSQL in CI)."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from hub import retention
from hub.bootstrap import Hub
from hub.jobs import Scheduler
from hub.retention import apply_retention
from storage.tables import BlobRow, InteractionRow
from tests.integration.person import store_person

# store_person's mails are of 8 January 2024 (09:00 to 11:00 CET), its calls of the 9th.
NOW = datetime(2024, 1, 19, 15, 0, tzinfo=UTC)


async def _left(hub: Hub) -> dict[str, int]:
    async with hub.sessions() as session:
        rows = await session.execute(
            select(InteractionRow.channel, func.count()).group_by(InteractionRow.channel)
        )
        return dict(rows.all())


async def _blobs(hub: Hub) -> int:
    async with hub.sessions() as session:
        return int((await session.execute(select(func.count()).select_from(BlobRow))).scalar_one())


async def test_each_channel_keeps_its_own_period(
    hub: Hub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await store_person(hub, tmp_path)
    monkeypatch.setattr(retention, "CHUNK", 1)  # one item per transaction: the loop is tested
    hub.settings.retention_days = {"call": 11, "meeting": 1}
    report = await apply_retention(hub, NOW)
    assert report.items == 0 and report.lines() == [
        "call: 0 items older than 11 days deleted",
        "meeting: 0 items older than 1 days deleted",
    ]
    blobs = await _blobs(hub)
    hub.settings.retention_days = {"call": 10}
    report = await apply_retention(hub, NOW)
    assert report.lines() == ["call: 2 items older than 10 days deleted"]
    assert report.deleted["call"].blobs == 2
    assert await _left(hub) == {"email": 3}
    assert await _blobs(hub) == blobs - 2
    hub.settings.retention_days = {}
    assert (await apply_retention(hub, NOW)).lines() == [
        "no retention_days set: every channel is kept"
    ]


async def test_the_scheduler_applies_retention_on_every_pass(hub: Hub, tmp_path: Path) -> None:
    await store_person(hub, tmp_path)
    hub.settings.retention_days = {"email": 1}  # everything stored is years old by now
    hub.settings.sync_interval = 3600
    passes = asyncio.create_task(Scheduler(hub).run())
    try:
        for _ in range(200):
            if await _left(hub) == {"call": 2}:
                break
            await asyncio.sleep(0.05)
    finally:
        passes.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await passes
    assert await _left(hub) == {"call": 2}
