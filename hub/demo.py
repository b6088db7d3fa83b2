"""`crmhub demo`: a fresh embedded hub filled with bundled demo data through the real pipeline."""

from __future__ import annotations

import asyncio
import secrets
import shlex
import shutil
import sys
from datetime import UTC, datetime
from pathlib import Path

from config.settings import load_settings
from hub.admin import add_connector, import_directory
from hub.bootstrap import Hub, build_hub
from hub.demo_data import write_demo_files
from hub.pipeline import sync_all
from storage.users import add_user

BAR = 30


def progress_bar(total: int) -> tuple[dict[str, int], object]:
    """A one-line progress bar over all connectors, written to stderr."""
    done: dict[str, int] = {}

    def report(name: str, fetched: int) -> None:
        nonlocal total
        done[name] = fetched
        count = sum(done.values())
        total = max(total, count)  # recurring meetings expand to more items than were planned
        filled = min(BAR, BAR * count // max(total, 1))
        print(
            f"\rloading [{'#' * filled}{'.' * (BAR - filled)}] {count}/{total} items",
            end="",
            file=sys.stderr,
            flush=True,
        )

    return done, report


async def load_demo(hub: Hub, files_dir: Path) -> list[tuple[str, str, str]]:
    """Load the demo; returns (email, role, password) of the users it made.

    The demo mailbox is Anna Becker's (sales): she reads it all, her unmatched mail is hers
    alone, as in a real installation. The calendar and the PBX are the team's. An admin
    administers and, as the policy says, sees customer items as metadata only.
    """
    # Dated relative to today, so the timelines look like a working year, not an archive.
    files = write_demo_files(files_dir, now=datetime.now(UTC))
    result = await import_directory(hub, files.directory_csv)
    print(result.summary(files.directory_csv.name))
    seller = f"anna.becker@{files.internal_domain}"
    for kind, name, path, owner in (
        ("mbox", "demo-mail", files.mbox, {"owner": seller}),
        ("ics", "demo-calendar", files.ics, {}),
        ("asterisk-cdr", "demo-calls", files.cdr, {}),
    ):
        await add_connector(hub, kind, name, {"path": str(path), **owner}, {}, actor="demo")
    counts = files.counts
    total = counts["mails"] + counts["calls"] + counts["meetings"]
    _, report = progress_bar(total)
    reports = await sync_all(hub, None, report)  # type: ignore[arg-type]
    print(file=sys.stderr)
    for r in reports:
        print(
            f"{r.connector}: {r.new} new, {r.matched} matched, {r.unmatched} unmatched, "
            f"{r.quarantined} quarantined" + (f", error: {r.error}" if r.error else "")
        )
    users = [
        (seller, "sales", secrets.token_urlsafe(9)),
        (f"admin@{files.internal_domain}", "admin", secrets.token_urlsafe(9)),
    ]
    async with hub.sessions() as session, session.begin():
        for email, role, password in users:
            await add_user(session, email, role, password, actor="demo")
    return users


def run_demo(port: int, directory: Path, *, load_only: bool = False) -> int:
    """Start from an empty demo directory every time, so the demo always shows the same data."""
    directory = directory.resolve()
    if directory.exists():
        shutil.rmtree(directory)
    (directory / "files").mkdir(parents=True)
    settings = load_settings(
        database_url=f"sqlite:///{directory / 'crmhub.db'}",
        internal_domains=["nordwind-systeme.example"],
        sync_interval=3600,
    )
    hub = build_hub(settings)
    (seller, _, password), (admin, _, admin_password) = asyncio.run(
        load_demo(hub, directory / "files")
    )
    asyncio.run(hub.engine.dispose())
    login = (
        f"log in as {seller} with password {password} (sales; the demo mailbox is hers), "
        f"or as {admin} with password {admin_password} (IT)"
    )
    print(login)
    print(
        "to run crmhub commands against this demo database (crmhub connectors list, crmhub users "
        "add ..., crmhub sync), paste in another terminal:\n"
        f"  export CRMHUB_DATABASE_URL={shlex.quote(settings.database_url)} "
        "CRMHUB_INTERNAL_DOMAINS=nordwind-systeme.example"
    )
    if load_only:
        return 0
    from hub.server import serve

    hub = build_hub(settings, migrate=False)
    return serve(
        hub,
        "127.0.0.1",
        port,
        banner=f"crmhub demo on http://127.0.0.1:{port}/ - {login} (Ctrl-C stops)",
    )
