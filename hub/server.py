"""`crmhub serve`: the web app in one or several processes, the scheduler in exactly one.

One Python process answers 100-250 timeline requests a second (issue 18), so `--workers N` runs
N web processes, each with a listening socket of its own on the one port (SO_REUSEPORT). They
are forked from this process after the settings were read and the schema checked, and each
wires its own Hub: an engine, a pool or an event loop must not cross a fork. Process 0 also
runs the scheduler, so connectors are synced once, not N times, and refreshes the planner
statistics at start. SQLite in WAL mode
serves the processes' reads side by side.

The parent only supervises: it forwards SIGINT and SIGTERM, and starts a new process for one
that ended unexpectedly, until they end RESTART_LIMIT times within RESTART_WINDOW seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import socket
import sys
import time
from collections import deque
from collections.abc import Iterator
from types import FrameType
from typing import NoReturn

import uvicorn

from hub.bootstrap import Hub, build_hub
from hub.cli_support import UsageError
from hub.jobs import scheduler_loop
from hub.metrics import multiprocess_directory
from hub.web.app import build_app
from storage.maintenance import optimize

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
# A process that keeps dying (a broken database, a bug on every request) is not restarted for
# ever: this many ends within the window stop the server with a message.
RESTART_LIMIT = 5
RESTART_WINDOW = 60.0  # seconds
BACKLOG = 2048  # uvicorn's default


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling.

    uvicorn re-raises a stop signal once it has shut down, which ended the process by SIGTERM
    before the hub was closed. Here `_serve_process` stops the server itself, and in a web
    process of several only the parent's SIGTERM stops it: Ctrl-C reaches every process of the
    terminal's group, and the parent alone decides.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def serve(
    hub: Hub,
    host: str,
    port: int,
    *,
    workers: int = 1,
    scheduler: bool = True,
    banner: str = "",
) -> int:
    """Serve until SIGINT (exit status 130) or SIGTERM (0); one process when `workers` is 1."""
    if host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("serving on %s: put TLS in front of crmhub before exposing it", host)
    sockets = _listen(host, port)
    banner = banner or f"crmhub serving on http://{host}:{port}/"
    if workers == 1:
        print(banner, flush=True)
        return asyncio.run(
            _serve_process(hub, sockets, primary=True, scheduler=scheduler, stop_on=STOP_SIGNALS)
        )
    with multiprocess_directory():  # /metrics in any web process sums them all
        return _Supervisor(hub, _shared(sockets, host, workers), workers, scheduler).run(banner)


def _shared(probe: list[socket.socket], host: str, workers: int) -> list[list[socket.socket]]:
    """Sockets of their own for each web process, on one port (SO_REUSEPORT): the kernel
    spreads new connections over them evenly.

    On one shared socket every process woke for a new connection and the first took all that
    were waiting: 20 keep-alive clients often all went to one process while the other idled
    (bench/reads.py: half the throughput, twice the latency in such runs). `probe`, bound
    without the option, has shown that nothing listens there yet: a second crmhub with the
    option would otherwise join this one's port silently.
    """
    port = probe[0].getsockname()[1]
    for sock in probe:
        sock.close()
    groups: list[list[socket.socket]] = []
    try:
        for _ in range(workers):
            groups.append(_listen(host, port, shared=True))
    except UsageError:
        for group in groups:
            for sock in group:
                sock.close()
        raise
    return groups


def _listen(host: str, port: int, *, shared: bool = False) -> list[socket.socket]:
    """A socket per address of `host`, as uvicorn binds them (`localhost`: IPv4 and IPv6);
    `shared`: one of several on the port (_shared)."""
    sockets: list[socket.socket] = []
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        for family, _, _, _, address in dict.fromkeys(found):
            sock = socket.create_server(address, family=family, backlog=BACKLOG, reuse_port=shared)
            sockets.append(sock)
            # Connections accepted from it inherit this. asyncio sets it only on sockets it
            # made (protocol IPPROTO_TCP, not 0): without it a keep-alive client waited for
            # its delayed ACK (40 ms) between the head and the body of every answer.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError as e:
        for sock in sockets:
            sock.close()
        # create_server's message repeats the address; the error number says it without.
        if e.errno and not isinstance(e, socket.gaierror):
            reason = os.strerror(e.errno)
        else:
            reason = e.strerror or str(e)
        raise UsageError(f"cannot listen on {host}:{port}: {reason}") from e
    return sockets


async def _serve_process(
    hub: Hub,
    sockets: list[socket.socket],
    *,
    primary: bool,
    scheduler: bool,
    stop_on: tuple[signal.Signals, ...],
    lifeline: int | None = None,
) -> int:
    """One web process; the primary one also runs the scheduler and refreshes statistics.

    A second stop signal stops at once, without waiting for requests in flight. `lifeline` is
    the read end of a pipe the parent holds open: its end means the parent is gone.
    """
    app = build_app(hub)
    config = uvicorn.Config(
        app,
        log_level="warning",
        log_config=None,  # uvicorn's lines go through crmhub's handler (hub.logs), JSON too
        lifespan="off",
        proxy_headers=True,
        forwarded_allow_ips=",".join(hub.settings.trusted_proxies),
        server_header=False,
    )
    server = _Server(config)
    stopped_by: list[int] = []

    def stop(signum: int) -> None:
        stopped_by.append(signum)
        server.force_exit = server.should_exit
        server.should_exit = True

    loop = asyncio.get_running_loop()
    for signum in stop_on:
        loop.add_signal_handler(signum, stop, signum)
    if lifeline is not None:

        def orphaned() -> None:
            loop.remove_reader(lifeline)
            stop(signal.SIGTERM)

        loop.add_reader(lifeline, orphaned)
    background = []
    if primary:
        background.append(asyncio.create_task(optimize(hub.engine)))
        if scheduler:
            background.append(asyncio.create_task(scheduler_loop(hub)))
    # Everything built so far (modules, tables, compiled statements) lives as long as the
    # process: frozen, the collector's older generations no longer walk it on every pass,
    # which showed as multi-millisecond pauses in the screen pop's p99 (bench/lookup.py).
    gc.collect()
    gc.freeze()
    try:
        await server.serve(sockets=sockets)
    finally:
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        await app.state.sync_runs.stop()
        await hub.close()
    return 130 if signal.SIGINT in stopped_by else 0


class _Supervisor:
    """The parent of the web processes: starts them, forwards stop signals, replaces the dead.

    The parent never opens the database: what it forks holds no connection, thread or loop.
    """

    def __init__(
        self, hub: Hub, sockets: list[list[socket.socket]], workers: int, scheduler: bool
    ) -> None:
        self.hub, self.sockets, self.workers, self.scheduler = hub, sockets, workers, scheduler
        self.children: dict[int, int] = {}  # pid -> process number; 0 runs the scheduler
        self.stopping: list[int] = []
        self.lifeline = os.pipe()

    def run(self, banner: str) -> int:
        previous = {signum: signal.signal(signum, self._forward) for signum in STOP_SIGNALS}
        try:
            for number in range(self.workers):
                self._start(number)
            print(banner, flush=True)
            return self._watch()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            for fd in self.lifeline:
                os.close(fd)
            for group in self.sockets:
                for sock in group:
                    sock.close()

    def _watch(self) -> int:
        ends: deque[float] = deque(maxlen=RESTART_LIMIT)
        while self.children:
            pid, status = os.waitpid(-1, 0)  # a signal runs _forward, then the wait goes on
            number = self.children.pop(pid, None)
            if number is None or self.stopping:
                continue
            ended = _describe(status)
            ends.append(time.monotonic())
            if len(ends) == RESTART_LIMIT and ends[-1] - ends[0] < RESTART_WINDOW:
                self._forward(signal.SIGTERM, None)
                while self.children:
                    self.children.pop(os.waitpid(-1, 0)[0], None)
                print(
                    f"crmhub: web processes ended {RESTART_LIMIT} times within "
                    f"{RESTART_WINDOW:.0f} s, the last one {ended}; stopped (see the log above)",
                    file=sys.stderr,
                )
                return 1
            log.warning("web process %d (pid %d) %s; starting a new one", number, pid, ended)
            self._start(number)
        return 130 if signal.SIGINT in self.stopping else 0

    def _forward(self, signum: int, _frame: FrameType | None) -> None:
        """A stop signal, forwarded as SIGTERM; a second one stops the processes at once."""
        self.stopping.append(signum)
        for pid in self.children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    def _start(self, number: int) -> None:
        """Fork web process `number`; stop signals wait until its pid is known here."""
        sys.stdout.flush()
        sys.stderr.flush()
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            pid = os.fork()
            if pid == 0:
                self._child(number)
            self.children[pid] = number
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)

    def _child(self, number: int) -> NoReturn:
        """Web process `number`, in the forked child; ends with os._exit, so that nothing the
        parent holds (its atexit work, its buffers) runs twice."""
        code = 1
        try:
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent forwards Ctrl-C
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
            os.close(self.lifeline[1])
            for other, group in enumerate(self.sockets):
                if other != number:  # the parent keeps them for the processes they are for
                    for sock in group:
                        sock.close()
            hub = build_hub(self.hub.settings, migrate=False)
            primary = number == 0
            code = asyncio.run(
                _serve_process(
                    hub,
                    self.sockets[number],
                    primary=primary,
                    scheduler=primary and self.scheduler,
                    stop_on=(signal.SIGTERM,),
                    lifeline=self.lifeline[0],
                )
            )
        except Exception:  # the process edge: say why it ended; the parent starts another
            log.exception("web process %d failed", number)
        finally:
            logging.shutdown()
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)


def _describe(status: int) -> str:
    code = os.waitstatus_to_exitcode(status)
    if code < 0:
        return f"was killed by {signal.Signals(-code).name}"
    return f"exited with status {code}"
