"""The cluster of issue 17 on the machine's PostgreSQL: two real `crmhub worker` processes and
one `crmhub serve --no-scheduler` over a scratch database, 20 connectors (IMAP mailboxes on
Dovecot and mbox, eml, ics and asterisk-cdr files), and one worker killed with SIGKILL while it
is in the middle of a sync.

What it proves: every item arrives exactly once (each connector holds as many items as its
source, and no external id twice), the killed worker's syncs and IDLE watchers are resumed by
the other worker, no connector was synced by two workers at the same time, and the web
process answered GET /api/health throughout.

"At the same time" is recorded, not assumed: a sampler reads procrastinate's running jobs
every 100 ms (a job is `doing` from the moment a worker takes it until it is finished or put
back in the queue) and every sample must hold at most one running sync per connector.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import httpx
import psycopg
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from config.settings import Settings
from connectors.asterisk_cdr import COLUMNS
from hub.admin import add_connector
from hub.bootstrap import build_hub
from hub.queue import SCHEMA, SYNC_TASK, WATCH_TASK
from tests.conftest import PG_URL, empty_pg_database
from tests.e2e.conftest import CRMHUB, SECRET_KEY, Server, crmhub_env, launch_server, stop_server
from tests.integration.dovecot import Dovecot, MailUser, start_dovecot

pytestmark = pytest.mark.skipif(
    not PG_URL,
    reason="the cluster shares a PostgreSQL queue: set CRMHUB_TEST_DATABASE_URL to run it",
)

MAILBOXES = 6  # IMAP connectors, each a Dovecot user's INBOX
MAILS = 1500  # per mailbox: a sync of one takes seconds, so a kill lands in the middle of one
NEWS = 3  # mails per mailbox that arrive while it is synced: IDLE defers a sync that must wait
FILES = (("mbox", 4), ("eml", 4), ("ics", 3), ("asterisk-cdr", 3))  # 14 file connectors
FILE_ITEMS = 300
DEADLINE = 75.0  # seconds from the workers' start until everything must have arrived
SAMPLE_SECONDS = 0.1


def _mail(box: str, n: int) -> bytes:
    return (
        f"From: Kunde {n} <kunde{n % 97}@firma{n % 13}.example>\r\n"
        f"To: {box}@ourco.example\r\nSubject: Anfrage {n}\r\n"
        f"Message-ID: <{box}-{n}@firma.example>\r\n"
        f"Date: Mon, {1 + n % 28} Jan 2024 09:{n % 60:02d}:{n % 59:02d} +0100\r\n"
        f"\r\nText {n} for {box}\r\n"
    ).encode()


def _event(calendar: str, n: int) -> str:
    return (
        f"BEGIN:VEVENT\r\nUID:{calendar}-{n}@ourco.example\r\nDTSTAMP:20240101T080000Z\r\n"
        f"DTSTART:2024{1 + n % 12:02d}{1 + n % 28:02d}T{8 + n % 9:02d}0000Z\r\n"
        f"SUMMARY:Termin {n}\r\nORGANIZER:mailto:anna@ourco.example\r\n"
        f"ATTENDEE:mailto:kunde{n}@firma.example\r\nEND:VEVENT\r\n"
    )


def _call(pbx: str, n: int) -> str:
    minute, second = divmod(n, 60)
    values = dict.fromkeys(COLUMNS, "")
    values.update(
        src=f"0171{n:07d}",
        dst="201",
        dcontext="from-trunk",
        channel="PJSIP/t-1",
        dstchannel="PJSIP/201-1",
        lastapp="Dial",
        start=f"2024-01-09 1{minute // 60}:{minute % 60:02d}:{second:02d}",
        answer=f"2024-01-09 1{minute // 60}:{minute % 60:02d}:{second:02d}",
        end=f"2024-01-09 1{minute // 60}:{minute % 60:02d}:{second:02d}",
        duration="65",
        billsec="60",
        disposition="ANSWERED",
        amaflags="DOCUMENTATION",
        uniqueid=f"{pbx}.{n}",
    )
    return ",".join(f'"{values[c]}"' for c in COLUMNS) + "\n"


def _file_source(root: Path, kind: str, name: str) -> Path:
    """A source of `kind` with FILE_ITEMS items named after the connector; its path."""
    items = range(1, FILE_ITEMS + 1)
    if kind == "mbox":
        path = root / f"{name}.mbox"
        path.write_bytes(
            b"".join(
                b"From MAILER-DAEMON Mon Jan  8 09:00:00 2024\n"
                + _mail(name, n).replace(b"\r\n", b"\n")
                + b"\n"
                for n in items
            )
        )
    elif kind == "eml":
        path = root / name
        path.mkdir()
        for n in items:
            (path / f"{n}.eml").write_bytes(_mail(name, n))
    elif kind == "ics":
        path = root / f"{name}.ics"
        events = "".join(_event(name, n) for n in items)
        path.write_text(
            f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\n{events}END:VCALENDAR\r\n"
        )
    else:
        path = root / f"{name}.csv"
        path.write_text("".join(_call(name, n) for n in items))
    return path


def _scratch_database() -> AbstractContextManager[str]:
    """A new, empty database on the machine's PostgreSQL; dropped afterwards."""
    return empty_pg_database("crmhub_cluster")


@dataclass
class Watch:
    """What the sampler and the health poller saw, from their own threads."""

    url: str
    health_url: str
    stop: threading.Event = field(default_factory=threading.Event)
    samples: list[tuple[float, list[tuple[str, str, int | None]]]] = field(default_factory=list)
    health: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)

    def sample(self) -> None:
        """Running jobs as (task, connector, worker id), every SAMPLE_SECONDS."""
        conninfo = make_url(self.url).set(drivername="postgresql").render_as_string(False)
        try:
            with psycopg.connect(conninfo, autocommit=True) as connection:
                while not self.stop.wait(SAMPLE_SECONDS):
                    rows = connection.execute(
                        "SELECT task_name, args->>'name', worker_id FROM "
                        f"{SCHEMA}.procrastinate_jobs WHERE status = 'doing'"
                    ).fetchall()
                    self.samples.append((time.monotonic(), [tuple(r) for r in rows]))
        except Exception as e:  # noqa: BLE001 - the test thread reports it
            self.errors.append(f"sampler: {e!r}")

    def poll(self) -> None:
        with httpx.Client(timeout=5) as client:
            while not self.stop.wait(0.2):
                try:
                    self.health[str(client.get(self.health_url).status_code)] += 1
                except httpx.HTTPError as e:
                    self.health[type(e).__name__] += 1


def _query(url: str, sql: str, **params: object) -> list[tuple[object, ...]]:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return [tuple(row) for row in connection.execute(text(sql), params)]
    finally:
        engine.dispose()


T = TypeVar("T")


def _worker_ids(url: str) -> list[int]:
    return [int(row[0]) for row in _query(url, f"SELECT id FROM {SCHEMA}.procrastinate_workers")]


def _until(check: Callable[[], T], what: str, timeout: float) -> T:
    """What `check` gives once it is true."""
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f} s waiting for {what}"
        time.sleep(0.05)
    return found


MID_SYNC = f"""
SELECT c.name FROM {SCHEMA}.procrastinate_jobs j JOIN connectors c ON c.name = j.args->>'name'
WHERE j.status = 'doing' AND j.task_name = '{SYNC_TASK}' AND j.worker_id = ANY(:workers)
  AND c.kind = 'imap' AND c.run_ended_at IS NULL
  AND CAST(c.run_progress->>'fetched' AS integer) > 0
"""


def _seed(url: str, server: Dovecot, root: Path) -> tuple[dict[str, int], list[MailUser]]:
    """The 20 connectors and their sources; the number of items each source holds (with NEWS
    to come for the mailboxes), and the mailboxes' users."""
    expected: dict[str, int] = {}
    users: list[MailUser] = []
    settings = Settings(database_url=url, internal_domains=["ourco.example"], secret_key=SECRET_KEY)

    async def add() -> None:
        hub = build_hub(settings, migrate=False)
        try:
            for box in range(MAILBOXES):
                name = f"box{box}"
                user = server.add_user(f"{name}@ourco.example")
                users.append(user)
                server.fill_maildir(user, "INBOX", (_mail(name, n) for n in range(MAILS)))
                imap = {
                    "host": server.host,
                    "port": str(server.imaps_port),
                    "username": user.name,
                    "ca_file": str(server.cert_path),
                    "folders": "INBOX",
                }
                await add_connector(hub, "imap", name, imap, {"password": user.password})
                expected[name] = MAILS + NEWS
            for kind, count in FILES:
                for number in range(count):
                    name = f"{kind.replace('-', '')}{number}"
                    path = _file_source(root, kind, name)
                    await add_connector(hub, kind, name, {"path": str(path)}, {})
                    expected[name] = FILE_ITEMS
        finally:
            await hub.close()

    asyncio.run(add())
    return expected, users


def _news(server: Dovecot, users: list[MailUser], errors: list[str]) -> None:
    """NEWS new mails in every mailbox, over a few seconds, as IMAP APPENDs."""
    try:
        for n in range(MAILS, MAILS + NEWS):
            for user in users:
                server.append(user, "INBOX", _mail(user.name.partition("@")[0], n))
            time.sleep(0.5)
    except Exception as e:  # noqa: BLE001 - the test thread reports it
        errors.append(f"appending: {e!r}")


def _start_worker(url: str, root: Path, name: str) -> tuple[subprocess.Popen[bytes], Path]:
    log = root / f"{name}.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [str(CRMHUB), "worker"],
            env=crmhub_env(url),
            cwd=root,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    return process, log


def _stored(url: str) -> dict[str, tuple[int, int]]:
    rows = _query(
        url,
        "SELECT connector, count(*), count(DISTINCT external_id) FROM sources GROUP BY connector",
    )
    return {str(name): (int(n), int(distinct)) for name, n, distinct in rows}


def test_two_workers_one_killed_mid_sync_every_item_once_and_no_sync_twice_at_a_time(
    tmp_path: Path,
) -> None:
    with _scratch_database() as url, start_dovecot() as dovecot:
        upgraded = subprocess.run(
            [str(CRMHUB), "db", "upgrade"],
            env=crmhub_env(url),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert upgraded.returncode == 0, upgraded.stderr
        expected, users = _seed(url, dovecot, tmp_path)
        assert len(expected) == 20
        web: Server | None = None
        workers: list[subprocess.Popen[bytes]] = []
        watch: Watch | None = None
        threads: list[threading.Thread] = []
        try:
            web = launch_server(url, tmp_path)
            watch = Watch(url, f"{web.url}/api/health")
            threads = [threading.Thread(target=f, daemon=True) for f in (watch.sample, watch.poll)]
            for thread in threads:
                thread.start()
            started = time.monotonic()
            first, _ = _start_worker(url, tmp_path, "first")
            workers.append(first)
            # Its queues' workers register one after another: wait for the third, then look
            # again a little later, so that a fourth would be seen.
            _until(lambda: len(_worker_ids(url)) >= 3, "the first worker", 30)
            time.sleep(0.5)
            ids_first = _worker_ids(url)
            assert len(ids_first) == 3, "one procrastinate worker per queue"
            second, second_log = _start_worker(url, tmp_path, "second")
            workers.append(second)
            _until(lambda: len(_worker_ids(url)) == 6, "the second worker", 30)
            watched = f"""SELECT count(*) FROM {SCHEMA}.procrastinate_jobs
                WHERE status = 'doing' AND task_name = '{WATCH_TASK}'
                AND NOT worker_id = ANY(:gone)"""
            _until(lambda: _query(url, watched, gone=[])[0][0] == MAILBOXES, "the watchers", 30)
            time.sleep(1)  # in IDLE by now
            threads.append(threading.Thread(target=_news, args=(dovecot, users, watch.errors)))
            threads[-1].start()
            killed_in = _until(
                lambda: _query(url, MID_SYNC, workers=ids_first), "a sync mid-way", 60
            )
            first.send_signal(signal.SIGKILL)
            first.wait(10)
            killed_at = time.monotonic()

            def arrived() -> bool:
                stored = _stored(url)
                return all(stored.get(name, (0, 0))[0] >= n for name, n in expected.items())

            _until(arrived, "every item", DEADLINE - (time.monotonic() - started))
            _until(
                lambda: _query(url, watched, gone=ids_first)[0][0] == MAILBOXES,
                "every mailbox watched by the worker left",
                DEADLINE,
            )
            finished = time.monotonic()
            second.send_signal(signal.SIGTERM)
            assert second.wait(30) == 0, second_log.read_text()
        finally:
            if watch is not None:
                watch.stop.set()
            for thread in threads:
                thread.join(10)
            for process in workers:
                if process.poll() is None:
                    os.kill(process.pid, signal.SIGKILL)
                    process.wait()
            if web is not None:
                stop_server(web)

        stored = _stored(url)
        assert {name: stored.get(name) for name in expected} == {
            name: (n, n) for name, n in expected.items()
        }, "every item exactly once"
        assert watch.errors == []
        overlaps = [
            (at, name)
            for at, rows in watch.samples
            for name, n in Counter(name for task, name, _ in rows if task == SYNC_TASK).items()
            if n > 1
        ]
        assert overlaps == [], "a connector synced by two workers at once"
        watchers = [
            name
            for _, rows in watch.samples
            for name, n in Counter(name for task, name, _ in rows if task == WATCH_TASK).items()
            if n > 1
        ]
        assert watchers == [], "a mailbox watched twice"
        resumed = {
            name
            for at, rows in watch.samples
            if at > killed_at
            for task, name, worker in rows
            if task == SYNC_TASK and worker not in ids_first
        }
        interrupted = {str(name) for (name,) in killed_in}
        assert interrupted <= resumed, "the killed worker's syncs went on elsewhere"
        assert len(watch.samples) > (finished - started) / SAMPLE_SECONDS / 3
        assert set(watch.health) == {"200"}, watch.health
        assert watch.health["200"] > (finished - started) / 0.2 / 3
        log = second_log.read_text()
        assert "its worker stopped beating; back in the queue" in log
        assert "Traceback" not in log, log
