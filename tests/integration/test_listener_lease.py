"""One live listener per connector across processes (hub.listener_lease): the lease's claim,
renewal and release on a real database (SQLite, or PostgreSQL in CI), and two schedulers on one
hub database against a local manager-interface peer (tests/ami_peer.py), standing in for two
processes: one listens, the other takes over when it stops or stalls.

A stall is our own storage port, `renew_listener`, held back for the holder only: a process
frozen that long (a paused VM, a swapped-out machine) does the same.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from hub import jobs, listener_lease
from hub.admin import add_connector, change_connector
from hub.bootstrap import Hub
from hub.jobs import Scheduler
from hub.model import RawItem
from hub.pipeline import SyncReport, ingest_pushed
from storage.connectors_state import (
    claim_listener,
    connector_row,
    release_listener,
    renew_listener,
)
from storage.tables import ConnectorRow
from tests.ami_peer import FakeAmi
from tests.integration.test_asterisk_ami import SECRET, _answered_call, _stored

NOW = datetime(2025, 3, 15, 12, 0, tzinfo=UTC)
STALE = timedelta(seconds=30)
CLAIM_SECONDS = 0.05
NAME = "pbx-live"


async def _claim(hub: Hub, holder: str, at: datetime) -> bool:
    async with hub.sessions() as session, session.begin():
        return await claim_listener(session, "mail", holder, at, at - STALE)


async def _renew(hub: Hub, holder: str, at: datetime) -> bool:
    async with hub.sessions() as session, session.begin():
        return await renew_listener(session, "mail", holder, at)


async def _release(hub: Hub, holder: str) -> None:
    async with hub.sessions() as session, session.begin():
        await release_listener(session, "mail", holder)


async def _lease(hub: Hub, name: str = "mail") -> tuple[str | None, datetime | None]:
    async with hub.sessions() as session:
        row = await connector_row(session, name)
    assert row is not None
    return row.listener_holder, row.listener_beat_at


async def test_a_lease_is_held_by_one_holder_until_it_is_released_or_goes_stale(
    hub: Hub,
) -> None:
    await add_connector(hub, "mbox", "mail", {"path": "/nowhere.mbox"}, {})
    assert await _lease(hub) == (None, None), "nobody listens at first"
    assert await _claim(hub, "a", NOW)
    later = NOW + timedelta(seconds=5)
    assert not await _claim(hub, "b", later), "one holder at a time"
    assert await _claim(hub, "a", later), "claiming what is ours already"
    assert await _renew(hub, "a", later + timedelta(seconds=5))
    assert not await _renew(hub, "b", later), "b holds nothing to renew"
    assert await _lease(hub) == ("a", later + timedelta(seconds=5))

    # a stopped renewing (killed, or stalled): once its beat is stale, b takes over.
    gone = later + timedelta(seconds=5) + STALE + timedelta(seconds=1)
    assert not await _claim(hub, "b", gone - timedelta(seconds=2)), "not stale yet"
    assert await _claim(hub, "b", gone)
    assert not await _renew(hub, "a", gone), "a learns that the lease went elsewhere"
    await _release(hub, "a")  # a's release on its way out: not a's to release any more
    assert await _lease(hub) == ("b", gone)
    await _release(hub, "b")
    assert await _lease(hub) == (None, None)
    assert await _claim(hub, "a", gone), "released: free at once, stale or not"

    async with hub.sessions() as session, session.begin():
        assert not await claim_listener(session, "no-such", "a", NOW, NOW - STALE)
        assert not await renew_listener(session, "no-such", "a", NOW)


async def test_of_claimants_racing_for_a_free_lease_exactly_one_wins(hub: Hub) -> None:
    await add_connector(hub, "mbox", "mail", {"path": "/nowhere.mbox"}, {})
    holders = [f"host-{n}:100{n}:cafe" for n in range(6)]
    won = await asyncio.gather(*(_claim(hub, holder, NOW) for holder in holders))
    assert sum(won) == 1
    assert (await _lease(hub))[0] == holders[won.index(True)]


@pytest.fixture
async def peer() -> AsyncIterator[FakeAmi]:
    fake = await FakeAmi("crmhub", SECRET).start()
    yield fake
    await fake.close()


@pytest.fixture
def quick(monkeypatch: pytest.MonkeyPatch) -> None:
    """Beats and claims in tens of a second, so that a takeover takes no longer. The stale
    time stays: a test makes a beat stale by writing it so, never by waiting."""
    monkeypatch.setattr(listener_lease, "BEAT_SECONDS", 0.2)
    monkeypatch.setattr(listener_lease, "CLAIM_SECONDS", CLAIM_SECONDS)


@pytest.fixture
def pushed(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """How often each call was handed to the store, by Asterisk uniqueid: a second listener
    would store each call again (absorbed as a duplicate, so the rows cannot tell)."""
    counts: Counter[str] = Counter()

    async def counting(hub: Hub, name: str, raws: list[RawItem]) -> SyncReport:
        counts.update(raw.external_id.split(":")[0] for raw in raws)
        return await ingest_pushed(hub, name, raws)

    monkeypatch.setattr(jobs, "ingest_pushed", counting)
    return counts


async def _add(hub: Hub, peer: FakeAmi) -> None:
    settings = {"host": peer.host, "port": str(peer.port), "username": "crmhub", "cdr_wait": "1"}
    await add_connector(hub, "asterisk-ami", NAME, settings, {"secret": SECRET})


class Schedulers:
    """Two schedulers on one hub database, as two processes (or machines) run them."""

    def __init__(self, hub: Hub) -> None:
        self.all = [Scheduler(hub), Scheduler(hub)]
        self.runs = {id(s): asyncio.create_task(s.run()) for s in self.all}
        self.hub = hub

    async def holder(self) -> Scheduler:
        holder, _ = await _lease(self.hub, NAME)
        return next(s for s in self.all if s.holder == holder)

    def other(self, one: Scheduler) -> Scheduler:
        return next(s for s in self.all if s is not one)

    async def stop(self, one: Scheduler) -> None:
        task = self.runs[id(one)]
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def _until(check: Callable[[], bool], timeout: float = 10) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.02)


async def test_one_of_two_schedulers_listens_and_the_other_takes_over_when_it_stops(
    hub: Hub,
    peer: FakeAmi,
    quick: None,
    pushed: Counter[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("INFO", logger="hub.listener_lease")
    await _add(hub, peer)
    both = Schedulers(hub)
    try:
        await peer.wait_for(logins=1)
        first = await both.holder()
        await asyncio.sleep(20 * CLAIM_SECONDS)  # the other asks for the lease 20 times
        assert (peer.logins, len(peer.listeners)) == (1, 1), "one connection to the PBX"
        await _answered_call(peer, "1772440200.11", "1772440200.11")
        assert (await _stored(hub, "1772440200.11"))["sources"] == [NAME]
        assert pushed["1772440200.11"] == 1, "stored once, not once per scheduler"
        assert f"{NAME}: {first.holder} took the listener lease and listens" in caplog.text

        await both.stop(first)  # shut down: the lease is released, not left to go stale
        assert f"{NAME}: {first.holder} gave up the listener lease" in caplog.text
        await peer.wait_for(logins=2, timeout=3)
        second = both.other(first)
        assert (await _lease(hub, NAME))[0] == second.holder
        await _answered_call(peer, "1772440300.21", "1772440300.21")
        await _stored(hub, "1772440300.21")
        assert pushed["1772440300.21"] == 1
        await _until(lambda: len(peer.listeners) == 1)
    finally:
        for scheduler in both.all:
            await both.stop(scheduler)
    assert await _lease(hub, NAME) == (None, None), "the last one released it too"


async def test_a_stalled_holder_is_taken_over_and_stops_on_its_next_renewal(
    hub: Hub,
    peer: FakeAmi,
    quick: None,
    pushed: Counter[str],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("INFO", logger="hub.listener_lease")
    await _add(hub, peer)
    stalled, stuck, thawed = asyncio.Event(), asyncio.Event(), asyncio.Event()
    staller: list[str] = []

    async def renew(session: AsyncSession, name: str, holder: str, now: datetime) -> bool:
        if stalled.is_set() and holder in staller:
            stuck.set()
            await thawed.wait()
        return await renew_listener(session, name, holder, now)

    monkeypatch.setattr(listener_lease, "renew_listener", renew)
    both = Schedulers(hub)
    try:
        await peer.wait_for(logins=1)
        first = await both.holder()
        second = both.other(first)
        staller.append(first.holder)
        stalled.set()
        await asyncio.wait_for(stuck.wait(), 5)
        async with hub.sessions() as session, session.begin():
            await session.execute(
                update(ConnectorRow)
                .where(ConnectorRow.name == NAME)
                .values(listener_beat_at=datetime.now(UTC) - timedelta(hours=1))
            )
        await peer.wait_for(logins=2, timeout=3)  # the other took over
        assert (await _lease(hub, NAME))[0] == second.holder

        thawed.set()  # the first wakes up, renews, learns it lost the lease, and hangs up
        await _until(lambda: len(peer.listeners) == 1, timeout=3)
        assert f"{NAME}: {first.holder} stalled and the listener lease went" in caplog.text
        await _answered_call(peer, "1772440400.31", "1772440400.31")
        await _stored(hub, "1772440400.31")
        assert pushed["1772440400.31"] == 1
        await asyncio.sleep(20 * CLAIM_SECONDS)  # the first asks again, in vain
        assert (peer.logins, len(peer.listeners)) == (2, 1)
        assert (await _lease(hub, NAME))[0] == second.holder
    finally:
        for scheduler in both.all:
            await both.stop(scheduler)


async def test_a_listener_restarted_for_changed_settings_keeps_the_lease_in_its_process(
    hub: Hub, peer: FakeAmi, quick: None, caplog: pytest.LogCaptureFixture
) -> None:
    """The restarted listener shares the stopped one's holder token: it waits for the stopped
    one to release, instead of claiming what is "ours" and then losing it to that release."""
    caplog.set_level("INFO", logger="hub.listener_lease")
    hub.settings.sync_interval = 1
    await _add(hub, peer)
    scheduler = Scheduler(hub)
    run = asyncio.create_task(scheduler.run())
    try:
        await peer.wait_for(logins=1)
        await change_connector(hub, NAME, {"ping_seconds": "30"})
        await peer.wait_for(logins=2, timeout=5)
        await asyncio.sleep(10 * 0.2)  # ten beats of the new listener
        assert peer.logins == 2 and len(peer.listeners) == 1
        assert (await _lease(hub, NAME))[0] == scheduler.holder
        assert "stalled" not in caplog.text
    finally:
        run.cancel()
        await asyncio.gather(run, return_exceptions=True)
