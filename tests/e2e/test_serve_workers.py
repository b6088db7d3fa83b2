"""`crmhub serve --workers N`: several web processes on one port, the scheduler in one of them.

The server is the real console script. Which process answered is read from the operating
system, not from anything the server says: a kept-alive HTTP connection is held by the process
that accepted it and answers all its requests, and psutil lists each process's connections.
"""

from __future__ import annotations

import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import psutil

from tests.e2e.conftest import (
    PASSWORD,
    SALES,
    Server,
    launch_server,
    seed,
)
from tests.e2e.test_cli import one_line_error, query
from tests.weblogin import login

if TYPE_CHECKING:
    from tests.e2e.conftest import Cli

CONNECTIONS = 12


def launch(database_url: str, workdir: Path, *args: str, **env: str) -> Server:
    return launch_server(database_url, workdir, args=args, env=env)


def web_processes(
    server: Server, count: int, gone: tuple[psutil.Process, ...] = ()
) -> list[psutil.Process]:
    """The server's `count` web processes, none of them `gone` (ended, maybe not yet reaped)."""
    parent = psutil.Process(server.process.pid)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        children = parent.children()
        if len(children) == count and not set(children) & set(gone):
            return children
        time.sleep(0.05)
    raise AssertionError(f"not {count} web processes: {parent.children()}\n{server.output()}")


def held_connections(process: psutil.Process, port: int) -> int:
    return sum(
        1
        for c in process.net_connections(kind="tcp")
        if c.status == psutil.CONN_ESTABLISHED and c.laddr and c.laddr.port == port
    )


def test_two_processes_answer_one_signed_in_user(
    database_url: str, tmp_path: Path, servers: list[Server]
) -> None:
    token = seed(database_url)
    server = launch(database_url, tmp_path, "--workers", "2", "--no-scheduler")
    servers.append(server)
    web = web_processes(server, 2)
    with httpx.Client(base_url=server.url, timeout=10) as browser:
        assert login(browser, SALES, PASSWORD).status_code == 303
        cookies = dict(browser.cookies)
    port = int(server.url.rsplit(":", 1)[1])
    clients = [
        httpx.Client(base_url=server.url, cookies=cookies, timeout=10) for _ in range(CONNECTIONS)
    ]
    try:
        # Each client opens a connection of its own and keeps it alive: it is then held by the
        # process that answered. A session started in one process is honoured in the others.
        with ThreadPoolExecutor(CONNECTIONS) as pool:
            pages = list(pool.map(lambda c: c.get("/accounts"), clients))
            api = list(
                pool.map(
                    lambda c: c.get("/api/accounts", headers={"Authorization": f"Bearer {token}"}),
                    clients,
                )
            )
        assert [p.status_code for p in pages] == [200] * CONNECTIONS
        assert all("Elbe Logistik GmbH" in p.text for p in pages)
        assert [a.status_code for a in api] == [200] * CONNECTIONS
        held = {p.pid: held_connections(p, port) for p in web}
        assert held_connections(psutil.Process(server.process.pid), port) == 0
    finally:
        for client in clients:
            client.close()
    assert sum(held.values()) == CONNECTIONS, held
    assert all(held.values()), f"one process answered every connection: {held}"
    assert server.output().count("crmhub serving on") == 1


def test_the_scheduler_runs_in_one_process_only(crmhub: Cli, servers: list[Server]) -> None:
    """A source whose file is missing fails, and is logged, once per pass: two schedulers would
    log each failure twice, at the same moment."""
    seed(crmhub.database_url)  # synced: the passes find nothing new in the other sources
    missing = crmhub.workdir / "missing.csv"
    added = crmhub("connectors", "add", "asterisk-cdr", "gone", "--set", f"path={missing}")
    assert added.returncode == 0, added.stderr
    database_url, interval = crmhub.database_url, 1.0
    server = launch(database_url, crmhub.workdir, "--workers", "2", CRMHUB_SYNC_INTERVAL="1")
    servers.append(server)
    failure = "connector gone failed"
    before = server.output().count(failure)
    seen: list[float] = []  # when each later failure line appeared, polled every 20 ms
    deadline = time.monotonic() + 6 * interval
    while time.monotonic() < deadline:
        new = server.output().count(failure) - before - len(seen)
        seen += [time.monotonic()] * new
        time.sleep(0.02)
    gaps = [later - earlier for earlier, later in pairwise(seen)]
    assert 3 <= len(seen) <= 7, server.output()
    assert min(gaps) > 0.5 * interval, (gaps, server.output())
    assert "Traceback" not in server.output()
    assert query(database_url, "SELECT count(*) FROM sources") == [(6,)]


def test_sigterm_and_ctrl_c_end_every_process(
    database_url: str, tmp_path: Path, servers: list[Server]
) -> None:
    seed(database_url, synced=False)
    for stop, status in ((lambda s: s.process.terminate(), 0), (_ctrl_c, 130)):
        server = launch(database_url, tmp_path, "--workers", "2")
        servers.append(server)
        web = web_processes(server, 2)
        stop(server)
        assert server.process.wait(timeout=15) == status, server.output()
        assert not psutil.wait_procs(web, timeout=5)[1]
        output = server.output()
        assert "Traceback" not in output and output.count("crmhub serving on") == 1, output


def _ctrl_c(server: Server) -> None:
    """What a terminal does on Ctrl-C: SIGINT to every process of the foreground group."""
    os.killpg(server.process.pid, signal.SIGINT)


def test_a_web_process_that_dies_is_replaced_until_they_keep_dying(
    database_url: str, tmp_path: Path, servers: list[Server]
) -> None:
    server = launch(database_url, tmp_path, "--workers", "2", "--no-scheduler")
    servers.append(server)
    first = web_processes(server, 2)
    first[1].kill()
    replaced = web_processes(server, 2, gone=(first[1],))
    assert first[0] in replaced
    assert httpx.get(f"{server.url}/api/health", timeout=10).status_code == 200
    assert f"(pid {first[1].pid}) was killed by SIGKILL; starting a new one" in server.output()

    seen = set(replaced)
    for _ in range(3):  # four ends so far; the fifth within a minute stops the server
        victim = web_processes(server, 2)[0]
        victim.kill()
        seen.update(web_processes(server, 2, gone=(victim,)))
    web_processes(server, 2)[0].kill()
    assert server.process.wait(timeout=15) == 1
    assert "crmhub: web processes ended 5 times within 60 s" in server.output()
    assert not psutil.wait_procs(seen, timeout=5)[1]


def test_a_bad_worker_count_is_one_line(crmhub: Cli) -> None:
    values = ("0", "-2", "two", "1.5")
    results = crmhub.each(*(("serve", "--workers", value) for value in values))
    for value, result in zip(values, results, strict=True):
        assert one_line_error(result) == (
            f"crmhub: --workers {value!r}: expected a number of web processes, 1 or more"
        )


def test_a_second_server_cannot_join_the_port_of_a_running_one(
    crmhub: Cli, database_url: str, tmp_path: Path, servers: list[Server]
) -> None:
    """The web processes listen with SO_REUSEPORT, which would let another crmhub of the same
    user bind the port too and take half of its connections: it is refused, in one line."""
    seed(database_url)
    server = launch(database_url, tmp_path, "--workers", "2", "--no-scheduler")
    servers.append(server)
    port = server.url.rsplit(":", 1)[1]
    for workers in ("2", "1"):
        result = crmhub("serve", "--port", port, "--workers", workers, "--no-scheduler")
        assert one_line_error(result) == (
            f"crmhub: cannot listen on 127.0.0.1:{port}: Address already in use"
        )
    assert httpx.get(f"{server.url}/api/health", timeout=5).status_code == 200
