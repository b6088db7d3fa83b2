"""Reads at scale (issue 18): every read path at 1 and 20 clients, beside /api/health.

    .venv/bin/python bench/reads.py [--sizes 100000,1000000] [--databases sqlite,postgresql]
        [--clients 1,20] [--duration 5 | --requests N] [--page 21] [--json reads.json]
        [--rebuild | --upgrade-cached] [--build-only] [--paths review,lookup]
        [--cache ~/.cache/crmhub-bench]
        [--pg-url postgresql+psycopg://root@127.0.0.1:5432/postgres]

The first run builds the data sets (about half an hour per million items and database on the
2-core machine; progress in items/s is printed); later runs find them cached. To develop,
start small: `--sizes 10000 --databases sqlite --page 3 --duration 1`.

For each database and size it builds (or finds cached) a data set of that many interactions
through the project's own loading code (bench/readsdata.py: the directory through `crmhub
directory import`'s code, items through a sync of plugin connectors whose translation is the
real mail, CDR and iCalendar translation), starts the real server (`crmhub serve
--no-scheduler`, with its default number of workers where it has `--workers`) and measures,
with a small asyncio HTTP/1.1 keep-alive client (one connection per simulated client):

- account timeline (GET /api/accounts/{id}/timeline) of typical accounts (page 1: they have
  about 90 items, so no page 21) and of the 10,000-item account (pages 1 and --page, with the
  API's default page size of 50);
- contact timeline (GET /api/contacts/{id}/timeline) of contacts with 2,000 items, pages 1 and
  --page (the cursor of page N is found once, by following next_cursor);
- GET /api/lookup?phone= of known callers (spelled otherwise than stored) and unknown ones;
- GET /api/interactions?q= with a common word (in ~20 % of items) and a rare one (5 items);
- the account page (GET /accounts/{id}), the unmatched page (GET /unmatched), the review queue
  (GET /review and GET /api/review), logged in as the sales user (cookie) or with their token;
- GET /api/health in the same run: the baseline. Each path's throughput is given as a ratio to
  it, which is what compares across runs on this shared, noisy machine.

Each path rotates over several accounts, contacts, callers or words, every client starting at
another one. Every answer must be 200 with the expected content (items where there are items):
anything else stops the bench. Per measurement: p50 and p99 latency (ms), requests/s, CPU ms
per request of the crmhub processes (not of PostgreSQL's); then the growth p99(largest) /
p99(smallest size) and PASS/FAIL against the targets of issue 18 (at the largest size: 1 client
p99 < 20 ms; 20 clients p99 < 150 ms and at least a tenth of health's requests/s; growth <=
1.5x).

Data sets are cached, keyed by readsdata.DATASET_VERSION, the migration head (storage/db.py
HEAD) and the size: SQLite files under --cache, PostgreSQL databases named
crmhub_bench_reads_v<V>_<HEAD>_<SIZE>. A build is made under a temporary name and renamed when
complete; an interrupted build resumes. PostgreSQL gets VACUUM ANALYZE after loading (what
autovacuum does within minutes); SQLite gets nothing the code under test does not do itself.
With --upgrade-cached, a data set missing at this head is a copy of the newest one at an older
head, migrated by `crmhub db upgrade`'s code (a new index or a backfill then costs minutes, not
a reload; the migration's time is printed).
The directory scales with the size (SIZE/100 accounts, SIZE/10 contacts), so every account
has the same number of items at 100k as at 1M: the growth is the tables' size alone.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import psutil  # type: ignore[import-untyped]  # noqa: E402
from sqlalchemy import create_engine, select, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from bench import readsdata as data  # noqa: E402
from hub.bootstrap import build_hub  # noqa: E402
from hub.runtime import tune_gc  # noqa: E402
from hub.web.security import SESSION_COOKIE  # noqa: E402
from storage import db  # noqa: E402
from storage.tables import AccountRow, ContactEmailRow  # noqa: E402
from tests.weblogin import login  # noqa: E402

CRMHUB = Path(sys.executable).parent / "crmhub"  # of the venv running the bench
TARGETS = {"p99_1": 20.0, "p99_20": 150.0, "share_20": 0.1, "growth": 1.5}
ROTATE = 20  # accounts, contacts or callers each path rotates over
REQUEST_TIMEOUT = 300.0  # seconds; a server that takes longer has hung


# Data sets: where they live, and building them once.


@dataclass
class Dataset:
    database: str
    size: int
    url: str
    partial_url: str
    info: Path  # build figures, beside the SQLite files

    @property
    def key(self) -> str:
        return f"v{data.DATASET_VERSION}_{db.HEAD}_{self.size}"


def dataset(database: str, size: int, args: argparse.Namespace) -> Dataset:
    cache: Path = args.cache
    key = f"v{data.DATASET_VERSION}_{db.HEAD}_{size}"
    info = cache / f"reads-{key}-{database}.json"
    if database == "sqlite":
        path = cache / f"reads-{key}.db"
        return Dataset(database, size, f"sqlite:///{path}", f"sqlite:///{path}.partial", info)
    base = make_url(args.pg_url)
    name = f"crmhub_bench_reads_{key}"
    url = base.set(database=name).render_as_string(hide_password=False)
    partial = base.set(database=f"{name}_partial").render_as_string(hide_password=False)
    return Dataset(database, size, url, partial, info)


def _pg_admin(args: argparse.Namespace) -> Any:
    return create_engine(make_url(args.pg_url), isolation_level="AUTOCOMMIT")


def _pg_exists(args: argparse.Namespace, url: str) -> bool:
    engine = _pg_admin(args)
    try:
        with engine.connect() as conn:
            found = conn.execute(
                text("SELECT 1 FROM pg_database WHERE datname = :n"),
                {"n": make_url(url).database},
            )
            return found.scalar() is not None
    finally:
        engine.dispose()


def _pg_run(args: argparse.Namespace, *statements: str) -> None:
    engine = _pg_admin(args)
    try:
        with engine.connect() as conn:
            for statement in statements:
                conn.execute(text(statement))
    finally:
        engine.dispose()


def _sqlite_files(url: str) -> list[Path]:
    path = db.sqlite_path(url)
    assert path is not None
    return [path, *(Path(f"{path}{suffix}") for suffix in ("-wal", "-shm"))]


def exists(ds: Dataset, args: argparse.Namespace, url: str) -> bool:
    if ds.database == "sqlite":
        return _sqlite_files(url)[0].exists()
    return _pg_exists(args, url)


def drop(ds: Dataset, args: argparse.Namespace, url: str) -> None:
    if ds.database == "sqlite":
        for path in _sqlite_files(url):
            path.unlink(missing_ok=True)
    else:
        _pg_run(args, f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')


def ensure_built(ds: Dataset, args: argparse.Namespace) -> dict[str, Any]:
    """The data set, built unless cached; returns its build figures."""
    if args.rebuild:
        drop(ds, args, ds.url)
        drop(ds, args, ds.partial_url)
    if exists(ds, args, ds.url):
        known = json.loads(ds.info.read_text()) if ds.info.exists() else {}
        print(f"{ds.database} {ds.size:,}: cached ({ds.key})", flush=True)
        return {**known, "cached": True}
    older = older_build(ds, args) if args.upgrade_cached else None
    figures = upgrade(ds, args, older) if older else load(ds, args)
    ds.info.write_text(json.dumps(figures, indent=2))
    return {**figures, "cached": False}


def load(ds: Dataset, args: argparse.Namespace) -> dict[str, Any]:
    """Fill the data set through the project's loading code (see bench/readsdata.py)."""
    resumed = exists(ds, args, ds.partial_url)
    if ds.database == "postgresql" and not resumed:
        _pg_run(args, f'CREATE DATABASE "{make_url(ds.partial_url).database}"')
    print(
        f"{ds.database} {ds.size:,}: {'resuming' if resumed else 'building'} {ds.key}",
        flush=True,
    )
    started = time.monotonic()
    syncing = [started, started]  # since, last printed
    fetched_by: dict[str, int] = {}

    def progress(name: str, fetched: int, total: int) -> None:
        now = time.monotonic()
        if name == "directory":
            print(f"  directory: {fetched:,} rows in {now - started:,.0f} s", flush=True)
            syncing[:] = [now, now]
            return
        fetched_by[name] = fetched
        if now - syncing[1] >= 10 or fetched == total:
            items, seconds = sum(fetched_by.values()), now - syncing[0]
            print(
                f"  {ds.database} {ds.size:,}: {name} {fetched:,}/{total:,}; {items:,} items "
                f"in {seconds:,.0f} s, {items / seconds:,.0f} items/s",
                flush=True,
            )
            syncing[1] = now

    tune_gc()  # as the `crmhub` command does
    reports = asyncio.run(data.load(ds.partial_url, ds.size, args.cache, progress))
    loaded = time.monotonic() - syncing[0]
    for r in reports:
        print(
            f"  {r.connector}: fetched {r.fetched:,}, new {r.new:,}, matched {r.matched:,}, "
            f"unmatched {r.unmatched:,}, quarantined {r.quarantined:,}, {r.seconds:,.0f} s",
            flush=True,
        )
    finish(ds, args)
    seconds = time.monotonic() - started
    items_per_s = sum(r.fetched for r in reports) / loaded
    print(
        f"{ds.database} {ds.size:,}: built in {seconds:,.0f} s "
        f"(directory {syncing[0] - started:,.0f} s, items {loaded:,.0f} s: "
        f"{items_per_s:,.0f} items/s)",
        flush=True,
    )
    return {
        "build_seconds": round(seconds, 1),
        "directory_seconds": round(syncing[0] - started, 1),
        "sync_seconds": round(loaded, 1),
        "items_per_s": round(items_per_s, 1),
        "resumed": resumed,
        "reports": [r.as_json() for r in reports],
    }


def finish(ds: Dataset, args: argparse.Namespace) -> None:
    """A complete partial build takes the data set's name."""
    if ds.database == "postgresql":
        engine = create_engine(make_url(ds.partial_url), isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                conn.execute(text("VACUUM ANALYZE"))
        finally:
            engine.dispose()
        name, partial = make_url(ds.url).database, make_url(ds.partial_url).database
        _pg_run(args, f'ALTER DATABASE "{partial}" RENAME TO "{name}"')
    else:
        for source, target in zip(
            _sqlite_files(ds.partial_url), _sqlite_files(ds.url), strict=True
        ):
            if source.exists():
                os.replace(source, target)


def older_build(ds: Dataset, args: argparse.Namespace) -> str | None:
    """The URL of the newest complete build of this data set at an older migration head."""
    prefix, suffix = f"v{data.DATASET_VERSION}_", f"_{ds.size}"
    if ds.database == "sqlite":
        names = [
            p.name.removeprefix("reads-").removesuffix(".db")
            for p in args.cache.glob(f"reads-{prefix}*{suffix}.db")
        ]
    else:
        engine = _pg_admin(args)
        try:
            with engine.connect() as conn:
                rows = conn.execute(text("SELECT datname FROM pg_database")).scalars()
                names = [
                    n.removeprefix("crmhub_bench_reads_")
                    for n in rows
                    if n.startswith("crmhub_bench_reads_")
                ]
        finally:
            engine.dispose()
    heads = sorted(
        n.removeprefix(prefix).removesuffix(suffix)
        for n in names
        if n.startswith(prefix) and n.endswith(suffix)
    )
    heads = [h for h in heads if h < db.HEAD]
    if not heads:
        return None
    key = f"{prefix}{heads[-1]}{suffix}"
    if ds.database == "sqlite":
        return f"sqlite:///{args.cache / f'reads-{key}.db'}"
    return (
        make_url(args.pg_url)
        .set(database=f"crmhub_bench_reads_{key}")
        .render_as_string(hide_password=False)
    )


def upgrade(ds: Dataset, args: argparse.Namespace, older: str) -> dict[str, Any]:
    """A copy of an older build, brought to the newest schema by the project's migrations
    (`crmhub db upgrade`): what an installation that updates crmhub goes through."""
    drop(ds, args, ds.partial_url)
    print(f"{ds.database} {ds.size:,}: upgrading a copy of {older} to {db.HEAD}", flush=True)
    started = time.monotonic()
    if ds.database == "sqlite":
        for source, target in zip(_sqlite_files(older), _sqlite_files(ds.partial_url), strict=True):
            if source.exists():
                shutil.copy(source, target)  # with its mode: the file holds mail (0600)
    else:
        template, copy = make_url(older).database, make_url(ds.partial_url).database
        _pg_run(args, f'CREATE DATABASE "{copy}" TEMPLATE "{template}"')
    copied = time.monotonic()
    db.upgrade(ds.partial_url)
    migrated = time.monotonic()
    finish(ds, args)
    print(
        f"{ds.database} {ds.size:,}: copied in {copied - started:,.0f} s, migrated in "
        f"{migrated - copied:,.0f} s",
        flush=True,
    )
    return {
        "upgraded_from": older,
        "copy_seconds": round(copied - started, 1),
        "migrate_seconds": round(migrated - copied, 1),
    }


# The server.


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_env(url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRMHUB_")}
    settings = data.settings_for(url)
    env.update(
        CRMHUB_DATABASE_URL=url,
        CRMHUB_INTERNAL_DOMAINS=",".join(settings.internal_domains),
        CRMHUB_DEFAULT_REGION=settings.default_region,
        CRMHUB_TIMEZONE=settings.timezone,
        CRMHUB_SECRET_KEY=settings.secret_key,
        PYTHONPATH=str(ROOT),  # the bench's connector kinds, should anything load them
    )
    return env


def workers_option() -> bool:
    """Whether this version of `crmhub serve` has --workers (issue 18 adds it)."""
    done = subprocess.run(
        [str(CRMHUB), "serve", "--help"],
        capture_output=True,
        text=True,
        env=server_env("sqlite:///unused.db"),
    )
    return "--workers" in done.stdout


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)  # its group: workers go with it
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()

    def last_line(self) -> str:
        lines = [ln for ln in self.log.read_text(errors="replace").splitlines() if ln.strip()]
        return lines[-1].strip()[:300] if lines else "the server logged nothing"

    def cpu_seconds(self) -> float:
        """User and system CPU of the server and its worker processes so far."""
        try:
            main = psutil.Process(self.process.pid)
            total = 0.0
            for p in [main, *main.children(recursive=True)]:
                times = p.cpu_times()
                total += times.user + times.system
            return total
        except psutil.NoSuchProcess:
            return 0.0


def start_server(url: str, workdir: Path, timeout: float = 120.0) -> Server:
    port = free_port()
    log = workdir / f"serve-{port}.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [str(CRMHUB), "serve", "--port", str(port), "--no-scheduler"],
            env=server_env(url),
            cwd=workdir,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return answering(Server(process, port, log), "/api/health", "crmhub serve", timeout)


def answering(server: Server, path: str, what: str, timeout: float) -> Server:
    """`server` once `path` answers 200; stopped, and the bench ended with its log, when it
    exits or stays silent for `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            code = server.process.returncode
            raise SystemExit(f"{what} exited with {code}:\n{server.log.read_text()}")
        try:
            url = f"http://127.0.0.1:{server.port}{path}"
            if httpx.get(url, timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            time.sleep(0.1)
    server.stop()
    raise SystemExit(f"{what} did not answer within {timeout} s:\n{server.log.read_text()}")


# The client: HTTP/1.1 keep-alive over asyncio streams, a few microseconds per request.


class BadAnswer(Exception):
    """A read path answered something a benchmark must not time: an error or no data."""


class Connection:
    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def __aenter__(self) -> Connection:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.writer is not None:
            self.writer.close()

    async def get(self, request: bytes) -> tuple[int, bytes]:
        assert self.reader is not None and self.writer is not None
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length, chunked = 0, False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
        if not chunked:
            return status, await self.reader.readexactly(length)
        body = bytearray()
        while size := int((await self.reader.readuntil(b"\r\n")).strip(), 16):
            body += await self.reader.readexactly(size + 2)
            del body[-2:]
        await self.reader.readuntil(b"\r\n")
        return status, bytes(body)


Check = Callable[[bytes], str]  # "" when the answer has what it should, else what is wrong


@dataclass
class ReadPath:
    name: str
    urls: list[str]
    auth: str  # request header line(s), "" for none
    check: Check  # of the first answer to each URL (full); later answers: `quick`
    quick: bytes = b""  # an answer containing this has no data
    requests: list[bytes] = field(default_factory=list)

    def prepare(self, port: int) -> None:
        self.requests = [
            f"GET {u} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{self.auth}\r\n".encode()
            for u in self.urls
        ]


def items_json(body: bytes) -> str:
    items = json.loads(body).get("items")
    return "" if items else "no items"


def lookup_known(body: bytes) -> str:
    doc = json.loads(body)
    return "" if doc.get("contacts") and doc.get("latest") else "no contact or no latest items"


def lookup_unknown(body: bytes) -> str:
    doc = json.loads(body)
    return "" if doc.get("contacts") == [] else f"found contacts {doc.get('contacts')}"


def html_items(body: bytes) -> str:
    return "" if b"/interactions/" in body else "no item links on the page"


def ok(body: bytes) -> str:
    return "" if body else "empty body"


@dataclass
class Stats:
    path: str
    clients: int
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    rps: float
    cpu_ms: float  # CPU of the crmhub processes per request
    client_cpu_ms: float  # CPU of this client per request: it shares the machine's cores
    error: str = ""  # what went wrong instead: the figures are then void


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest rank: the smallest value with at least q of the values at or below it."""
    return sorted_values[max(0, math.ceil(q * len(sorted_values)) - 1)]


async def run_clients(
    path: ReadPath, port: int, clients: int, duration: float, requests: int | None
) -> tuple[list[float], float]:
    """Latencies (s) and wall time of `clients` connections reading `path` in turn."""
    latencies: list[float] = []
    issued = 0
    stop_at = 0.0

    async def client(n: int) -> None:
        nonlocal issued
        async with Connection(port) as conn:
            i = n
            while True:
                if requests is not None and issued >= requests:
                    return
                issued += 1
                request = path.requests[i % len(path.requests)]
                began = time.perf_counter()
                async with asyncio.timeout(REQUEST_TIMEOUT):
                    status, body = await conn.get(request)
                ended = time.perf_counter()
                if status != 200 or not body or (path.quick and path.quick in body):
                    raise BadAnswer(
                        f"{path.name}: {path.urls[i % len(path.urls)]} answered {status}: "
                        f"{body[:300]!r}"
                    )
                latencies.append(ended - began)
                i += 1
                if requests is None and ended >= stop_at:
                    return

    began = time.perf_counter()
    stop_at = began + duration
    await asyncio.gather(*(client(n) for n in range(clients)))
    return latencies, time.perf_counter() - began


def measure(
    path: ReadPath, server: Server, clients: int, duration: float, requests: int | None
) -> Stats:
    """One measurement; a bad answer under load (a 500, a timeout) is its result, with the
    server's last log line, so that the other paths are still measured."""
    cpu, own = server.cpu_seconds(), time.process_time()
    try:
        latencies, seconds = asyncio.run(
            run_clients(path, server.port, clients, duration, requests)
        )
    except (BadAnswer, TimeoutError, OSError, asyncio.IncompleteReadError) as e:
        why = str(e) or type(e).__name__
        return Stats(path.name, clients, 0, 0, 0, 0, 0, 0, 0, f"{why} [{server.last_line()}]")
    cpu, own = server.cpu_seconds() - cpu, time.process_time() - own
    latencies.sort()
    n = len(latencies)
    return Stats(
        path.name,
        clients,
        n,
        round(seconds, 3),
        round(percentile(latencies, 0.50) * 1000, 2),
        round(percentile(latencies, 0.99) * 1000, 2),
        round(n / seconds, 1),
        round(cpu * 1000 / n, 2),
        round(own * 1000 / n, 3),
    )


async def probe(path: ReadPath, port: int) -> None:
    """Every URL once, its answer checked in full: a bench of 404s or empty pages is void."""
    async with Connection(port) as conn:
        for url, request in zip(path.urls, path.requests, strict=True):
            status, body = await conn.get(request)
            problem = f"status {status}" if status != 200 else path.check(body)
            if problem:
                raise BadAnswer(f"{path.name}: {url}: {problem}: {body[:300]!r}")


async def deep_cursor(port: int, auth: str, url: str, page: int) -> str:
    """`url` with the cursor of page `page`, found by following next_cursor from page 1."""
    async with Connection(port) as conn:
        cursor = None
        for n in range(1, page):
            target = url + (f"?cursor={cursor}" if cursor else "")
            request = f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{auth}\r\n".encode()
            status, body = await conn.get(request)
            if status != 200:
                raise BadAnswer(f"{target}: status {status}: {body[:300]!r}")
            cursor = json.loads(body)["next_cursor"]
            if not cursor:
                raise BadAnswer(f"{url} has no page {n + 1}: the data set is too small")
    return f"{url}?cursor={cursor}"


# Which rows to read.


def phone_spellings(area: str, number: str) -> list[str]:
    """Not as stored ("+49 221 5000123"): how a call center's phone system hands it over."""
    return [f"0{area} {number}", f"+49{area}{number}", f"0{area}/{number[:3]}-{number[3:]}"]


async def ids(url: str, size: int) -> dict[str, Any]:
    plan = data.plan_of(size)
    hub = build_hub(data.settings_for(url), migrate=False)
    try:
        async with hub.sessions() as session:
            names = [data.account_name(a) for a in [0, *plan.typical_accounts(ROTATE)]]
            accounts = dict(
                (
                    await session.execute(
                        select(AccountRow.name, AccountRow.id).where(AccountRow.name.in_(names))
                    )
                ).all()
            )
            emails = [data.contact_email(c) for c in plan.heavy_contacts()]
            contacts = dict(
                (
                    await session.execute(
                        select(ContactEmailRow.address, ContactEmailRow.contact_id).where(
                            ContactEmailRow.address.in_(emails)
                        )
                    )
                ).all()
            )
    finally:
        await hub.close()
    missing = [n for n in names if n not in accounts] + [e for e in emails if e not in contacts]
    if missing:
        raise SystemExit(f"the data set lacks {missing[:5]}: rebuild it (--rebuild)")
    return {
        "big": accounts[names[0]],
        "typical": [accounts[n] for n in names[1:]],
        "heavy": [contacts[e] for e in emails],
    }


def read_paths(
    size: int, found: dict[str, Any], token: str, cookie: str, port: int, page: int
) -> list[ReadPath]:
    plan = data.plan_of(size)
    bearer = f"Authorization: Bearer {token}\r\n"
    session = f"Cookie: {SESSION_COOKIE}={cookie}\r\n"
    known = [
        quote(spelled)
        for n, c in enumerate(plan.known_callers(ROTATE))
        for spelled in [phone_spellings(*data.contact_phone(c))[n % 3]]
    ]
    unknown = [quote(phone_spellings(*data.unknown_phone(k))[k % 3]) for k in range(ROTATE)]
    typical = [f"/api/accounts/{a}/timeline" for a in found["typical"]]
    big = f"/api/accounts/{found['big']}/timeline"
    heavy = [f"/api/contacts/{c}/timeline" for c in found["heavy"]]
    deep = f"page {page}"

    def cursors(urls: list[str]) -> list[str]:
        return [asyncio.run(deep_cursor(port, bearer, u, page)) for u in urls]

    items = b'"items":[]'
    return [
        ReadPath("account timeline, typical, page 1", typical, bearer, items_json, items),
        ReadPath("account timeline, 10k items, page 1", [big], bearer, items_json, items),
        ReadPath(f"account timeline, 10k items, {deep}", cursors([big]), bearer, items_json, items),
        ReadPath("contact timeline, 2k items, page 1", heavy, bearer, items_json, items),
        ReadPath(f"contact timeline, 2k items, {deep}", cursors(heavy), bearer, items_json, items),
        ReadPath(
            "lookup, known caller",
            [f"/api/lookup?phone={p}" for p in known],
            bearer,
            lookup_known,
            b'"latest":[]',
        ),
        ReadPath(
            "lookup, unknown caller",
            [f"/api/lookup?phone={p}" for p in unknown],
            bearer,
            lookup_unknown,
        ),
        ReadPath(
            "q=, common word",
            [f"/api/interactions?q={w}" for w in data.COMMON],
            bearer,
            items_json,
            items,
        ),
        ReadPath(
            "q=, rare word",
            [f"/api/interactions?q={w}" for w in data.RARE],
            bearer,
            items_json,
            items,
        ),
        ReadPath(
            "account page (HTML)",
            [f"/accounts/{a}" for a in found["typical"]],
            session,
            html_items,
        ),
        ReadPath("unmatched page (HTML)", ["/unmatched"], session, html_items),
        ReadPath("review queue (HTML)", ["/review"], session, html_items),
        ReadPath("review queue (API)", ["/api/review"], bearer, items_json, items),
    ]


# One run: a data set served, every path measured.


def session_cookie(port: int) -> str:
    with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
        answer = login(client, data.SALES, data.PASSWORD)
        if answer.status_code not in (200, 303) or SESSION_COOKIE not in client.cookies:
            raise SystemExit(f"login as {data.SALES} failed: {answer.status_code}")
        return str(client.cookies[SESSION_COOKIE])


def run_one(ds: Dataset, args: argparse.Namespace, workdir: Path) -> list[Stats]:
    token = asyncio.run(data.tokens(ds.url))[data.SALES]
    found = asyncio.run(ids(ds.url, ds.size))
    server = start_server(ds.url, workdir)
    try:
        cookie = session_cookie(server.port)
        paths = read_paths(ds.size, found, token, cookie, server.port, args.page)
        if args.paths:
            paths = [p for p in paths if any(w in p.name for w in args.paths)]
        health = ReadPath("health", ["/api/health"], "", ok)
        for path in (health, *paths):
            path.prepare(server.port)
            asyncio.run(probe(path, server.port))
        results: list[Stats] = []
        warm = min(1.0, args.duration / 4)
        ordered = [health, *paths, health]  # health first and last: the baseline is their mean
        for path in ordered:
            warmed = measure(path, server, max(args.clients), warm, None)  # every worker warm
            for clients in args.clients:
                if warmed.error:
                    stats = replace(warmed, clients=clients, error=f"warming up: {warmed.error}")
                else:
                    stats = measure(path, server, clients, args.duration, args.requests)
                results.append(stats)
                where = f"  {ds.database} {ds.size:>9,} {stats.path:<40} {clients:>3} clients:"
                if stats.error:
                    print(f"{where} ERROR {stats.error}", flush=True)
                    continue
                print(
                    f"{where} p50 {stats.p50_ms:8.1f} ms, p99 {stats.p99_ms:8.1f} ms, "
                    f"{stats.rps:8,.0f} req/s, {stats.cpu_ms:7.1f} crmhub CPU ms/req, "
                    f"{stats.client_cpu_ms:.2f} client CPU ms/req "
                    f"({stats.requests:,} requests)",
                    flush=True,
                )
    finally:
        server.stop()
    failures = server.log.read_text(errors="replace").count("Traceback")
    if failures:
        print(f"  the server logged {failures} tracebacks: {server.log}", flush=True)
    return results


def baseline(results: list[Stats]) -> dict[int, float]:
    """Health's requests/s per client count: the mean of its first and last measurement."""
    runs: dict[int, list[float]] = {}
    for s in results:
        if s.path == "health":
            runs.setdefault(s.clients, []).append(s.rps)
    return {c: sum(v) / len(v) for c, v in runs.items()}


@dataclass
class Row:
    database: str
    size: int
    path: str
    clients: int
    p50_ms: float
    p99_ms: float
    rps: float
    ratio: float  # to health's requests/s at the same number of clients
    cpu_ms: float  # crmhub's CPU per request
    client_cpu_ms: float
    requests: int
    error: str = ""


def rows_of(database: str, size: int, results: list[Stats]) -> list[Row]:
    base = baseline(results)
    seen: set[tuple[str, int]] = set()
    rows = []
    for s in results:
        if (s.path, s.clients) in seen:  # health's second run is in the baseline
            continue
        seen.add((s.path, s.clients))
        ratio = s.rps / base[s.clients] if base.get(s.clients) else 0.0
        rows.append(
            Row(
                database,
                size,
                s.path,
                s.clients,
                s.p50_ms,
                s.p99_ms,
                s.rps if s.path != "health" else round(base[s.clients], 1),
                round(ratio if s.path != "health" else 1.0, 4),
                s.cpu_ms,
                s.client_cpu_ms,
                s.requests,
                s.error,
            )
        )
    return rows


def print_table(database: str, rows: list[Row]) -> None:
    print(f"\n== {database} ==")
    print(
        f"{'path':<40} {'size':>9} {'clients':>7} {'p50 ms':>9} {'p99 ms':>9} {'req/s':>8} "
        f"{'/health':>8} {'hub CPU ms':>10}"
    )
    for r in rows:
        where = f"{r.path:<40} {r.size:>9,} {r.clients:>7}"
        if r.error:
            print(f"{where} ERROR {r.error[:200]}")
            continue
        print(
            f"{where} {r.p50_ms:>9.1f} {r.p99_ms:>9.1f} {r.rps:>8,.1f} {r.ratio:>8.3f} "
            f"{r.cpu_ms:>10.1f}"
        )


def _checks(r: Row, health: dict[int, float]) -> list[tuple[str, bool]]:
    """Issue 18's targets for one measurement at the largest size."""
    if r.error:
        return [(f"error: {r.error[:200]}", False)]
    found = []
    if r.clients == 1:
        limit = TARGETS["p99_1"]
        found.append((f"p99 {r.p99_ms:.1f} ms < {limit:.0f} ms", r.p99_ms < limit))
    if r.clients == 20:
        limit = TARGETS["p99_20"]
        found.append((f"p99 {r.p99_ms:.1f} ms < {limit:.0f} ms", r.p99_ms < limit))
        share = TARGETS["share_20"] * health.get(20, math.inf)
        found.append((f"{r.rps:,.1f} req/s >= health's / 10 ({share:,.1f})", r.rps >= share))
    return found


def verdicts(rows: list[Row]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Growth per path and client count, and PASS/FAIL against issue 18's targets at the
    largest size measured."""
    growth: list[dict[str, Any]] = []
    judged: list[dict[str, Any]] = []
    by_key = {(r.database, r.size, r.path, r.clients): r for r in rows}
    for database in sorted({r.database for r in rows}):
        sizes = sorted({r.size for r in rows if r.database == database})
        small, large = sizes[0], sizes[-1]
        mine = [r for r in rows if r.database == database and r.size == large]
        health = {r.clients: r.rps for r in mine if r.path == "health"}
        for r in (r for r in mine if r.path != "health"):
            checks = _checks(r, health)
            before = by_key.get((database, small, r.path, r.clients))
            if before and small != large and not (r.error or before.error) and before.p99_ms:
                ratio = r.p99_ms / before.p99_ms
                growth.append(
                    {"database": database, "path": r.path, "clients": r.clients,
                     "small": small, "large": large, "p99_small_ms": before.p99_ms,
                     "p99_large_ms": r.p99_ms, "growth": round(ratio, 2),
                     "p50_growth": round(r.p50_ms / before.p50_ms, 2) if before.p50_ms else None}
                )  # fmt: skip
                target = TARGETS["growth"]
                checks.append((f"growth {ratio:.2f}x <= {target}x", ratio <= target))
            judged += [
                {"database": database, "size": large, "path": r.path, "clients": r.clients,
                 "check": what, "pass": passed}
                for what, passed in checks
            ]  # fmt: skip
    return growth, judged


def print_verdicts(growth: list[dict[str, Any]], judged: list[dict[str, Any]]) -> None:
    if growth:
        print("\n== growth of p99 from the smallest to the largest size (and of p50) ==")
        print(
            f"{'database':<11} {'path':<40} {'clients':>7} {'p99 small':>9} {'p99 large':>9} "
            f"{'x':>6} {'p50 x':>6}"
        )
        for g in growth:
            p50 = f"{g['p50_growth']:>6.2f}" if g["p50_growth"] else f"{'-':>6}"
            print(
                f"{g['database']:<11} {g['path']:<40} {g['clients']:>7} "
                f"{g['p99_small_ms']:>9.1f} {g['p99_large_ms']:>9.1f} {g['growth']:>6.2f} {p50}"
            )
    checks = [
        (f"{j['database']:<11} {j['path']:<40} {j['clients']:>3} clients: {j['check']}", j["pass"])
        for j in judged
    ]
    print_checks("targets of issue 18 at the largest size", checks)


def print_checks(title: str, checks: list[tuple[str, bool]]) -> None:
    """A bench's verdicts, one line each, and how many pass."""
    print(f"\n== {title} ==")
    for what, passed in checks:
        print(f"{'PASS' if passed else 'FAIL'} {what}")
    failed = sum(not passed for _, passed in checks)
    print(f"\n{len(checks) - failed} of {len(checks)} checks pass")


def bench_arguments(description: str, clients: str) -> argparse.ArgumentParser:
    """The options every bench over these data sets takes (this one's, bench/lookup.py's)."""
    parser = argparse.ArgumentParser(description=description.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--clients", default=clients)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per measurement")
    parser.add_argument("--requests", type=int, help="requests per measurement, not --duration")
    parser.add_argument("--rebuild", action="store_true", help="build the data sets anew")
    parser.add_argument(
        "--upgrade-cached",
        action="store_true",
        help="no data set at this migration head: migrate a copy of one at an older head "
        "instead of loading anew",
    )
    parser.add_argument("--json", type=Path, help="write the figures here as JSON")
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "crmhub-bench")
    parser.add_argument("--pg-url", default="postgresql+psycopg://root@127.0.0.1:5432/postgres")
    return parser


def parsed(parser: argparse.ArgumentParser) -> argparse.Namespace:
    """The options read, the lists split, the cache made; a one-line error for a bad one."""
    args = parser.parse_args()
    args.sizes = sorted(int(s) for s in args.sizes.split(","))
    args.databases = [d.strip() for d in args.databases.split(",")]
    args.clients = [int(c) for c in args.clients.split(",")]
    unknown = set(args.databases) - {"sqlite", "postgresql"}
    if unknown:
        parser.error(f"--databases: {', '.join(sorted(unknown))}: use sqlite and postgresql")
    args.cache.mkdir(parents=True, exist_ok=True)
    return args


def main() -> None:
    parser = bench_arguments(__doc__, clients="1,20")
    parser.add_argument("--page", type=int, default=21, help="the deep page of the timelines")
    parser.add_argument("--build-only", action="store_true", help="build, measure nothing")
    parser.add_argument(
        "--paths",
        type=lambda text: [w.strip() for w in text.split(",") if w.strip()],
        help="measure only the read paths whose name contains one of these comma-separated "
        "words (health is always measured), e.g. --paths review,lookup",
    )
    args = parsed(parser)
    workers = workers_option()
    print(
        f"crmhub serve: {'--workers exists, its default used' if workers else 'no --workers'}; "
        f"migration head {db.HEAD}; data set version {data.DATASET_VERSION}; "
        f"{os.cpu_count()} cores",
        flush=True,
    )
    builds, rows = [], []
    for database in args.databases:
        for size in args.sizes:
            ds = dataset(database, size, args)
            builds.append({"database": database, "size": size, **ensure_built(ds, args)})
    if args.build_only:
        return
    workdir = Path(args.cache) / "run"
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir()
    for database in args.databases:
        for size in args.sizes:
            try:
                results = run_one(dataset(database, size, args), args, workdir)
            except BadAnswer as e:  # the setup is wrong: nothing measured would mean anything
                raise SystemExit(f"bench stopped, {database} {size:,}: {e}") from e
            rows += rows_of(database, size, results)
    for database in args.databases:
        print_table(database, [r for r in rows if r.database == database])
    growth, judged = verdicts(rows)
    print_verdicts(growth, judged)
    if args.json:
        doc = {
            "command": " ".join(sys.argv),
            "migration_head": db.HEAD,
            "dataset_version": data.DATASET_VERSION,
            "workers_option": workers,
            "cores": os.cpu_count(),
            "builds": builds,
            "rows": [asdict(r) for r in rows],
            "growth": growth,
            "checks": judged,
        }
        args.json.write_text(json.dumps(doc, indent=2))
        print(f"figures written to {args.json}")
    errors = [r for r in rows if r.error]
    if errors:
        print(f"\n{len(errors)} measurements FAILED with an error (see ERROR above)")
        sys.exit(1)


if __name__ == "__main__":
    main()
