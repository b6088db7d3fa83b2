"""`crmhub status`: the connector table of the admin pages for the terminal, and for scripts and
cron jobs that alert on it (exit status 1 when an enabled connector's last sync failed).

It reads the admin pages' own read model (hub.connector_status), and it only reads: a database
that is not there is reported, never created, so a status check run in the wrong directory
cannot pass on an empty database made for it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Sequence

from config.settings import load_settings
from hub.bootstrap import build_hub
from hub.cli_support import when
from hub.connector_status import ConnectorStatus, connector_statuses
from hub.terminal import printable
from storage.db import DatabaseError, sqlite_path

HEADINGS = ("NAME", "KIND", "STATE", "LAST SYNC", "LAG", "ITEMS 14D", "LAST ERROR")
GAP = "  "
DESCRIPTION = """\
Every connector with its state, its last sync (UTC), its lag (the age of the newest item seen
from it), its items of the last 14 days, and its last error with what to do about it: the
table of the admin pages' Connectors page.

Exit status: 0 when every enabled connector's last sync succeeded (or none ran yet), 1 when
the last sync of any enabled connector failed (for cron jobs and monitoring scripts that
alert), 2 for a missing or unreadable database or bad configuration."""


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    status = sub.add_parser(
        "status",
        help="the connector table: state, last sync, lag, last error; exit 1 when a sync failed",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    status.add_argument(
        "--json", action="store_true", help="as JSON: the objects of GET /api/connectors"
    )
    status.set_defaults(run=cmd_status)


def failing(statuses: Sequence[ConnectorStatus]) -> list[str]:
    """The enabled connectors whose last sync failed: what a monitor should hear about."""
    return [s.name for s in statuses if s.enabled and s.status == "failed"]


def cmd_status(args: argparse.Namespace) -> int:
    statuses = asyncio.run(_read())
    if args.json:
        doc = {"connectors": [s.as_json() for s in statuses], "failing": failing(statuses)}
        print(json.dumps(doc, indent=2))
    elif statuses:
        print("\n".join(table(statuses)))
    else:
        print("No connectors yet: add one with `crmhub connectors add KIND NAME`.")
    return 1 if failing(statuses) else 0


async def _read() -> list[ConnectorStatus]:
    settings = load_settings()
    path = sqlite_path(settings.database_url)
    if path is not None and not path.is_file():
        raise DatabaseError(
            f"there is no database at {path} (CRMHUB_DATABASE_URL); run crmhub where its "
            "database is, or set CRMHUB_DATABASE_URL"
        )
    hub = build_hub(settings, migrate=False)
    try:
        return await connector_statuses(hub)
    finally:
        await hub.close()


def _state(s: ConnectorStatus) -> str:
    parts = [s.status]
    if not s.enabled:
        parts.append("disabled")
    if s.sync.running:
        parts.append(f"syncing: {s.sync.fetched} fetched")
    return ", ".join(parts)


def table(statuses: Sequence[ConnectorStatus]) -> list[str]:
    """Aligned columns, one row per connector; an error's hint on the line below it, under the
    error. Every cell made printable: names, paths and errors come from sources."""
    rows = [
        tuple(
            printable(cell)
            for cell in (
                s.name,
                s.kind,
                _state(s),
                when(s.last_sync_at),
                s.lag,
                str(s.recent),
                s.last_error,
            )
        )
        for s in statuses
    ]
    widths = [max(len(row[i]) for row in [HEADINGS, *rows]) for i in range(len(HEADINGS) - 1)]
    indent = sum(widths) + len(GAP) * len(widths)

    def line(cells: Sequence[str]) -> str:
        padded = [cell.ljust(width) for cell, width in zip(cells, widths, strict=False)]
        return GAP.join([*padded, cells[-1]]).rstrip()

    lines = [line(HEADINGS)]
    for s, row in zip(statuses, rows, strict=True):
        lines.append(line(row))
        if s.last_error and s.hint:
            lines.append(" " * indent + printable(f"hint: {s.hint}"))
    return lines
