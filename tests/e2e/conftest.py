"""End-to-end fixtures: the real `crmhub` console script and a real `crmhub serve` child process.

The e2e tier talks to crmhub only the way users and scripts do, through the command line and
HTTP, so these fixtures start child processes on free loopback ports and stop them by pid. The
HTTP and browser modules share one seeded site per module: their tests only read, and starting a
server plus loading the tests/data files once keeps the tier fast.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, sync_playwright

from config.settings import Settings
from hub.admin import add_connector, import_directory
from hub.bootstrap import Hub, build_hub
from hub.pipeline import sync_all
from storage import db
from storage.tokens import create_token
from storage.users import add_user, user_by_email
from tests.conftest import PG_URL, private_pg_database

CRMHUB = Path(sys.executable).parent / "crmhub"
DATA = Path(__file__).parent.parent / "data"
SECRET_KEY = "e2e-secret-key-0123456789abcdef"
Result = subprocess.CompletedProcess[str]
BROKEN_CDR_ROW = "this,row,is,not,a,call,record\n"
SALES = "sales@ourco.example"  # the user the seeded sites log in as; owns the mail connector
PASSWORD = "correct horse 42"  # of every seeded user
# A user of each role on every seeded site; only the sales user owns a mailbox there.
USERS = {
    "admin": "admin@ourco.example",
    "manager": "manager@ourco.example",
    "sales": SALES,
    "callcenter": "callcenter@ourco.example",
}


def crmhub_env(database_url: str, **extra: str) -> dict[str, str]:
    """The environment an operator would export before running crmhub against this database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRMHUB_")}
    env.update(
        CRMHUB_DATABASE_URL=database_url,
        CRMHUB_INTERNAL_DOMAINS="ourco.example",
        CRMHUB_DEFAULT_REGION="DE",
        CRMHUB_TIMEZONE="Europe/Berlin",
        CRMHUB_SECRET_KEY=SECRET_KEY,
    )
    env.update(extra)
    return env


class Cli:
    """Runs `crmhub ARGS...` in a work directory against one database, as an operator would."""

    def __init__(self, database_url: str, workdir: Path) -> None:
        self.database_url, self.workdir = database_url, workdir

    def _start(self, args: tuple[str, ...], env: dict[str, str] | None) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [str(CRMHUB), *args],
            env=crmhub_env(self.database_url, **(env or {})),
            cwd=self.workdir,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    @staticmethod
    def _finish(process: subprocess.Popen[str]) -> Result:
        try:
            stdout, stderr = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            raise
        return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)

    def __call__(self, *args: str, env: dict[str, str] | None = None) -> Result:
        return self._finish(self._start(args, env))

    def each(self, *commands: tuple[str, ...], env: dict[str, str] | None = None) -> list[Result]:
        """Independent commands side by side: each spends about a second starting Python.

        Only for a database that exists already, so that no two of them create its schema.
        """
        started = [self._start(args, env) for args in commands]
        return [self._finish(process) for process in started]


@pytest.fixture
def crmhub(database_url: str, tmp_path: Path) -> Cli:
    if not CRMHUB.exists():
        pytest.fail(f"{CRMHUB} is missing: install the project with `pip install -e .[test]`")
    return Cli(database_url, tmp_path)


@pytest.fixture
def migrated(database_url: str) -> None:
    """The schema in place before the first command, so that `Cli.each` may run at once."""
    db.upgrade(database_url)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    """A `crmhub serve --no-scheduler` child process and the URL it answers on."""

    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


class ServerDidNotStart(Exception):
    """`crmhub serve` exited or did not answer; the message carries its output."""


def launch_server(
    database_url: str,
    workdir: Path,
    timeout: float = 30.0,
    args: Sequence[str] = ("--no-scheduler",),
    env: Mapping[str, str] | None = None,
) -> Server:
    """`crmhub serve ARGS` answering on a free port, or ServerDidNotStart. In a session of its
    own, so that a test can signal its whole process group as a terminal's Ctrl-C does."""
    port = free_port()
    log = workdir / f"serve-{port}.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [str(CRMHUB), "serve", "--port", str(port), *args],
            env=crmhub_env(database_url, **(env or {})),
            cwd=workdir,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Server(process, f"http://127.0.0.1:{port}", log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServerDidNotStart(
                f"crmhub serve exited with {process.returncode}:\n{server.output()}"
            )
        try:
            if httpx.get(f"{server.url}/api/health", timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            time.sleep(0.05)
    stop_server(server)
    raise ServerDidNotStart(f"crmhub serve did not answer within {timeout} s:\n{server.output()}")


def start_server(database_url: str, workdir: Path, timeout: float = 30.0) -> Server:
    try:
        return launch_server(database_url, workdir, timeout)
    except ServerDidNotStart as e:
        pytest.fail(str(e))


def stop_server(server: Server) -> None:
    if server.process.poll() is None:
        server.process.terminate()
        try:
            server.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    """Servers a test starts (`launch_server`), stopped when it ends, however it ends."""
    started: list[Server] = []
    yield started
    for server in started:
        stop_server(server)


@pytest.fixture
def serve() -> Iterator[Callable[[str, Path], Server]]:
    """Factory: start a server for a database; every server started here is stopped after."""
    started: list[Server] = []

    def start(database_url: str, workdir: Path) -> Server:
        server = start_server(database_url, workdir)
        started.append(server)
        return server

    yield start
    for server in started:
        stop_server(server)


@pytest.fixture(scope="module")
def module_database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A migrated database of the module's own, so a module-wide server never sees a TRUNCATE."""
    if not PG_URL:
        url = f"sqlite:///{tmp_path_factory.mktemp('site') / 'site.db'}"
        db.upgrade(url)
        yield url
        return
    with private_pg_database("crmhub_e2e") as url:
        yield url


@dataclass
class Site:
    """A running server over tests/data, with a user who can log in and an API token."""

    server: Server
    database_url: str
    email: str
    password: str
    token: str
    tokens: dict[str, str]  # an API token per role (USERS)

    @property
    def url(self) -> str:
        return self.server.url


async def _seed(database_url: str, cdr: Path, synced: bool) -> str:
    hub = build_hub(_settings(database_url))
    try:
        result = await import_directory(hub, DATA / "directory.csv")
        assert not result.errors, result.errors
        for kind, name, path, owner in (
            ("mbox", "mail", DATA / "contract.mbox", {"owner": SALES}),  # the sales user's mail
            ("ics", "calendar", DATA / "contract.ics", {}),  # a team calendar: nobody's own
            ("asterisk-cdr", "calls", cdr, {}),  # the PBX: nobody's own
        ):
            await add_connector(hub, kind, name, {"path": str(path), **owner}, {})
        if not synced:
            return ""
        reports = await sync_all(hub)
        assert all(not r.errors for r in reports), [r.error for r in reports]
        async with hub.sessions() as session, session.begin():
            for role, email in USERS.items():
                await add_user(session, email, role, PASSWORD)
        return (await _tokens(hub))["sales"]
    finally:
        await hub.close()


async def _tokens(hub: Hub) -> dict[str, str]:
    async with hub.sessions() as session, session.begin():
        return {
            role: await create_token(session, user)
            for role, email in USERS.items()
            if (user := await user_by_email(session, email)) is not None
        }


def role_tokens(database_url: str) -> dict[str, str]:
    """A fresh API token for each seeded user, by role."""

    async def mint() -> dict[str, str]:
        hub = build_hub(_settings(database_url))
        try:
            return await _tokens(hub)
        finally:
            await hub.close()

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, mint()).result()


def _settings(database_url: str) -> Settings:
    return Settings(
        database_url=database_url,
        internal_domains=["ourco.example"],
        default_region="DE",
        timezone="Europe/Berlin",
        secret_key=SECRET_KEY,
    )


def seed(database_url: str, cdr: Path = DATA / "Master.csv", *, synced: bool = True) -> str:
    """Load tests/data in-process: directory and the connectors mail, calendar and calls.

    With `synced`, also sync them and add a user of each role (USERS); returns the sales
    user's API token.
    Tests whose subject is something else set up this way, not through slower CLI calls. It
    runs in a thread of its own: Playwright's sync API keeps an event loop running in this one.
    """
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, _seed(database_url, cdr, synced)).result()


@pytest.fixture
def configured(database_url: str) -> None:
    """tests/data's directory imported and its three connectors added, nothing synced yet."""
    seed(database_url, synced=False)


@pytest.fixture(scope="module")
def site(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """tests/data synced (plus one unreadable call record, to fill the quarantine) and served."""
    workdir = tmp_path_factory.mktemp("served")
    shutil.copy(DATA / "Master.csv", workdir / "Master.csv")
    with (workdir / "Master.csv").open("a", encoding="utf-8") as handle:
        handle.write(BROKEN_CDR_ROW)
    token = seed(module_database_url, workdir / "Master.csv")
    tokens = {**role_tokens(module_database_url), "sales": token}
    server = start_server(module_database_url, workdir)
    try:
        yield Site(server, module_database_url, SALES, PASSWORD, token, tokens)
    finally:
        stop_server(server)
    assert "Traceback" not in server.output(), f"the server failed a request:\n{server.output()}"


CHROMIUM = Path("/usr/bin/chromium")  # Debian's: Playwright cannot download its own here


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Headless Debian Chromium driven by Playwright; missing Chromium fails, never skips."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
        )
        yield launched
        launched.close()
