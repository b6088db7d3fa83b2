"""The README's Quick start is what new users and CI run, so it must stay exactly true."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).parents[2]


def _quick_start_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.*?)\n```", section, flags=re.S)


def test_quick_start_has_exactly_two_commands() -> None:
    commands = _quick_start_commands()
    assert len(commands) == 2
    assert all("\n" not in c for c in commands), "each is one line a user can paste"
    assert commands[0].endswith("crmhub demo")
    assert commands[1].endswith("pytest")


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert f"'{_quick_start_commands()[1]}'" in ci


def test_the_demo_counts_the_readme_promises_are_the_generators() -> None:
    """A new user checks the first numbers they read against the demo they just loaded."""
    import tempfile

    from hub.demo_data import write_demo_files

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    claims = re.search(
        r"\((\S+) companies, (\S+) contacts, (\S+) mails, (\S+) meetings, (\S+) calls\)",
        " ".join(section.split()),
    )
    assert claims, "the quick start names the demo's counts"
    with tempfile.TemporaryDirectory() as folder:
        counts = write_demo_files(Path(folder)).counts
    promised = [int(n.replace(",", "")) for n in claims.groups()]
    wanted = ["accounts", "contacts", "mails", "meetings", "calls"]
    assert promised == [counts[k] for k in wanted]
    assert "ten mails are broken on purpose" in " ".join(section.split())
    assert counts["malformed_mails"] == 10
