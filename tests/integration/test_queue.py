"""The job queue of scaled-out workers (hub.queue) on the machine's PostgreSQL: what `schedule`
defers, the queueing lock, retries with back-off, a killed worker's jobs back in the queue and
its run claim taken over, an IDLE watcher as a long job against Dovecot; migration 0020; and
`crmhub worker` on SQLite, which has no queue, still running the in-process scheduler.

The queue is PostgreSQL's: those tests skip on SQLite, saying so. The cluster as a whole (two
worker processes, one killed) is tests/e2e/test_cluster.py.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.config import Config as AlembicConfig
from procrastinate.schema import SchemaManager
from sqlalchemy import create_engine, func, select, text, update

from hub.admin import add_connector, change_connector
from hub.bootstrap import Hub
from hub.connector_runs import claim
from hub.queue import (
    SCHEMA,
    SYNC,
    SYNC_TASK,
    TAKEOVER,
    WATCH_TASK,
    ConnectorBusy,
    Queue,
    build_queue,
    conninfo,
    run_queue,
)
from storage import db
from storage.tables import ConnectorRow, SourceRow
from tests.conftest import PG_URL
from tests.e2e.conftest import CRMHUB, crmhub_env
from tests.file_sources import MboxSource
from tests.integration.dovecot import Dovecot, MailUser

# procrastinate's newest schema migration that crmhub has a migration for (0020 applies the
# schema up to it). A release with a newer one fails here: write the migration that applies
# it (see storage/migrations/versions/0020_procrastinate_queue.py), then move this on.
KNOWN_PROCRASTINATE_MIGRATION = "03.04.00_50_post_add_retry_failed_job_procedure.sql"
postgresql_only = pytest.mark.skipif(
    not PG_URL,
    reason="the job queue lives in PostgreSQL: set CRMHUB_TEST_DATABASE_URL to run this test",
)
QUEUE_TABLES = ", ".join(
    f"{SCHEMA}.procrastinate_{table}" for table in ("jobs", "workers", "periodic_defers", "events")
)


@pytest.fixture
async def queue(hub: Hub) -> AsyncIterator[Queue]:
    """The hub's queue, emptied: the session's database keeps jobs of earlier tests."""
    async with hub.sessions() as session, session.begin():
        await session.execute(text(f"TRUNCATE {QUEUE_TABLES} RESTART IDENTITY CASCADE"))
    built = build_queue(hub)
    async with built.app.open_async():
        yield built


async def _jobs(queue: Queue) -> list[dict[str, Any]]:
    """The jobs of connectors (not the periodic ones a worker defers as it starts)."""
    return await queue.app.connector.execute_query_all_async(
        "SELECT id, task_name, args, status::text, lock, queueing_lock, attempts, scheduled_at,"
        f" worker_id FROM procrastinate_jobs WHERE task_name IN ('{SYNC_TASK}', '{WATCH_TASK}')"
        " ORDER BY id"
    )


async def _mbox(hub: Hub, tmp_path: Path, name: str, messages: int = 3) -> MboxSource:
    source = MboxSource(tmp_path / name)
    source.root.mkdir()
    for n in range(1, messages + 1):
        source.add(n)
    await add_connector(hub, "mbox", name, {"path": str(source.path)}, {})
    return source


async def _stored(hub: Hub, connector: str) -> int:
    async with hub.sessions() as session:
        query = select(func.count()).where(SourceRow.connector == connector)
        return int((await session.execute(query)).scalar_one())


async def _until(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        await asyncio.sleep(0.1)


def test_conninfo_puts_the_queue_schema_first_and_keeps_the_url_options() -> None:
    info = conninfo(
        "postgresql+psycopg://crm:s%40cret@db.example:6543/crm"
        "?sslmode=require&options=-c%20statement_timeout%3D5000"
    )
    assert "host=db.example" in info and "port=6543" in info and "dbname=crm" in info
    assert "user=crm" in info and "password=s@cret" in info and "sslmode=require" in info
    assert f"options='-c statement_timeout=5000 -c search_path={SCHEMA}'" in info
    assert conninfo("postgresql://root@127.0.0.1/test").endswith(
        f"options='-c search_path={SCHEMA}'"
    )


def test_crmhub_knows_the_newest_schema_migration_of_the_installed_procrastinate() -> None:
    newest = max(Path(SchemaManager.get_migrations_path()).glob("*.sql")).name
    assert newest == KNOWN_PROCRASTINATE_MIGRATION, (
        "procrastinate changed its schema: crmhub needs a migration that applies it"
    )


def _alembic(url: str, step: Callable[[AlembicConfig], None]) -> None:
    engine = create_engine(db.sync_url(url))
    config = AlembicConfig()
    config.set_main_option("script_location", str(db.MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        step(config)
    engine.dispose()


def _queue_schema(url: str) -> tuple[str | None, int]:
    """The queue schema's comment (None: no such schema) and how many workers it records."""
    engine = create_engine(db.sync_url(url))
    with engine.connect() as connection:
        comment = connection.execute(
            text("SELECT obj_description(oid, 'pg_namespace') FROM pg_namespace WHERE nspname=:s"),
            {"s": SCHEMA},
        ).scalar()
        workers = 0
        if comment is not None:
            workers = connection.execute(
                text(f"SELECT count(*) FROM {SCHEMA}.procrastinate_workers")
            ).scalar_one()
    engine.dispose()
    return comment, workers


def test_migration_0020_is_a_no_op_on_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'q.db'}"
    db.upgrade(url)
    engine = create_engine(url)
    with engine.connect() as connection:
        tables = connection.execute(text("SELECT name FROM sqlite_master")).scalars().all()
    engine.dispose()
    assert db.is_current(url) and not [t for t in tables if "procrastinate" in t]


@postgresql_only
def test_migration_0020_creates_the_queue_once_and_leaves_an_existing_one_alone(
    database_url: str,
) -> None:
    db.upgrade(database_url)
    comment, _ = _queue_schema(database_url)
    assert comment == f"procrastinate up to {KNOWN_PROCRASTINATE_MIGRATION}"
    _alembic(database_url, lambda config: command.downgrade(config, "0020"))  # the later ones
    engine = create_engine(db.sync_url(database_url))
    with engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {QUEUE_TABLES} RESTART IDENTITY CASCADE"))
        connection.execute(text(f"INSERT INTO {SCHEMA}.procrastinate_workers DEFAULT VALUES"))
        connection.execute(text("UPDATE alembic_version SET version_num = '0019'"))
    engine.dispose()
    db.upgrade(database_url, "0020")  # again, on a database that holds the queue
    assert _queue_schema(database_url) == (comment, 1), "left alone, with what it held"
    _alembic(database_url, lambda config: command.downgrade(config, "0019"))
    assert _queue_schema(database_url) == (None, 0)
    db.upgrade(database_url)
    assert _queue_schema(database_url) == (comment, 0)
    assert db.is_current(database_url)


@postgresql_only
async def test_schedule_defers_each_due_sync_once_and_a_watcher_per_watching_connector(
    hub: Hub, queue: Queue, tmp_path: Path
) -> None:
    for name in ("due", "recent", "off"):
        await _mbox(hub, tmp_path, name)
    imap = {"host": "127.0.0.1", "port": "993", "username": "anna@ourco.example"}
    await add_connector(hub, "imap", "mailbox", imap, {"password": "x"})
    await change_connector(hub, "off", {}, enabled=False)
    now = datetime.now(UTC)
    async with hub.sessions() as session, session.begin():
        await session.execute(
            update(ConnectorRow)
            .where(ConnectorRow.name == "recent")
            .values(
                run_started_at=now - timedelta(seconds=60),
                run_beat_at=now - timedelta(seconds=59),
                run_ended_at=now - timedelta(seconds=59),
            )
        )
    assert await queue.schedule(now) == ["sync due", "sync mailbox", "watch mailbox"]
    assert await queue.schedule(now) == [], "deferred already: the queueing locks hold"
    jobs = [(j["task_name"], j["args"], j["lock"], j["status"]) for j in await _jobs(queue)]
    assert jobs == [
        (SYNC_TASK, {"name": "due"}, "due", "todo"),
        (SYNC_TASK, {"name": "mailbox"}, "mailbox", "todo"),
        (WATCH_TASK, {"name": "mailbox"}, "watch:mailbox", "todo"),
    ]
    later = now + timedelta(seconds=300)
    assert await queue.schedule(later) == ["sync recent"], "the others wait in the queue already"


@postgresql_only
async def test_the_queueing_lock_keeps_one_waiting_sync_per_connector(
    hub: Hub, queue: Queue, tmp_path: Path
) -> None:
    await _mbox(hub, tmp_path, "files")
    assert await queue.defer_sync("files")
    assert not await queue.defer_sync("files")
    assert await queue.defer_watch("files"), "a watcher's lock is not the sync's"
    assert [j["queueing_lock"] for j in await _jobs(queue)] == ["files", "watch:files"]


async def _run_syncs(queue: Queue) -> None:
    """One worker over the sync queue until nothing in it is due now."""
    await queue.app.run_worker_async(
        queues=[SYNC],
        wait=False,
        install_signal_handlers=False,
        listen_notify=False,
        delete_jobs="successful",
    )


@postgresql_only
async def test_a_failed_sync_is_retried_with_exponential_back_off_then_succeeds(
    hub: Hub, queue: Queue, tmp_path: Path
) -> None:
    source = MboxSource(tmp_path)
    await add_connector(hub, "mbox", "late", {"path": str(source.path)}, {})  # not there yet
    await queue.defer_sync("late")
    for attempts, wait in ((1, 3), (2, 9)):
        before = datetime.now(UTC)
        await _run_syncs(queue)
        (job,) = await _jobs(queue)
        assert (job["status"], job["attempts"]) == ("todo", attempts)
        delay = (job["scheduled_at"] - before).total_seconds()
        assert wait - 1 < delay <= wait + 1, f"retry {attempts} after {delay:.1f} s"
        await queue.app.connector.execute_query_async(
            "UPDATE procrastinate_jobs SET scheduled_at = now()"
        )
    source.add(1)
    await _run_syncs(queue)
    assert await _jobs(queue) == [], "succeeded, and forgotten: run_queue deletes them so"
    assert await _stored(hub, "late") == 1


@postgresql_only
async def test_a_killed_workers_run_claim_is_taken_over_after_takeover_not_stale(
    hub: Hub, queue: Queue, tmp_path: Path
) -> None:
    await _mbox(hub, tmp_path, "files")
    assert await claim(hub, "files") is not None  # a run of a worker killed right after
    with pytest.raises(ConnectorBusy):
        await queue.sync("files")
    async with hub.sessions() as session, session.begin():
        killed = datetime.now(UTC) - TAKEOVER - timedelta(seconds=1)
        await session.execute(
            update(ConnectorRow).where(ConnectorRow.name == "files").values(run_beat_at=killed)
        )
    await queue.sync("files")
    assert await _stored(hub, "files") == 3


@postgresql_only
async def test_jobs_of_a_worker_that_stopped_beating_go_back_to_the_queue(
    hub: Hub, queue: Queue, tmp_path: Path
) -> None:
    for name in ("one", "two", "three"):
        await _mbox(hub, tmp_path, name)
    manager = queue.app.job_manager
    dead, alive = await manager.register_worker(), await manager.register_worker()
    for name, worker in (("one", dead), ("two", dead), ("three", alive)):
        await queue.defer_sync(name)
        assert await manager.fetch_job(queues=[SYNC], worker_id=worker) is not None
    assert await queue.defer_sync("two"), "a successor waits while the job of two runs"
    await queue.app.connector.execute_query_async(
        "UPDATE procrastinate_workers SET last_heartbeat = now() - interval '1 minute'"
        f" WHERE id = {dead}"
    )
    assert await queue.retry_stalled() == 2
    states = [(j["args"]["name"], j["status"], j["worker_id"]) for j in await _jobs(queue)]
    assert states == [
        ("one", "todo", None),  # back in the queue
        ("two", "aborted", None),  # its successor does the work
        ("three", "doing", alive),  # a live worker's job stays its own
        ("two", "todo", None),
    ]
    workers = await queue.app.connector.execute_query_all_async(
        "SELECT id FROM procrastinate_workers"
    )
    assert [w["id"] for w in workers] == [alive], "the dead worker is forgotten"


def _imap_settings(server: Dovecot, user: MailUser) -> dict[str, str]:
    return server.connector_settings(user, folders="INBOX")


def _mail(n: int) -> bytes:
    return (
        f"From: Kunde <kunde@firma.example>\r\nTo: anna@ourco.example\r\nSubject: Anfrage {n}\r\n"
        f"Message-ID: <q{n}@firma.example>\r\nDate: Mon, 8 Jan 2024 09:{n:02d}:00 +0100\r\n"
        f"\r\nText {n}\r\n"
    ).encode()


@postgresql_only
async def test_a_worker_watches_a_mailbox_as_a_long_job_and_stops_with_its_connector(
    hub: Hub, queue: Queue, dovecot: Dovecot, anna: MailUser
) -> None:
    dovecot.append(anna, "INBOX", _mail(1))
    settings, secrets = _imap_settings(dovecot, anna), {"password": anna.password}
    await add_connector(hub, "imap", "anna", settings, secrets)

    worker = asyncio.create_task(run_queue(hub))

    async def watchers() -> int:
        if worker.done():
            worker.result()  # the worker failed: say why
        jobs = await _jobs(queue)
        return sum(j["task_name"] == WATCH_TASK and j["status"] == "doing" for j in jobs)

    async def stored(count: int) -> bool:
        return await watchers() >= 0 and await _stored(hub, "anna") == count

    async def unwatched() -> bool:
        return await watchers() == 0

    async def watched() -> bool:
        return await watchers() == 1

    try:
        await _until(lambda: stored(1), "the first scheduled sync")
        await _until(watched, "the watcher")
        await asyncio.sleep(1)  # in IDLE by now
        await asyncio.to_thread(dovecot.append, anna, "INBOX", _mail(2))
        # Not the schedule: the next sync of the mailbox is due in 5 minutes.
        await _until(lambda: stored(2), "IDLE to bring the mail", timeout=10)
        await change_connector(hub, "anna", {}, enabled=False)
        await _until(unwatched, "the watcher to end", timeout=20)
    finally:
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)


def test_the_worker_on_sqlite_runs_the_in_process_scheduler_and_says_so(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    source = MboxSource(tmp_path)
    for n in range(1, 4):
        source.add(n)
    env = crmhub_env(url)
    added = subprocess.run(
        [str(CRMHUB), "connectors", "add", "mbox", "files", "--set", f"path={source.path}"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert added.returncode == 0, added.stderr
    worker = subprocess.Popen(
        [str(CRMHUB), "worker"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        engine = create_engine(url)
        deadline = time.monotonic() + 30
        while True:
            with engine.connect() as connection:
                count = connection.execute(text("SELECT count(*) FROM sources")).scalar_one()
            if count == 3 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        engine.dispose()
        worker.send_signal(signal.SIGTERM)
        stdout, stderr = worker.communicate(timeout=30)
    finally:
        if worker.poll() is None:
            os.kill(worker.pid, signal.SIGKILL)
            worker.communicate()
    assert count == 3, "synced by the in-process scheduler"
    assert worker.returncode == 0, stderr
    assert "SQLite has no job queue; running the in-process scheduler" in stdout
    assert "Traceback" not in stderr
