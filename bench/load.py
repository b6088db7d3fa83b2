"""Load (issue 17): 50 API clients read timelines and search while an IMAP import runs.

    .venv/bin/python bench/load.py [--size 1000000] [--duration 60] [--baseline-duration 15]
        [--clients 50] [--imap-messages 40000] [--page 21] [--json load.json]
        [--upgrade-cached | --rebuild] [--cache ~/.cache/crmhub-bench]
        [--pg-url postgresql+psycopg://root@127.0.0.1:5432/postgres]

The data set is bench/reads.py's on PostgreSQL (SIZE interactions over SIZE/100 accounts; the
issue's 1,000,000 over 10,000 is the default), built or found cached by its code; --size is its
--sizes with one size. The import writes, so everything runs against a scratch copy
(`CREATE DATABASE crmhub_load_run TEMPLATE <cached set>`), dropped at the end, also after a
failure or Ctrl-C; the cached set itself is only read, as a template.

One run, in this order:
1. a private Dovecot (tests/integration/dovecot.py) gets --imap-messages messages in the bench
   user's INBOX, written straight into its Maildir (bench/imap_vs_mbsync.py's realistic mail,
   2-30 KB, re-addressed: half from contacts of the data set's directory, a quarter from
   unknown people at its customers' domains, a quarter from unknown companies), and an `imap`
   connector for it is added to the copy with `crmhub connectors add`;
2. the real `crmhub serve --no-scheduler` (its default number of web processes) serves the
   copy, and a bare Starlette app with one JSON route (bench/bare_app.py: crmhub's sockets,
   process model and uvicorn options, no application work) runs beside it;
3. the bare endpoint is measured with --clients keep-alive clients for --baseline-duration;
4. the load window: the same clients read a mix of crmhub's API for --duration, each client
   going round all of it (from its own starting point): account timelines (typical accounts
   page 1, the 10,000-item account pages 1 and --page), the 2,000-item contacts' timelines
   (pages 1 and --page), /api/lookup of known callers, /api/interactions?q= with common and
   rare words (bench/reads.py's read paths, each rotating over its accounts, contacts, callers
   or words). `crmhub sync imap-load` starts as a child process when the clients start, and
   is stopped when they end; what it stored by then is counted in the database;
5. the bare endpoint again, as in 3: the baseline is the mean of both.

How to read it. Per path and for the mix: answers, errors, req/s (correct answers per second:
a path's share of the mix), p50 and p99 latency (ms), and throughput with its ratio to the bare
endpoint's. The mix's throughput is its measured req/s. A path's throughput is what the
clients would reach reading only that path at the latency it had in the mix (Little's law: the
mean number of requests in flight over the path's mean latency), so that a path's figure does
not depend on its share of the mix; "timelines" is the five timeline paths together. Where the
server is saturated, a request's latency is mostly its wait behind the others, whatever its
path, and the paths' figures come out close to the mix's. Then CPU per request of crmhub's
processes, of PostgreSQL's backends for the copy (the import's included) and of the clients,
beside the bare app's, and the machine's load average. Then the import: items stored in the
window and items/s; if it finished before the window ended the run says so and fails that
check, as the window was not all under import (on the busy 2-core machine it stored 190-310
items/s under the load at 100,000 items: --imap-messages 40,000 lasts). Targets (issue 17): no
errors, p99 < 50 ms (every path and the mix), throughput >= 1/3 of the bare endpoint's (the
timeline paths, the timelines together and the mix). The machine is shared and noisy: the
ratios to the bare endpoint, measured in the same run, are what compares across runs.

Every answer is checked: status 200, and each distinct answer (by URL, length and CRC-32 of the
body) in full by bench/reads.py's checker for the path (items present, a known caller found),
the bare one byte for byte. A failed answer, a timeout or a dropped connection is counted as an
error of its path and the first few are printed; the run goes on and the check fails.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psutil  # type: ignore[import-untyped]  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402
from sqlalchemy.exc import OperationalError  # noqa: E402

from bench import bare_app, reads  # noqa: E402
from bench import imap_vs_mbsync as corpus  # noqa: E402
from bench import readsdata as data  # noqa: E402
from storage import db  # noqa: E402
from tests.integration.dovecot import Dovecot, DovecotError, MailUser, start_dovecot  # noqa: E402

TARGET_P99_MS = 50.0
TARGET_SHARE = 1 / 3  # of the bare endpoint's throughput
REQUEST_TIMEOUT = 30.0  # seconds; far beyond the target, so a hung request, counted as an error
SHOWN_ERRORS = 5  # printed per measurement; all are counted
COPY = "crmhub_load_run"  # the scratch database
COPY_WAIT = 120.0  # seconds to wait for other sessions to leave the template
CONNECTOR = "imap-load"
PASSWORD_ENV = "BENCH_LOAD_IMAP_PASSWORD"
IMAP_PASSWORD = "bench load password"
WARM = 2.0  # seconds of load before each measurement: every web process has its pool and caches
# What bench/imap_vs_mbsync.py's realistic() writes as the customer's address of message n.
CORPUS_CUSTOMER = "kunde{m700}@firma{m120}.example"
MIX = ("account timeline", "contact timeline", "lookup, known caller", "q=")


# The mailbox the import reads.


def customer(n: int, shape: data.Shape) -> str:
    """Message n's customer address: half contacts of the directory (contact match), a quarter
    unknown people at a customer's domain (account-domain match), a quarter unknown companies
    (unmatched, as the corpus has them)."""
    kind = n % 4
    if kind in (0, 1):
        return data.contact_email(n * 7919 % shape.contacts)
    if kind == 2:
        return f"einkauf{n}@{data.account_domain(n * 31 % shape.accounts)}"
    return CORPUS_CUSTOMER.format(m700=n % 700, m120=n % 120)


def readdressed(raw: bytes, n: int, shape: data.Shape) -> bytes:
    written = CORPUS_CUSTOMER.format(m700=n % 700, m120=n % 120).encode()
    if written not in raw:
        raise RuntimeError(
            f"message {n} of bench/imap_vs_mbsync.py has no {written.decode()}: its addresses "
            "changed, update CORPUS_CUSTOMER in bench/load.py"
        )
    return raw.replace(written, customer(n, shape).encode())


def mailbox(count: int, size: int) -> Iterator[bytes]:
    shape = data.Shape(size)
    for n, raw in enumerate(corpus.messages(count)):
        yield readdressed(raw, n, shape)


# Measuring: keep-alive clients going round a list of paths, every answer checked.


@dataclass
class Tally:
    """One path's answers in one measurement."""

    latencies: list[float] = field(default_factory=list)  # seconds, of correct answers
    errors: int = 0


class Answers:
    """Each path's checker, run once per distinct answer to a URL (by length and CRC-32 of the
    body) rather than on every one: the timelines' pages are tens of KB of JSON, and parsing
    each answer again would take CPU from the server on this 2-core machine. An answer that
    changes (the import adds an item) is new, and checked in full."""

    def __init__(self, checks: list[reads.Check]) -> None:
        self.checks = checks
        self.known: dict[tuple[int, int, int, int], str] = {}
        self.full = 0  # answers checked in full

    def problem(self, path: int, url: int, status: int, body: bytes) -> str:
        """What is wrong with the answer to URL `url` of path `path`; empty when nothing."""
        if status != 200:
            return f"status {status}: {body[:200]!r}"
        key = (path, url, len(body), zlib.crc32(body))
        found = self.known.get(key)
        if found is None:
            self.full += 1
            try:
                found = self.checks[path](body)
            except (ValueError, AttributeError, TypeError) as e:
                found = f"unreadable answer ({type(e).__name__}: {e})"
            if found:
                found = f"{found}: {body[:200]!r}"
            self.known[key] = found
        return found


def schedule_of(paths: list[reads.ReadPath]) -> list[tuple[int, int]]:
    """(path, URL) in turn: every path once before any comes again, each going round its URLs."""
    rounds = max(len(p.urls) for p in paths)
    return [(p, k % len(path.urls)) for k in range(rounds) for p, path in enumerate(paths)]


async def run_clients(
    paths: list[reads.ReadPath], port: int, clients: int, duration: float, shown: list[str]
) -> tuple[list[Tally], float, int]:
    """Tallies per path, wall time and answers checked in full, of `clients` connections going
    round `paths` for `duration` seconds. A failed request is counted and its connection
    replaced (the server may be closing it)."""
    tallies = [Tally() for _ in paths]
    answers = Answers([p.check for p in paths])
    schedule = schedule_of(paths)
    began = time.perf_counter()
    stop_at = began + duration

    def failed(p: int, u: int, why: str) -> None:
        tallies[p].errors += 1
        if len(shown) < SHOWN_ERRORS:
            shown.append(f"{paths[p].name}: {paths[p].urls[u]}: {why}"[:400])
            print(f"  ERROR {shown[-1]}", flush=True)

    async def client(n: int) -> None:
        i = n  # every client starts elsewhere in the schedule
        while time.perf_counter() < stop_at:
            p, u = schedule[i % len(schedule)]
            try:
                async with reads.Connection(port) as conn:
                    while True:
                        p, u = schedule[i % len(schedule)]
                        i += 1
                        sent = time.perf_counter()
                        async with asyncio.timeout(REQUEST_TIMEOUT):
                            status, body = await conn.get(paths[p].requests[u])
                        answered = time.perf_counter()
                        problem = answers.problem(p, u, status, body)
                        if problem:
                            failed(p, u, problem)
                            break
                        tallies[p].latencies.append(answered - sent)
                        if answered >= stop_at:
                            return
            except (TimeoutError, OSError, EOFError, ValueError, asyncio.LimitOverrunError) as e:
                failed(p, u, f"{type(e).__name__}: {e}")

    await asyncio.gather(*(client(n) for n in range(clients)))
    return tallies, time.perf_counter() - began, answers.full


@dataclass
class Window:
    """One measurement of a server."""

    names: list[str]
    tallies: list[Tally]
    seconds: float
    server_cpu: float  # seconds, of the server's processes
    client_cpu: float  # seconds, of this process (the clients)
    checked: int  # answers checked in full
    shown: list[str]  # the first errors


def measure(
    server: reads.Server, paths: list[reads.ReadPath], clients: int, duration: float
) -> Window:
    cpu, own = server.cpu_seconds(), time.process_time()
    shown: list[str] = []
    tallies, seconds, checked = asyncio.run(
        run_clients(paths, server.port, clients, duration, shown)
    )
    return Window(
        [p.name for p in paths],
        tallies,
        seconds,
        server.cpu_seconds() - cpu,
        time.process_time() - own,
        checked,
        shown,
    )


# Figures and verdicts.


@dataclass
class Row:
    path: str
    answers: int  # correct and not
    errors: int
    rps: float  # correct answers per second
    p50_ms: float
    p99_ms: float
    throughput: float  # req/s; of a path or group: in flight / its mean latency (Little's law)
    ratio: float  # throughput / the bare endpoint's


def _row(name: str, tallies: list[Tally], seconds: float, in_flight: float, bare: float) -> Row:
    latencies = sorted(x for t in tallies for x in t.latencies)
    errors = sum(t.errors for t in tallies)
    throughput = in_flight / statistics.fmean(latencies) if latencies else 0.0
    return Row(
        name,
        len(latencies) + errors,
        errors,
        round(len(latencies) / seconds, 1) if seconds else 0.0,
        round(reads.percentile(latencies, 0.50) * 1000, 2) if latencies else 0.0,
        round(reads.percentile(latencies, 0.99) * 1000, 2) if latencies else 0.0,
        round(throughput, 1),
        round(throughput / bare, 4) if bare else 0.0,
    )


def rows_of(window: Window, bare: float) -> list[Row]:
    """A row per path, the timeline paths together (when the mix has others too), the mix.

    The mix's throughput comes out as its measured req/s: the requests in flight on average
    (the sum of latencies over the wall time) over the mean latency of all of them.
    """
    in_flight = sum(x for t in window.tallies for x in t.latencies) / window.seconds
    rows = [
        _row(name, [tally], window.seconds, in_flight, bare)
        for name, tally in zip(window.names, window.tallies, strict=True)
    ]
    timelines = [t for n, t in zip(window.names, window.tallies, strict=True) if "timeline" in n]
    if timelines and len(timelines) < len(window.tallies):
        name = f"timelines ({len(timelines)} paths)"
        rows.append(_row(name, timelines, window.seconds, in_flight, bare))
    name = f"mix ({len(window.tallies)} paths)" if len(window.tallies) > 1 else "mix"
    rows.append(_row(name, window.tallies, window.seconds, in_flight, bare))
    return rows


def bare_baseline(before: Window, after: Window) -> float:
    """The bare endpoint's req/s: the mean of its measurements before and after the load."""
    return statistics.fmean(rows_of(w, 0.0)[-1].rps for w in (before, after))


@dataclass
class Imported:
    """What the IMAP import did during the load window."""

    messages: int
    stored: int  # its items in the database when the window ended (or when it did)
    seconds: float  # from its start to the window's end, or to its own end
    items_per_s: float
    finished_early: bool  # it ended before the window did: part of the window had no import
    exit_code: int | None  # when it ended on its own
    cpu_seconds: float | None  # of its process tree, while it ran in the window
    note: str = ""  # its last lines when it failed


def verdicts(
    rows: list[Row], other_errors: dict[str, int], imported: Imported
) -> list[tuple[str, bool]]:
    """Issue 17's targets, and what makes the measurement valid: no errors in the baseline and
    the warm-ups either (`other_errors`, by measurement), an import running throughout."""
    found = [(f"{what}: {errors} errors", errors == 0) for what, errors in other_errors.items()]
    for r in rows:
        found.append((f"{r.path}: {r.errors} errors", r.errors == 0))
        p99 = f"{r.path}: p99 {r.p99_ms:.1f} ms < {TARGET_P99_MS:.0f} ms"
        found.append((p99, r.answers > r.errors and r.p99_ms < TARGET_P99_MS))
        if "timeline" in r.path or r.path.startswith("mix"):
            found.append(
                (
                    f"{r.path}: throughput {r.throughput:,.1f} req/s = {r.ratio:.3f} of the bare "
                    f"endpoint's >= {TARGET_SHARE:.3f}",
                    r.ratio >= TARGET_SHARE,
                )
            )
    if imported.finished_early:
        what = f"IMAP import ended after {imported.seconds:.1f} s, before the window did"
        if imported.exit_code:
            what += f" (exit status {imported.exit_code}: {imported.note})"
        found.append((what, False))
    else:
        found.append(
            (
                f"IMAP import ran the whole window: {imported.stored:,} items stored, "
                f"{imported.items_per_s:,.0f} items/s",
                imported.stored > 0,
            )
        )
    return found


# The scratch database, the import and the bare app.


@contextlib.contextmanager
def scratch_copy(ds: reads.Dataset, args: argparse.Namespace) -> Iterator[str]:
    """A copy of the cached data set, dropped when the block ends however it ends."""
    url = make_url(ds.url).set(database=COPY).render_as_string(hide_password=False)
    reads.drop(ds, args, url)  # left by a run that was killed
    started = time.monotonic()
    while True:
        try:
            reads._pg_run(args, f'CREATE DATABASE "{COPY}" TEMPLATE "{make_url(ds.url).database}"')
            break
        except OperationalError as e:  # another session is connected to the template
            if time.monotonic() - started > COPY_WAIT:
                raise SystemExit(
                    f"cannot copy {make_url(ds.url).database}: {str(e.orig).strip()} "
                    f"(waited {COPY_WAIT:.0f} s for other sessions to leave it)"
                ) from e
            time.sleep(2)
    print(f"scratch copy {COPY} made in {time.monotonic() - started:,.1f} s", flush=True)
    try:
        yield url
    finally:
        reads.drop(ds, args, url)
        print(f"scratch copy {COPY} dropped", flush=True)


def database_cpu() -> float:
    """CPU seconds so far of the PostgreSQL backends connected to the scratch copy (crmhub's
    and the import's); 0 where PostgreSQL runs on another machine."""
    total = 0.0
    for process in psutil.process_iter(["cmdline"]):
        title = " ".join(process.info["cmdline"] or [])
        if title.startswith("postgres:") and f" {COPY} " in title:
            with contextlib.suppress(psutil.Error):
                times = process.cpu_times()
                total += times.user + times.system
    return total


def crmhub_env(url: str) -> dict[str, str]:
    return {**reads.server_env(url), PASSWORD_ENV: IMAP_PASSWORD}


def add_connector(url: str, server: Dovecot, user: MailUser, workdir: Path) -> None:
    settings = server.connector_settings(user, folders="INBOX", owner=data.SALES)
    command = [str(reads.CRMHUB), "connectors", "add", "imap", CONNECTOR]
    for key, value in settings.items():
        command += ["--set", f"{key}={value}"]
    command += ["--secret", f"password={PASSWORD_ENV}"]
    done = subprocess.run(
        command, env=crmhub_env(url), cwd=workdir, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(
            f"crmhub connectors add failed ({done.returncode}): {done.stderr.strip()[-600:]}"
        )


def stored_items(url: str) -> int:
    engine = create_engine(make_url(url))
    try:
        with engine.connect() as conn:
            found = conn.execute(
                text("SELECT count(*) FROM sources WHERE connector = :c"), {"c": CONNECTOR}
            )
            return int(found.scalar_one())
    finally:
        engine.dispose()


class Import:
    """`crmhub sync imap-load` as a child process in a session of its own (its translation
    workers with it); a thread notes when it ends."""

    def __init__(self, url: str, workdir: Path, messages: int) -> None:
        self.url, self.messages = url, messages
        self.before = stored_items(url)
        self.log = workdir / "sync.log"
        with (workdir / "sync.json").open("wb") as out, self.log.open("wb") as err:
            self.process = subprocess.Popen(
                [str(reads.CRMHUB), "sync", CONNECTOR, "--json"],
                env=crmhub_env(url),
                cwd=workdir,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )
        self.started = time.monotonic()
        self.ended: list[float] = []
        threading.Thread(target=self._watch, daemon=True).start()

    def _watch(self) -> None:
        self.process.wait()
        self.ended.append(time.monotonic())

    def cpu_seconds(self) -> float | None:
        try:
            main = psutil.Process(self.process.pid)
            tree = [main, *main.children(recursive=True)]
            return sum(t.user + t.system for t in (p.cpu_times() for p in tree))
        except psutil.Error:
            return None

    def figures(self, window_end: float) -> Imported:
        """What it stored by now; called when the window ends, before `stop`."""
        cpu = self.cpu_seconds()
        stored = stored_items(self.url) - self.before
        counted = time.monotonic()
        early = bool(self.ended) and self.ended[0] <= window_end
        seconds = (self.ended[0] if early else counted) - self.started
        code = self.process.returncode if early else None
        lines = self.log.read_text(errors="replace").strip().splitlines()
        return Imported(
            self.messages,
            stored,
            round(seconds, 2),
            round(stored / seconds, 1) if seconds else 0.0,
            early,
            code,
            None if cpu is None else round(cpu, 2),
            " | ".join(lines[-3:])[-600:] if code else "",
        )

    def stop(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def start_bare(workers: int, workdir: Path, timeout: float = 60.0) -> reads.Server:
    port = reads.free_port()
    log = workdir / f"bare-{port}.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, str(ROOT / "bench" / "bare_app.py"), "--port", str(port),
             "--workers", str(workers)],
            cwd=workdir,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    bare = reads.Server(process, port, log)
    return reads.answering(bare, "/health", "bench/bare_app.py", timeout)


def bare_answer(body: bytes) -> str:
    return "" if body == bare_app.ANSWER else "not the bare endpoint's answer"


# One run.


@dataclass
class Run:
    workers: int
    fill_seconds: float
    before: Window
    load: Window
    after: Window
    imported: Imported
    warm_errors: dict[str, int]  # of the warm-ups, by what was warmed
    database_cpu: float  # seconds, of PostgreSQL's backends for the copy, in the load window
    load_average: tuple[float, float]  # the machine's (1 minute) at the window's start and end


def run(ds: reads.Dataset, args: argparse.Namespace, workdir: Path) -> Run:
    workers = os.cpu_count() or 1  # `crmhub serve`'s default number of web processes
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(scratch_copy(ds, args))
        try:
            dovecot = stack.enter_context(start_dovecot())
        except DovecotError as e:
            raise SystemExit(f"Dovecot: {e}") from e
        user = dovecot.add_user(data.SALES, IMAP_PASSWORD)
        started = time.monotonic()
        dovecot.fill_maildir(user, "INBOX", mailbox(args.imap_messages, ds.size))
        filled = time.monotonic() - started
        print(
            f"Dovecot: {args.imap_messages:,} messages in the INBOX in {filled:,.1f} s", flush=True
        )
        add_connector(url, dovecot, user, workdir)
        token = asyncio.run(data.tokens(url))[data.SALES]
        found = asyncio.run(reads.ids(url, ds.size))
        crmhub = reads.start_server(url, workdir)
        stack.callback(crmhub.stop)
        bare = start_bare(workers, workdir)
        stack.callback(bare.stop)
        every = reads.read_paths(
            ds.size, found, token, reads.session_cookie(crmhub.port), crmhub.port, args.page
        )
        mix = [p for p in every if p.name.startswith(MIX)]
        health = reads.ReadPath("GET /health", ["/health"], "", bare_answer)
        for server, path in [*((crmhub, p) for p in mix), (bare, health)]:
            path.prepare(server.port)
            try:
                asyncio.run(reads.probe(path, server.port))
            except reads.BadAnswer as e:
                raise SystemExit(f"bench stopped, the answer is wrong before any load: {e}") from e
        print(f"mix: {', '.join(p.name for p in mix)}", flush=True)

        warm_errors: dict[str, int] = {}

        def warm_up(what: str, server: reads.Server, paths: list[reads.ReadPath]) -> None:
            window = measure(server, paths, args.clients, WARM)
            warm_errors[f"warm-up of {what}"] = sum(t.errors for t in window.tallies)

        def baseline(when: str) -> Window:
            warm_up(f"the bare endpoint, {when}", bare, [health])
            window = measure(bare, [health], args.clients, args.baseline_duration)
            row = rows_of(window, 0.0)[-1]
            print(
                f"bare endpoint, {when}: {row.rps:,.0f} req/s, p50 {row.p50_ms:.1f} ms, "
                f"p99 {row.p99_ms:.1f} ms, {row.errors} errors",
                flush=True,
            )
            return window

        before = baseline("before")
        warm_up("crmhub", crmhub, mix)
        sync = Import(url, workdir, args.imap_messages)
        try:
            print(f"load window: {args.duration:.0f} s, IMAP import started", flush=True)
            database, busy = database_cpu(), os.getloadavg()[0]
            load = measure(crmhub, mix, args.clients, args.duration)
            database, busy_after = database_cpu() - database, os.getloadavg()[0]
            imported = sync.figures(time.monotonic())
        finally:
            sync.stop()
        after = baseline("after")
        failures = crmhub.log.read_text(errors="replace").count("Traceback")
        if failures:
            print(f"the server logged {failures} tracebacks: {crmhub.log}", flush=True)
        return Run(
            workers, filled, before, load, after, imported, warm_errors, database,
            (busy, busy_after),
        )  # fmt: skip


# Output.


def print_rows(title: str, rows: list[Row]) -> None:
    print(f"\n== {title} ==")
    print(
        f"{'path':<40} {'answers':>8} {'errors':>6} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'thru/s':>8} {'/bare':>6}"
    )
    for r in rows:
        print(
            f"{r.path:<40} {r.answers:>8,} {r.errors:>6,} {r.rps:>8,.1f} {r.p50_ms:>8.1f} "
            f"{r.p99_ms:>8.1f} {r.throughput:>8,.1f} {r.ratio:>6.3f}"
        )


def per_request_ms(seconds: float, window: Window) -> float:
    answers = sum(len(t.latencies) + t.errors for t in window.tallies)
    return round(seconds * 1000 / answers, 3) if answers else 0.0


def report(args: argparse.Namespace, result: Run, build: dict[str, Any]) -> bool:
    """Print the figures and verdicts, write --json; whether every check passed."""
    bare = bare_baseline(result.before, result.after)
    rows = rows_of(result.load, bare)
    bare_rows = [
        replace(rows_of(w, bare)[-1], path=f"GET /health, {when}")
        for w, when in ((result.before, "before"), (result.after, "after"))
    ]
    imported = result.imported
    title = (
        f"{args.clients} clients, {result.load.seconds:.0f} s, PostgreSQL {args.size:,} items, "
        f"crmhub serve with {result.workers} web processes, IMAP import running"
    )
    print_rows(title, rows)
    print(
        f"\nbare endpoint (GET /health, {result.workers} processes): before "
        f"{bare_rows[0].rps:,.0f} req/s (p99 {bare_rows[0].p99_ms:.1f} ms), after "
        f"{bare_rows[1].rps:,.0f} req/s (p99 {bare_rows[1].p99_ms:.1f} ms), mean {bare:,.0f}"
    )
    cpu = {
        "crmhub_server_ms_per_request": per_request_ms(result.load.server_cpu, result.load),
        "postgresql_ms_per_request": per_request_ms(result.database_cpu, result.load),
        "crmhub_client_ms_per_request": per_request_ms(result.load.client_cpu, result.load),
        "bare_server_ms_per_request": per_request_ms(result.before.server_cpu, result.before),
        "bare_client_ms_per_request": per_request_ms(result.before.client_cpu, result.before),
    }
    print(
        f"CPU per request: crmhub's processes {cpu['crmhub_server_ms_per_request']:.2f} ms "
        f"(the bare app's {cpu['bare_server_ms_per_request']:.2f}), PostgreSQL "
        f"{cpu['postgresql_ms_per_request']:.2f} ms (the import's queries included), the clients "
        f"{cpu['crmhub_client_ms_per_request']:.3f} ms ({cpu['bare_client_ms_per_request']:.3f}); "
        f"answers checked in full: {result.load.checked:,}; the machine's load average "
        f"{result.load_average[0]:.1f} at the window's start, {result.load_average[1]:.1f} at "
        f"its end ({os.cpu_count()} cores)"
    )
    state = (
        f"FINISHED after {imported.seconds:.1f} s, before the window ended"
        if imported.finished_early
        else "still running when the window ended"
    )
    sync_cpu = f", {imported.cpu_seconds:.1f} CPU s" if imported.cpu_seconds is not None else ""
    print(
        f"IMAP import: {imported.stored:,} of {imported.messages:,} messages stored in "
        f"{imported.seconds:.1f} s, {imported.items_per_s:,.0f} items/s{sync_cpu}; {state}"
    )
    other = {f"bare endpoint, {r.path}": r.errors for r in bare_rows} | result.warm_errors
    checks = verdicts(rows, other, imported)
    reads.print_checks("targets of issue 17", checks)
    if args.json:
        doc = {
            "command": " ".join(sys.argv),
            "migration_head": db.HEAD,
            "dataset_version": data.DATASET_VERSION,
            "size": args.size,
            "cores": os.cpu_count(),
            "web_processes": result.workers,
            "clients": args.clients,
            "duration": args.duration,
            "baseline_duration": args.baseline_duration,
            "build": build,
            "imap_fill_seconds": round(result.fill_seconds, 1),
            "rows": [asdict(r) for r in rows],
            "bare": {"before": asdict(bare_rows[0]), "after": asdict(bare_rows[1]), "rps": bare},
            "cpu": cpu,
            "load_average": result.load_average,
            "import": asdict(imported),
            "warm_up_errors": result.warm_errors,
            "errors_shown": {
                "before": result.before.shown,
                "load": result.load.shown,
                "after": result.after.shown,
            },
            "checks": [{"check": what, "pass": passed} for what, passed in checks],
        }
        args.json.write_text(json.dumps(doc, indent=2))
        print(f"figures written to {args.json}")
    return all(passed for _, passed in checks)


def arguments() -> argparse.Namespace:
    parser = reads.bench_arguments(__doc__ or "", clients="50")
    parser.set_defaults(sizes="1000000", databases="postgresql", duration=60.0)
    parser.add_argument(
        "--baseline-duration",
        type=float,
        default=15.0,
        help="seconds of the bare endpoint's measurement, before and after the load",
    )
    parser.add_argument(
        "--imap-messages",
        type=int,
        default=40_000,
        help="messages in the mailbox the IMAP import reads: enough that it runs the whole window",
    )
    parser.add_argument("--page", type=int, default=21, help="the deep page of the timelines")
    args = reads.parsed(parser)
    if len(args.sizes) != 1:
        parser.error("--size: one data set size, e.g. --size 1000000")
    if args.databases != ["postgresql"]:
        parser.error("--databases: the load bench runs on postgresql only")
    if len(args.clients) != 1 or args.clients[0] < 1:
        parser.error("--clients: one number of clients, 1 or more, e.g. --clients 50")
    if args.requests is not None:
        parser.error("--requests: the load bench measures for --duration seconds")
    for name in ("duration", "baseline_duration"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name.replace('_', '-')}: expected seconds, more than 0")
    if args.imap_messages < 1:
        parser.error("--imap-messages: expected 1 or more")
    if args.page < 2:
        parser.error("--page: expected a page after the first, e.g. --page 21")
    args.size, args.clients = args.sizes[0], args.clients[0]
    return args


def _terminated(signum: int, _frame: FrameType | None) -> NoReturn:
    raise SystemExit(f"stopped by signal {signum}")  # the scratch copy, servers go in `finally`


def main() -> None:
    args = arguments()
    signal.signal(signal.SIGTERM, _terminated)
    print(
        f"migration head {db.HEAD}; data set version {data.DATASET_VERSION}; "
        f"{os.cpu_count()} cores",
        flush=True,
    )
    ds = reads.dataset("postgresql", args.size, args)
    build = reads.ensure_built(ds, args)
    workdir = args.cache / "load-run"
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir()
    corpus.compile_crmhub()  # the sync's and the server's start read compiled modules
    result = run(ds, args, workdir)
    if not report(args, result, build):
        sys.exit(1)


if __name__ == "__main__":
    main()
