"""One live listener per connector, whichever processes and machines run a scheduler.

A `connectors.base.Listener` keeps a connection to its source (a PBX's manager interface) and
stores what the source pushes. Every `crmhub serve` and `crmhub worker` runs a scheduler, so
without a lease each would hold its own connection and store every call twice. The lease sits
in the connector's row (storage.connectors_state): a scheduler claims it before it listens and
renews it on a beat while it listens. A holder that dies (killed, machine gone) stops renewing,
and once its beat is stale the next claimant takes over; a holder that stalled that long finds
on its next renewal that the lease went elsewhere, and stops listening. A holder that stops
(cancelled, shut down) releases the lease, so another takes over within one claim interval.

Staleness compares one machine's clock with another's, as the sync run's claim does: the
machines' clocks must agree to within a few seconds (NTP).
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any

from hub.bootstrap import Hub
from storage.connectors_state import claim_listener, release_listener, renew_listener

log = logging.getLogger(__name__)

BEAT_SECONDS = 5.0  # how often the holder renews: one small UPDATE per listening connector
# A lease not renewed this long is free: six beats, as a busy database may hold a beat back a
# while. A source does not replay what it pushed meanwhile, so after a holder dies without
# releasing, up to this long of calls are missed; a clean stop loses at most CLAIM_SECONDS.
STALE = timedelta(seconds=30)
CLAIM_SECONDS = 2.0  # how often a process waiting for the lease asks for it

Listen = Callable[[], Coroutine[Any, Any, None]]


def holder_token() -> str:
    """Who holds a lease, readable in the row and the log: host, pid and a random part (pids
    repeat across containers and restarts)."""
    return f"{socket.gethostname()[:64]}:{os.getpid()}:{secrets.token_hex(4)}"


async def listen_while_held(hub: Hub, name: str, holder: str, listen: Listen) -> None:
    """Run `listen()` while `holder` holds the lease of connector `name`, until cancelled or
    `listen` ends by itself (what it raised is raised here). A lease lost while this process
    stalled stops `listen` and goes back to claiming. The lease is released on the way out."""
    held = False
    try:
        while True:
            await _claim(hub, name, holder)
            held = True
            log.info("%s: %s took the listener lease and listens", name, holder)
            if not await _hold(hub, name, holder, listen):
                return
            held = False
            log.info(
                "%s: %s stalled and the listener lease went to another process; it stopped "
                "listening and waits for the lease",
                name,
                holder,
            )
    finally:
        if held:
            await _release(hub, name, holder)


async def _claim(hub: Hub, name: str, holder: str) -> None:
    """Until the lease of `name` is `holder`'s."""
    while True:
        now = datetime.now(UTC)
        try:
            async with hub.sessions() as session, session.begin():
                if await claim_listener(session, name, holder, now, now - STALE):
                    return
        except Exception:  # the database is away for a moment: ask again on the next round
            log.warning("%s: claiming the listener lease failed", name, exc_info=True)
        await asyncio.sleep(CLAIM_SECONDS)


async def _hold(hub: Hub, name: str, holder: str, listen: Listen) -> bool:
    """Listen and renew the lease on a beat. True when the lease was lost (listening has
    stopped), False when `listen` returned by itself."""
    listening = asyncio.create_task(listen(), name=f"{name} listening")
    try:
        while True:
            done, _ = await asyncio.wait({listening}, timeout=BEAT_SECONDS)
            if done:
                listening.result()
                return False
            if not await _renew(hub, name, holder):
                return True
    finally:
        listening.cancel()
        await asyncio.gather(listening, return_exceptions=True)


async def _renew(hub: Hub, name: str, holder: str) -> bool:
    """False once the lease is another's. A renewal that fails keeps listening: the lease is
    ours until someone else takes it, which the next renewal that gets through will tell."""
    try:
        async with hub.sessions() as session, session.begin():
            return await renew_listener(session, name, holder, datetime.now(UTC))
    except Exception:  # the database is away for a moment
        log.warning("%s: renewing the listener lease failed", name, exc_info=True)
        return True


async def _release(hub: Hub, name: str, holder: str) -> None:
    try:
        async with hub.sessions() as session, session.begin():
            await release_listener(session, name, holder)
    except Exception:  # the lease goes stale instead, and is taken over later
        log.warning("%s: releasing the listener lease failed", name, exc_info=True)
        return
    log.info("%s: %s gave up the listener lease", name, holder)
