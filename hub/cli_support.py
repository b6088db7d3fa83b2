"""What every `crmhub` command module shares: the usage error and running work with a hub."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from config.settings import load_settings
from hub.bootstrap import Hub, build_hub


class UsageError(Exception):
    """Bad input on the command line; printed without a traceback (hub.cli.main)."""


async def with_hub(work: Callable[[Hub], Awaitable[int]]) -> int:
    """`work` with a hub wired from the settings, closed afterwards whatever happens."""
    hub = build_hub(load_settings())
    try:
        return await work(hub)
    finally:
        await hub.close()


def when(at: datetime | None) -> str:
    """A time as the command line lists it: UTC, to the minute."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%MZ") if at is not None else "never"
