"""`crmhub worker`, the real console script, as a service manager runs and stops it: it takes
the live listener's lease (hub.listener_lease) of an `asterisk-ami` connector, here against
the local manager-interface peer (tests/ami_peer.py; no Asterisk runs in CI), and SIGTERM
ends it cleanly with the lease given back, so that another worker takes over at once.
"""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

from sqlalchemy import create_engine, select

from storage.tables import ConnectorRow
from tests.ami_peer import FakeAmi
from tests.e2e.conftest import CRMHUB, Cli, crmhub_env

SECRET = "ami-secret"


def _holder(database_url: str) -> str | None:
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            query = select(ConnectorRow.listener_holder).where(ConnectorRow.name == "pbx")
            return connection.execute(query).scalar_one()
    finally:
        engine.dispose()


async def _until(check: object, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


async def test_sigterm_stops_the_worker_and_gives_back_its_listener_lease(
    crmhub: Cli, database_url: str, migrated: None, tmp_path: Path
) -> None:
    peer = await FakeAmi("crmhub", SECRET).start()
    try:
        added = await asyncio.to_thread(
            crmhub,
            *("connectors", "add", "asterisk-ami", "pbx"),
            *("--set", "host=127.0.0.1", "--set", f"port={peer.port}"),
            *("--set", "username=crmhub", "--secret", "secret=AMI_SECRET"),
            env={"AMI_SECRET": SECRET},
        )
        assert added.returncode == 0, added.stderr
        worker = await asyncio.create_subprocess_exec(
            str(CRMHUB),
            "worker",
            env=crmhub_env(database_url),
            cwd=tmp_path,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            await _until(lambda: peer.logins == 1, "the worker to log in to the PBX")
            holder = await asyncio.to_thread(_holder, database_url)
            assert holder and f":{worker.pid}:" in holder, holder
            worker.send_signal(signal.SIGTERM)
            _, stderr = await asyncio.wait_for(worker.communicate(), 30)
        finally:
            if worker.returncode is None:
                worker.kill()
                await worker.wait()
        assert worker.returncode == 0, stderr.decode()
        assert "Traceback" not in stderr.decode(), stderr.decode()
        assert await asyncio.to_thread(_holder, database_url) is None, "the lease is given back"
    finally:
        await peer.close()
