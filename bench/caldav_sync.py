"""Initial CalDAV sync: the caldav connector against the caldav library's own bare fetch.

    .venv/bin/python bench/caldav_sync.py [--events 5000] [--series 200] [--rounds 3]

Starts a Radicale of its own (tests/radicale.py, a child process on 127.0.0.1) and fills one
calendar in one PUT of the whole collection: `--events` events, `--series` of them weekly
series, the rest single meetings spread over the hub's window (a year back, a year ahead),
each with an organizer, two attendees and a short description. Then, in interleaved rounds:
- bare: `caldav` itself, `Calendar.get_events()` (one calendar-query REPORT with the data,
  parsed into its objects): the floor;
- crmhub: `CalDavConnector.raw_batches` from an empty cursor: one sync-collection REPORT with
  the data, every series expanded within the window into one raw item per occurrence;
and prints each and the median of each round's ratio (the target: at most 2). Then a no-change
re-sync from the cursor the connector handed out (the target: under 100 ms) next to Radicale's
own answer time for that incremental sync-collection REPORT (the floor: Radicale hashes every
item's state to answer it) and for a depth-0 PROPFIND of getctag or sync-token (as dear: it
hashes every item for those too), the cursor's size, and, unless --no-pipeline, the whole
`crmhub sync` into SQLite and its no-change re-syncs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from caldav.davclient import DAVClient  # noqa: E402

from connectors.base import ConnectorContext  # noqa: E402
from connectors.caldav import CalDavConnector  # noqa: E402
from tests.radicale import CalDavUser, start_radicale  # noqa: E402

DESCRIPTION = r"Agenda: Angebot\, Liefertermine\, offene Punkte. Bitte Unterlagen mitbringen."


def calendar_text(events: int, series: int) -> str:
    """One VCALENDAR holding every event: Radicale splits a collection PUT by UID."""
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//crmhub bench//EN"]
    for n in range(events):
        start = now + timedelta(hours=(n * 37) % (2 * 365 * 24) - 365 * 24)
        stamp = start.strftime("%Y%m%dT%H%M%SZ")
        end = (start + timedelta(hours=1)).strftime("%Y%m%dT%H%M%SZ")
        lines += [
            "BEGIN:VEVENT",
            f"UID:bench-{n}@ourco.example",
            "DTSTAMP:20240101T000000Z",
            f"DTSTART:{stamp}",
            f"DTEND:{end}",
            f"SUMMARY:Termin {n} mit Firma {n % 300}",
            f"DESCRIPTION:{DESCRIPTION}",
            "ORGANIZER;CN=Anna Berger:mailto:anna@ourco.example",
            f"ATTENDEE;CN=Kunde {n};PARTSTAT=ACCEPTED:mailto:kunde{n}@firma{n % 300}.example",
            "ATTENDEE;CN=Ben;PARTSTAT=NEEDS-ACTION:mailto:ben@ourco.example",
        ]
        if n < series:
            lines.append("RRULE:FREQ=WEEKLY;COUNT=52")
        lines.append("END:VEVENT")
    lines.append("END:VCALENDAR")
    return "\r\n".join(lines) + "\r\n"


def fill(user: CalDavUser, events: int, series: int) -> None:
    with user.client() as http:
        answer = http.put(
            user.calendar_url("bench"),
            content=calendar_text(events, series).encode(),
            headers={"Content-Type": "text/calendar"},
            timeout=600,
        )
    answer.raise_for_status()


def bare(user: CalDavUser) -> int:
    """The library's fetch, its login sent at once as the connector sends it: asked first,
    Radicale waits 0.5 to 1.5 s (its auth delay) before the 401, which is no part of a fetch."""
    url = user.calendar_url("bench")
    client = DAVClient(url=url, username=user.name, password=user.password, auth_type="basic")
    calendar = client.calendar(url=url)
    return len(calendar.get_events())  # type: ignore[arg-type]


async def crmhub(connector: CalDavConnector, cursor: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    items = 0
    async for raws, next_cursor in connector.raw_batches(cursor):
        items += len(raws)
        cursor = next_cursor
    return items, cursor


def incremental_report(user: CalDavUser, token: str) -> int:
    """The no-change sync-collection REPORT alone, over plain HTTP: the server's share."""
    body = (
        '<?xml version="1.0"?><D:sync-collection xmlns:D="DAV:">'
        f"<D:sync-token>{token}</D:sync-token><D:sync-level>1</D:sync-level>"
        "<D:prop><D:getetag/></D:prop></D:sync-collection>"
    )
    with user.client() as http:
        answer = http.request("REPORT", user.calendar_url("bench"), content=body)
    return answer.status_code


def collection_property(user: CalDavUser, prop: str) -> int:
    """A depth-0 PROPFIND for one property of the calendar (getctag, sync-token)."""
    body = (
        '<?xml version="1.0"?><D:propfind xmlns:D="DAV:" '
        f'xmlns:CS="http://calendarserver.org/ns/"><D:prop><{prop}/></D:prop></D:propfind>'
    )
    with user.client() as http:
        answer = http.request(
            "PROPFIND", user.calendar_url("bench"), content=body, headers={"Depth": "0"}
        )
    return answer.status_code


def timed(call: Any, *args: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    result = call(*args)
    return time.perf_counter() - started, result


async def pipeline(user: CalDavUser, settings: dict[str, str], directory: Path) -> None:
    from config.settings import Settings
    from hub.admin import add_connector
    from hub.bootstrap import build_hub
    from hub.pipeline import sync_all

    hub = build_hub(
        Settings(
            database_url=f"sqlite:///{directory / 'bench.db'}",
            internal_domains=["ourco.example"],
            secret_key="bench-secret-key-0123456789abcdef",
        ),
        migrate=True,
    )
    try:
        await add_connector(hub, "caldav", "cal", settings, {"password": user.password})
        started = time.perf_counter()
        (first,) = await sync_all(hub, ["cal"])
        initial = time.perf_counter() - started
        assert not first.error, first.error
        resyncs = []
        for _ in range(5):
            started = time.perf_counter()
            (again,) = await sync_all(hub, ["cal"])
            resyncs.append((time.perf_counter() - started) * 1000)
            assert again.new == 0 and not again.error, again
        print(f"pipeline: initial sync {initial:.2f} s ({first.new} meetings stored), "
              f"no-change re-sync best {min(resyncs):.0f} ms, "
              f"median {statistics.median(resyncs):.0f} ms")  # fmt: skip
    finally:
        await hub.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--series", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-pipeline", action="store_true")
    args = parser.parse_args()
    with start_radicale() as server, tempfile.TemporaryDirectory() as directory:
        user = server.add_user("anna@ourco.example")
        seconds, _ = timed(fill, user, args.events, args.series)
        print(f"{args.events} events ({args.series} weekly series) put in {seconds:.1f} s")
        settings = {"url": user.calendar_url("bench"), "username": user.name}
        connector = CalDavConnector(
            "cal", settings, {"password": user.password}, ConnectorContext(timezone="UTC")
        )
        # Radicale builds its item cache on the first full read, and the state of a new sync
        # token on the first sync-collection (9 s for 5,000 events): once each, not timed.
        timed(bare, user)
        timed(asyncio.run, crmhub(connector, {}))
        ratios, ours, theirs = [], [], []
        cursor: dict[str, Any] = {}
        for _ in range(args.rounds):
            base, count = timed(bare, user)
            mine, (items, cursor) = timed(asyncio.run, crmhub(connector, {}))
            theirs.append(base)
            ours.append(mine)
            ratios.append(mine / base)
            print(f"  bare {base:.2f} s ({count} events)  crmhub {mine:.2f} s "
                  f"({items} occurrences)  ratio {mine / base:.2f}")  # fmt: skip
        print(f"initial: bare median {statistics.median(theirs):.2f} s, crmhub median "
              f"{statistics.median(ours):.2f} s, median ratio {statistics.median(ratios):.2f} "
              "(target <= 2)")  # fmt: skip
        again = [timed(asyncio.run, crmhub(connector, cursor)) for _ in range(5)]
        assert all(result[1][0] == 0 for result in again), "a no-change re-sync fetched items"
        best = min(seconds for seconds, _ in again) * 1000
        middle = statistics.median(seconds for seconds, _ in again) * 1000
        print(f"no-change re-sync (connector): best {best:.0f} ms, median {middle:.0f} ms "
              "(target < 100 ms)")  # fmt: skip
        (state,) = cursor["calendars"].values()
        floor = min(timed(incremental_report, user, state["token"])[0] for _ in range(5)) * 1000
        print(f"  Radicale's own answer to that sync-collection REPORT: best {floor:.0f} ms")
        for prop in ("CS:getctag", "D:sync-token"):
            cost = min(timed(collection_property, user, prop)[0] for _ in range(5)) * 1000
            print(f"  Radicale's own answer to a depth-0 PROPFIND for {prop}: best {cost:.0f} ms")
        print(f"cursor: {len(json.dumps(cursor)) / 1024:.0f} KiB")
        if not args.no_pipeline:
            asyncio.run(pipeline(user, settings, Path(directory)))


if __name__ == "__main__":
    main()
