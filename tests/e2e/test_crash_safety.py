"""Kill `crmhub sync` with SIGKILL mid-import, run it again: nothing lost, nothing duplicated,
and nothing of the killed run left running."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import psutil

from hub.demo_data import write_demo_files

CLI = [sys.executable, "-m", "hub"]


def _env(db: Path) -> dict[str, str]:
    return dict(
        os.environ,
        CRMHUB_DATABASE_URL=f"sqlite:///{db}",
        CRMHUB_INTERNAL_DOMAINS="nordwind-systeme.example",
        CRMHUB_SECRET_KEY="crash-test-secret-0123456789",
    )


def _run(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], env=_env(db), capture_output=True, text=True, timeout=300, check=False
    )


def _state(db: Path) -> tuple[list[str], list[str], int]:
    with sqlite3.connect(db) as conn:
        keys = sorted(r[0] for r in conn.execute("SELECT dedupe_key FROM interactions"))
        bad = sorted(r[0] for r in conn.execute("SELECT external_id FROM quarantine"))
        sources = conn.execute("SELECT count(*) FROM sources").fetchone()[0]
    return keys, bad, sources


def _count(db: Path) -> int:
    try:
        with sqlite3.connect(db, timeout=1) as conn:
            return int(conn.execute("SELECT count(*) FROM interactions").fetchone()[0])
    except sqlite3.Error:
        return 0


def test_sigkill_midway_then_rerun_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    files = write_demo_files(tmp_path / "files")
    reference, crashed = tmp_path / "reference.db", tmp_path / "crashed.db"
    for db in (reference, crashed):
        assert (
            _run(db, "connectors", "add", "mbox", "mail", "--set", f"path={files.mbox}").returncode
            == 0
        )
    assert _run(reference, "sync").returncode == 0
    expected = _state(reference)
    assert len(expected[0]) > 1500

    proc = subprocess.Popen(
        [*CLI, "sync"], env=_env(crashed), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 120
    while _count(crashed) == 0 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.01)
    helpers = psutil.Process(proc.pid).children(recursive=True)  # fork server, workers
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    partial = _count(crashed)
    assert 0 < partial < len(expected[0]), "the kill must land between two batches"
    assert helpers, "a sync this size translates in worker processes"
    _, alive = psutil.wait_procs(helpers, timeout=10)
    assert not alive, f"the killed sync's helper processes live on: {alive}"

    rerun = _run(crashed, "sync", "--json")
    assert rerun.returncode == 0, rerun.stderr
    assert _state(crashed) == expected
    assert '"new": 0' in _run(crashed, "sync", "--json").stdout
