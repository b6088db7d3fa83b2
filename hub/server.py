"""`crmhub serve`: uvicorn with the web app and, unless disabled, the in-process scheduler."""

from __future__ import annotations

import asyncio
import logging

import uvicorn

from hub.bootstrap import Hub
from hub.jobs import scheduler_loop
from hub.web.app import build_app

log = logging.getLogger(__name__)


def serve(hub: Hub, host: str, port: int, *, scheduler: bool = True, banner: str = "") -> int:
    app = build_app(hub)
    if host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("serving on %s: put TLS in front of crmhub before exposing it", host)

    async def main() -> None:
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level="warning",
            lifespan="off",
            proxy_headers=True,
            forwarded_allow_ips=",".join(hub.settings.trusted_proxies),
            server_header=False,
        )
        server = uvicorn.Server(config)
        tasks = [asyncio.create_task(server.serve())]
        if scheduler:
            tasks.append(asyncio.create_task(scheduler_loop(hub)))
        print(banner or f"crmhub serving on http://{host}:{port}/", flush=True)
        try:
            await tasks[0]
        finally:
            for task in tasks[1:]:
                task.cancel()
            await hub.close()

    asyncio.run(main())
    return 0
