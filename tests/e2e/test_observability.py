"""Observability the way operations meet it: a load balancer asking /healthz and /readyz,
Prometheus scraping /metrics of `crmhub serve --workers 2` with an admin's API token, a log
collector reading JSON lines, and a cron job running `crmhub status`.

Which web process answered is read from the operating system (psutil), as in
test_serve_workers.py: a kept-alive connection is held by the process that accepted it.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, text

from storage import db
from tests.conftest import PG_URL, private_pg_database
from tests.e2e.conftest import (
    CRMHUB,
    DATA,
    USERS,
    Cli,
    Server,
    crmhub_env,
    free_port,
    launch_server,
    role_tokens,
    seed,
    stop_server,
)
from tests.e2e.test_cli import one_line_error, query
from tests.e2e.test_serve_workers import held_connections, web_processes

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
CLIENTS = 12
WAIT = 90.0  # seconds; the machine is shared, the scheduler passes every second
# One more call for the PBX file, after the first sync: the counter must grow by exactly one.
LATER_CALL = (
    '"","01712233445","201","from-trunk","""Piet"" <01712233445>","PJSIP/t-1","PJSIP/201-1",'
    '"Dial","PJSIP/201,30","2024-01-10 09:00:00","2024-01-10 09:00:04","2024-01-10 09:01:04",'
    '64,60,"ANSWERED","DOCUMENTATION","1704877200.7",""\n'
)


def launch(
    database_url: str, workdir: Path, servers: list[Server], *args: str, **env: str
) -> Server:
    server = launch_server(database_url, workdir, args=args, env=env)
    servers.append(server)
    return server


def execute(database_url: str, *statements: str) -> None:
    engine = create_engine(db.sync_url(database_url))
    try:
        with engine.begin() as conn:
            for statement in statements:
                conn.execute(text(statement))
    finally:
        engine.dispose()


def parse(body: str) -> Samples:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def until(what: str, probe: Callable[[], Any], timeout: float = WAIT) -> Any:
    """Polls `probe` until it returns something true; fails with the last value seen."""
    deadline = time.monotonic() + timeout
    seen = probe()
    while not seen and time.monotonic() < deadline:
        time.sleep(0.2)
        seen = probe()
    assert seen, f"{what}: not within {timeout} s"
    return seen


def admin_token(crmhub: Cli) -> str:
    """Users of every role, made as an operator does; the admin's token for Prometheus."""
    for role, email in USERS.items():
        added = crmhub("users", "add", email, "--role", role)
        assert added.returncode == 0, added.stderr
    made = crmhub("tokens", "create", USERS["admin"])
    assert made.returncode == 0, made.stderr
    return made.stdout.strip().splitlines()[-1]


# Liveness and readiness


def test_healthz_answers_and_readyz_follows_the_schema(
    database_url: str, tmp_path: Path, servers: list[Server]
) -> None:
    db.upgrade(database_url)
    server = launch(database_url, tmp_path, servers, "--workers", "2", "--no-scheduler")
    web_processes(server, 2)
    health = httpx.get(f"{server.url}/healthz", timeout=10)
    assert (health.status_code, health.json()) == (200, {"status": "ok"})
    ready = httpx.get(f"{server.url}/readyz", timeout=10)
    assert (ready.status_code, ready.json()) == (200, {"status": "ready", "schema": db.HEAD})

    behind = f"{int(db.HEAD) - 2:04d}"
    execute(database_url, f"UPDATE alembic_version SET version_num = '{behind}'")
    try:
        # New connections each: both web processes answer some of them.
        answers = [httpx.get(f"{server.url}/readyz", timeout=10) for _ in range(6)]
        live = httpx.get(f"{server.url}/healthz", timeout=10)
    finally:
        execute(database_url, f"UPDATE alembic_version SET version_num = '{db.HEAD}'")
    assert {a.status_code for a in answers} == {503}
    assert answers[0].json() == {
        "status": "unready",
        "error": {
            "code": "migrations_behind",
            "message": f"migrations behind: database at {behind}, code at {db.HEAD}; "
            "run `crmhub db upgrade`",
        },
    }
    assert live.status_code == 200, "liveness never asks the database"
    assert httpx.get(f"{server.url}/readyz", timeout=10).status_code == 200

    ahead = f"{int(db.HEAD) + 1:04d}"  # a newer crmhub migrated it: this one must not serve
    execute(database_url, f"UPDATE alembic_version SET version_num = '{ahead}'")
    try:
        newer = httpx.get(f"{server.url}/readyz", timeout=10)
    finally:
        execute(database_url, f"UPDATE alembic_version SET version_num = '{db.HEAD}'")
    assert newer.status_code == 503
    assert newer.json()["error"]["code"] == "migrations_ahead"
    assert f"database at {ahead}, code at {db.HEAD}" in newer.json()["error"]["message"]
    assert "Traceback" not in server.output()


# Metrics


def scrape(server: Server, token: str, client: httpx.Client | None = None) -> Samples:
    headers = {"Authorization": f"Bearer {token}"}
    if client is not None:
        answer = client.get("/metrics", headers=headers)
    else:
        answer = httpx.get(f"{server.url}/metrics", headers=headers, timeout=20)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    return parse(answer.text)


def ingested(samples: Samples, connector: str, channel: str) -> float:
    found = value(samples, "crmhub_items_ingested_total", connector=connector, channel=channel)
    return found or 0.0


def test_metrics_sum_the_web_processes_and_follow_the_scheduler(
    crmhub: Cli, servers: list[Server]
) -> None:
    """The scheduler syncs in web process 0 only; a scrape answered by either process shows
    its counts, and every process's HTTP requests, summed."""
    workdir, url = crmhub.workdir, crmhub.database_url
    cdr = workdir / "Master.csv"
    cdr.write_text((DATA / "Master.csv").read_text(encoding="utf-8"), encoding="utf-8")
    seed(url, cdr, synced=False)  # mail, calendar and calls: nothing synced yet
    for command in (
        ("connectors", "add", "asterisk-cdr", "gone", "--set", f"path={workdir / 'no.csv'}"),
        ("connectors", "add", "asterisk-cdr", "later", "--set", f"path={cdr}"),
        ("connectors", "set", "later", "--disable"),
    ):
        done = crmhub(*command)
        assert done.returncode == 0, done.stderr
    token = admin_token(crmhub)
    server = launch(url, workdir, servers, "--workers", "2", CRMHUB_SYNC_INTERVAL="1")
    web = web_processes(server, 2)

    def stored(connector: str) -> int:
        sql = f"SELECT count(*) FROM sources WHERE connector = '{connector}'"
        return int(query(url, sql)[0][0])

    def synced() -> Samples | None:
        samples = scrape(server, token)
        states = [
            value(samples, "crmhub_connector_status", connector=c, status="ok")
            for c in ("mail", "calendar", "calls")
        ]
        return samples if states == [1.0, 1.0, 1.0] else None

    def calls_counted(n: int) -> Callable[[], Samples | None]:
        def probe() -> Samples | None:
            samples = scrape(server, token)
            return samples if ingested(samples, "calls", "call") == n else None

        return probe

    until("the scheduler's first pass", synced)
    calls = stored("calls")
    assert calls >= 1
    first = until("the calls counted", calls_counted(calls))
    assert ingested(first, "mail", "email") == stored("mail") > 0

    # Every kept-alive client is held by one process; both hold some.
    port = int(server.url.rsplit(":", 1)[1])
    with ExitStack() as stack:
        clients = [
            stack.enter_context(httpx.Client(base_url=server.url, timeout=20))
            for _ in range(CLIENTS)
        ]
        with ThreadPoolExecutor(CLIENTS) as pool:
            assert set(pool.map(lambda c: c.get("/healthz").status_code, clients)) == {200}
            assert set(pool.map(lambda c: c.get("/healthz").status_code, clients)) == {200}
            held = {p.pid: held_connections(p, port) for p in web}
            scrapes = list(pool.map(lambda c: scrape(server, token, c), clients))
    assert sum(held.values()) == CLIENTS and all(held.values()), held
    for samples in scrapes:
        count = value(
            samples,
            "crmhub_http_request_duration_seconds_count",
            route="/healthz",
            method="GET",
            status="2xx",
        )
        assert count == 2 * CLIENTS, "the requests of both processes, summed"
        assert ingested(samples, "calls", "call") == calls, "the scheduler's process counted"

    # A new call in the PBX file: the next pass stores it, the counter grows by one.
    with cdr.open("a", encoding="utf-8") as handle:
        handle.write(LATER_CALL)
    grown = until("the new call counted", calls_counted(calls + 1))
    assert stored("calls") == calls + 1

    lag = {
        name: value(grown, "crmhub_connector_lag_seconds", connector=name, kind=kind)
        for name, kind in (
            ("mail", "mbox"),
            ("calendar", "ics"),
            ("calls", "asterisk-cdr"),
            ("gone", "asterisk-cdr"),
            ("later", "asterisk-cdr"),
        )
    }
    recent = [lag[name] for name in ("mail", "calendar", "calls")]
    assert all(seconds is not None and 0 <= seconds < 2 * WAIT for seconds in recent), lag
    assert lag["gone"] == lag["later"] == float("inf"), "never synced successfully"
    assert value(grown, "crmhub_connector_status", connector="gone", status="failed") == 1
    assert value(grown, "crmhub_connector_error", connector="gone") == 1
    assert value(grown, "crmhub_connector_error", connector="calls") == 0
    assert value(grown, "crmhub_connector_status", connector="later", status="new") == 1
    assert value(grown, "crmhub_connector_enabled", connector="later") == 0
    assert (value(grown, "crmhub_sync_errors_total", connector="gone") or 0) >= 1
    assert (value(grown, "crmhub_sync_duration_seconds_count", connector="calls") or 0) >= 2
    last = value(grown, "crmhub_connector_last_sync_duration_seconds", connector="calls")
    assert last is not None and last >= 0
    assert value(grown, "crmhub_database_up") == 1
    for status in ("todo", "doing"):
        assert value(grown, "crmhub_queue_jobs", status=status) == 0

    # Routes are templates: a request for one record does not make a series of its own.
    account = httpx.get(
        f"{server.url}/api/accounts/1", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    assert account.status_code in (200, 404)
    routes = {dict(labels).get("route") for _, labels in scrape(server, token)} - {None}
    assert "/api/accounts/{id:int}" in routes
    assert not [r for r in routes if re.search(r"/\d", r or "")], routes
    assert "Traceback" not in server.output()


def test_only_an_admin_may_scrape(crmhub: Cli, servers: list[Server]) -> None:
    admin = admin_token(crmhub)
    tokens = role_tokens(crmhub.database_url)
    server = launch(crmhub.database_url, crmhub.workdir, servers, "--no-scheduler")
    anonymous = httpx.get(f"{server.url}/metrics", timeout=10)
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["code"] == "unauthenticated"
    forged = httpx.get(f"{server.url}/metrics", headers={"Authorization": "Bearer x"}, timeout=10)
    assert forged.status_code == 401
    for role in ("sales", "manager", "callcenter"):
        refused = httpx.get(
            f"{server.url}/metrics",
            headers={"Authorization": f"Bearer {tokens[role]}"},
            timeout=10,
        )
        assert refused.status_code == 403, role
        assert "admin role" in refused.json()["error"]["message"]
    assert tokens["admin"] != admin
    for token in (admin, tokens["admin"]):
        assert value(scrape(server, token), "crmhub_database_up") == 1


def test_queue_depth_counts_procrastinate_jobs_waiting_and_running(
    crmhub: Cli, servers: list[Server]
) -> None:
    """On PostgreSQL with procrastinate's table: its todo and doing jobs, through an index,
    however many finished jobs it keeps. Elsewhere (SQLite): 0, as no queue exists."""
    with ExitStack() as stack:
        url = crmhub.database_url
        expected = {"todo": 0, "doing": 0}
        if PG_URL:
            url = stack.enter_context(private_pg_database("crmhub_queue"))
            expected = _procrastinate_jobs(url, todo=3, doing=2, finished=100_000)
        cli = Cli(url, crmhub.workdir)
        token = admin_token(cli)
        server = launch(url, crmhub.workdir, servers, "--no-scheduler")
        samples = scrape(server, token)
        stop_server(server)
    for status, count in expected.items():
        assert value(samples, "crmhub_queue_jobs", status=status) == count


def _procrastinate_jobs(url: str, *, todo: int, doing: int, finished: int) -> dict[str, int]:
    """procrastinate's own schema, with jobs in each state; the depth query must not scan."""
    import psycopg

    from hub.queue import SCHEMA
    from hub.web.observability import QUEUE_DEPTH, QUEUE_TABLE
    from storage import db

    assert QUEUE_TABLE == f"{SCHEMA}.procrastinate_jobs", "where migration 0020 puts it"
    db.upgrade(url)  # the queue's tables as `crmhub db upgrade` makes them
    plain = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f"SET search_path = {SCHEMA}")
        conn.execute(
            "INSERT INTO procrastinate_jobs (queue_name, task_name, status) "
            "SELECT 'sync', 'crmhub.sync', 'succeeded' FROM generate_series(1, %s)",
            (finished,),
        )
        for status, n in (("todo", todo), ("doing", doing)):
            for i in range(n):
                conn.execute(
                    "INSERT INTO procrastinate_jobs (queue_name, task_name, status, lock) "
                    "VALUES ('sync', 'crmhub.sync', %s, %s)",
                    (status, f"{status}-{i}"),
                )
        conn.execute("ANALYZE procrastinate_jobs")
        plan = "\n".join(row[0] for row in conn.execute("EXPLAIN " + str(QUEUE_DEPTH)))
    assert "Seq Scan" not in plan, plan
    return {"todo": todo, "doing": doing}


def test_a_worker_serves_its_own_counters_on_its_metrics_port(crmhub: Cli) -> None:
    """`crmhub worker --metrics-port P`: the counters of the syncs it ran, scraped from it."""
    seed(crmhub.database_url, synced=False)
    port = free_port()
    log = crmhub.workdir / "worker.log"
    with log.open("wb") as sink:
        worker = subprocess.Popen(
            [str(CRMHUB), "worker", "--metrics-port", str(port)],
            env=crmhub_env(crmhub.database_url, CRMHUB_SYNC_INTERVAL="1"),
            cwd=crmhub.workdir,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:

        def counted() -> Samples | None:
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
            except httpx.TransportError:
                return None
            samples = parse(answer.text)
            calls = query(
                crmhub.database_url, "SELECT count(*) FROM sources WHERE connector = 'calls'"
            )
            stored = int(calls[0][0])
            return samples if stored and ingested(samples, "calls", "call") == stored else None

        samples = until("the worker's sync counted", counted)
        busy = crmhub("worker", "--metrics-port", str(port))
    finally:
        worker.terminate()
        ended = worker.wait(timeout=30)
    assert ended == 0, log.read_text(encoding="utf-8")
    assert (value(samples, "crmhub_sync_duration_seconds_count", connector="calls") or 0) >= 1
    assert ingested(samples, "mail", "email") > 0
    # Cluster figures are the web processes' (they read the database at scrape time).
    assert not [name for name, _ in samples if name.startswith("crmhub_connector_")]
    assert one_line_error(busy).startswith(
        f"crmhub: --metrics-port: cannot listen on 127.0.0.1:{port}: "
    )
    assert "Traceback" not in log.read_text(encoding="utf-8")


# JSON logs


def test_json_logs_carry_the_request_id_on_every_line_of_a_request(
    crmhub: Cli, tmp_path: Path
) -> None:
    token = admin_token(crmhub)
    port = free_port()
    env = crmhub_env(crmhub.database_url, CRMHUB_LOG_FORMAT="json")
    out, err = tmp_path / "serve.out", tmp_path / "serve.err"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        process = subprocess.Popen(
            [str(CRMHUB), "serve", "--port", str(port), "--workers", "2", "--no-scheduler"],
            env=env,
            cwd=tmp_path,
            stdout=stdout,
            stderr=stderr,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        until("the server", lambda: _answers(f"{base}/healthz"), timeout=60)
        refused = httpx.post(f"{base}/hooks/pbx/nope", headers={"X-Request-Id": "abc"}, timeout=10)
        renamed = httpx.post(
            f"{base}/hooks/pbx/nope", headers={"X-Request-Id": "not sane!"}, timeout=10
        )
        execute(crmhub.database_url, "ALTER TABLE audit_log RENAME TO audit_log_away")
        try:
            failed = httpx.get(
                f"{base}/api/audit",
                headers={"Authorization": f"Bearer {token}", "X-Request-Id": "boom-1"},
                timeout=10,
            )
        finally:
            execute(crmhub.database_url, "ALTER TABLE audit_log_away RENAME TO audit_log")
    finally:
        process.terminate()
        assert process.wait(timeout=20) == 0
    assert (refused.status_code, refused.headers["x-request-id"]) == (403, "abc")
    fresh = renamed.headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", fresh)
    assert (failed.status_code, failed.headers["x-request-id"]) == (500, "boom-1")

    lines = [line for line in err.read_text(encoding="utf-8").splitlines() if line.strip()]
    docs = [json.loads(line) for line in lines]  # every line is one JSON object
    assert all({"time", "level", "logger", "message"} <= set(d) for d in docs), docs
    by_id: dict[str, list[dict[str, Any]]] = {}
    for doc in docs:
        by_id.setdefault(doc.get("request_id", ""), []).append(doc)
    assert [(d["level"], d["logger"]) for d in by_id["abc"]] == [("WARNING", "hub.web.refusals")]
    assert "nope" in by_id["abc"][0]["message"]
    assert [d["logger"] for d in by_id[fresh]] == ["hub.web.refusals"]
    failure = by_id["boom-1"]
    assert {d["level"] for d in failure} == {"ERROR"}
    assert any(d["logger"] == "hub.web.app" and "audit_log" in d["exception"] for d in failure)
    assert any(d["logger"].startswith("uvicorn") for d in failure), "uvicorn's lines too"
    assert out.read_text(encoding="utf-8").startswith("crmhub serving on")


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.TransportError:
        return False


# crmhub status


def _columns(line: str, headings: Mapping[str, int]) -> dict[str, str]:
    starts = sorted(headings.values())
    cells = {}
    for name, start in headings.items():
        later = [s for s in starts if s > start]
        cells[name] = line[start : later[0] if later else None].strip()
    return cells


def test_status_prints_the_connector_table_and_fails_for_a_failed_sync(crmhub: Cli) -> None:
    missing = crmhub.workdir / "gone.csv"
    for command in (
        ("connectors", "add", "asterisk-cdr", "calls", "--set", f"path={DATA / 'Master.csv'}"),
        ("connectors", "add", "asterisk-cdr", "gone", "--set", f"path={missing}"),
    ):
        assert crmhub(*command).returncode == 0
    assert crmhub("sync").returncode == 1  # gone fails

    shown = crmhub("status")
    assert shown.returncode == 1, shown.stderr
    lines = shown.stdout.splitlines()
    header = lines[0]
    names = ("NAME", "KIND", "STATE", "LAST SYNC", "LAG", "ITEMS 14D", "LAST ERROR")
    headings = {name: header.index(name) for name in names}
    assert list(headings.values()) == sorted(headings.values())
    rows = {cells["NAME"]: cells for cells in (_columns(line, headings) for line in lines[1:3])}
    assert rows["calls"]["KIND"] == "asterisk-cdr"
    assert rows["calls"]["STATE"] == "ok"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\dZ", rows["calls"]["LAST SYNC"])
    assert rows["calls"]["LAG"].endswith("days")  # the newest call is from 2024
    assert rows["calls"]["LAST ERROR"] == ""
    assert rows["gone"]["STATE"] == "failed"
    assert rows["gone"]["LAG"] == "no items"
    assert str(missing) in rows["gone"]["LAST ERROR"]
    hint = lines[3]
    assert hint.index("hint: ") == headings["LAST ERROR"]
    assert "check the path" in hint
    assert len(lines) == 4

    as_json = crmhub("status", "--json")
    assert as_json.returncode == 1
    doc = json.loads(as_json.stdout)
    assert doc["failing"] == ["gone"]
    assert [c["name"] for c in doc["connectors"]] == ["calls", "gone"]
    assert doc["connectors"][1]["hint"] and doc["connectors"][0]["status"] == "ok"

    assert crmhub("connectors", "set", "gone", "--disable").returncode == 0
    calm = crmhub("status")
    assert calm.returncode == 0, "a disabled connector's old failure alerts nobody"
    assert "failed, disabled" in calm.stdout
    assert "exit status" in crmhub("status", "--help").stdout.lower()


def test_status_without_a_database_is_one_line_and_creates_none(crmhub: Cli) -> None:
    nowhere = crmhub.workdir / "nowhere" / "crmhub.db"
    missing = crmhub("status", env={"CRMHUB_DATABASE_URL": f"sqlite:///{nowhere}"})
    assert one_line_error(missing) == (
        f"crmhub: there is no database at {nowhere} (CRMHUB_DATABASE_URL); run crmhub where "
        "its database is, or set CRMHUB_DATABASE_URL"
    )
    assert not nowhere.exists() and not nowhere.parent.exists()
    closed = crmhub(
        "status",
        env={"CRMHUB_DATABASE_URL": f"postgresql+psycopg://root@127.0.0.1:{free_port()}/x"},
    )
    assert one_line_error(closed).startswith("crmhub: database error: ")
