"""A bare Starlette JSON endpoint, served the way crmhub is: bench/load.py's floor.

    .venv/bin/python bench/bare_app.py --port P [--workers N] [--host 127.0.0.1]

One route, GET /health, answering {"status":"ok"} as crmhub's /api/health does, with no
middleware, database, session or policy. Everything around the application is crmhub's: the
listening sockets are made by hub.server's own code (with N processes one socket each on the
port with SO_REUSEPORT, the same backlog, TCP_NODELAY), the N web processes are forked from one
parent after binding as `crmhub serve --workers N` forks them, uvicorn runs with crmhub's
options, and the collector is tuned as the `crmhub` command tunes it. What load.py's ratio then
compares is crmhub's application work alone.

SIGTERM to the parent (or to its process group) stops every web process; the parent waits for
them.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import signal
import socket
import sys
from pathlib import Path
from types import FrameType

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import uvicorn  # noqa: E402
from starlette.applications import Starlette  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import JSONResponse, Response  # noqa: E402
from starlette.routing import Route  # noqa: E402

from hub.cli_support import UsageError  # noqa: E402
from hub.runtime import tune_gc  # noqa: E402
from hub.server import _listen, _shared  # noqa: E402  # crmhub's sockets, not a copy of them

ANSWER = b'{"status":"ok"}'  # what GET /health answers, byte for byte


async def health(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


def build_app() -> Starlette:
    return Starlette(routes=[Route("/health", health)])


def serve_process(sockets: list[socket.socket]) -> None:
    """One web process, with the uvicorn options of hub.server's web processes."""
    config = uvicorn.Config(
        build_app(),
        log_level="warning",
        log_config=None,
        lifespan="off",
        proxy_headers=True,
        server_header=False,
    )
    gc.collect()
    gc.freeze()  # as crmhub's web processes do before serving
    asyncio.run(uvicorn.Server(config).serve(sockets=sockets))


def serve(host: str, port: int, workers: int) -> int:
    probe = _listen(host, port)
    if workers == 1:
        serve_process(probe)
        return 0
    groups = _shared(probe, host, workers)
    children: list[int] = []
    for number, group in enumerate(groups):
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                for other, sockets in enumerate(groups):
                    if other != number:
                        for sock in sockets:
                            sock.close()
                serve_process(group)
                code = 0
            finally:
                os._exit(code)
        children.append(pid)
    for group in groups:
        for sock in group:
            sock.close()

    def forward(signum: int, _frame: FrameType | None) -> None:
        for pid in children:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGTERM, forward)
    status = 0
    for pid in children:
        _, code = os.waitpid(pid, 0)
        status = status or os.waitstatus_to_exitcode(code)
    return 0 if status < 0 else status  # a process stopped by our SIGTERM ended as asked


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    if args.workers < 1:
        parser.error(f"--workers {args.workers}: expected 1 or more web processes")
    tune_gc()
    try:
        code = serve(args.host, args.port, args.workers)
    except UsageError as e:
        raise SystemExit(f"bare_app: {e}") from e
    sys.exit(code)


if __name__ == "__main__":
    main()
