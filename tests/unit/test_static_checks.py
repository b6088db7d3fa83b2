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


def test_a_record_is_frozen_for_mypy_and_hashable(tmp_path: Path) -> None:
    """hub.model.record leaves the freezing to mypy (a frozen dataclass cost six times as much
    to build): assigning a field of a record must stay a type error, and records must still
    work as dictionary keys and compare by value."""
    from hub.model import record

    @record
    class Case:
        kind: str
        key: str

    assert Case("email", "a@b.example") == Case("email", "a@b.example")
    assert len({Case("email", "a@b.example"), Case("email", "a@b.example")}) == 1
    sample = tmp_path / "uses_record.py"
    sample.write_text(
        "from hub.model import record\n\n\n"
        "@record\nclass Case:\n    key: str\n\n\n"
        "case = Case('a@b.example')\ncase.key = 'c@d.example'\n"
    )
    done = _run(
        "mypy", "--no-incremental", "--config-file", str(ROOT / "pyproject.toml"), str(sample)
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert 'Property "key" defined in "Case" is read-only' in done.stdout
