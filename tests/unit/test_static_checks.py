"""The style guide's static checks (STYLE.md: mypy and ruff clean), run with the suite so that
CI holds them as it holds the tests. Each takes a few seconds."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("hub", "connectors", "matching", "storage", "config")


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *command], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


def test_mypy_finds_no_type_errors() -> None:
    done = _run("mypy", *PACKAGES)
    assert done.returncode == 0, done.stdout + done.stderr


def test_ruff_finds_nothing_to_lint_or_reformat() -> None:
    lint = _run("ruff", "check", ".")
    assert lint.returncode == 0, lint.stdout + lint.stderr
    layout = _run("ruff", "format", "--check", ".")
    assert layout.returncode == 0, layout.stdout + layout.stderr
