"""Retroactive re-match on PostgreSQL: one account gains one domain, 1,000,000 items stored.

    .venv/bin/python bench/rematch_pg.py [--url postgresql+psycopg://root@127.0.0.1:5432/test]
                                         [--items 1000000] [--affected 1000]

Creates a private database next to the one named by --url, loads `--items` mails (one
external participant each, spread over 20,000 domains) with COPY, then imports a directory
row that gives an account a domain used by `--affected` of them (half of them on subdomains)
through the real `import_directory`, which finds the affected items through the participant
indexes and attributes them again. Prints the load time, the re-match time (target: under
2 s for 1,000,000 items) and, as the baseline measured in the same run, the time of one full
scan of the participants table, which a rescan-based re-match would need at the least.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import sys
import tempfile
import time
import uuid
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from config.settings import Settings
from hub.admin import import_directory
from hub.bootstrap import build_hub
from storage import db

TARGET = "bench-target.example"


def _copy(url: str, items: int, affected: int) -> None:
    import psycopg

    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        interactions = io.StringIO()
        participants = io.StringIO()
        for n in range(1, items + 1):
            if n <= affected:
                domain = TARGET if n % 2 else f"sub{n % 7}.{TARGET}"
            else:
                domain = f"d{n % 20000}.example"
            address = f"p{n}@{domain}"
            labels = ".".join(reversed(domain.split(".")))
            interactions.write(
                f"{n}\tmid:<{n}@bench>\temail\tinbound\t2024-01-08 08:00:00+00\t"
                f"Betreff {n}\t\t[]\t[]\t\t{{}}\t<{n}@bench>\t<{n}@bench>\n"
            )
            participants.write(f"{n}\tfrom\temail\t{address}\t{address}\t\t{labels}\n")
        interactions.seek(0)
        participants.seek(0)
        with cur.copy(
            "COPY interactions (id, dedupe_key, channel, direction, occurred_at, subject, "
            'snippet, in_reply_to, "references", not_logged, extra, '
            "message_id, thread_id) FROM STDIN"
        ) as copy:
            copy.write(interactions.getvalue())
        with cur.copy(
            "COPY participants (interaction_id, role, kind, address, normalized, name, rdomain) "
            "FROM STDIN"
        ) as copy:
            copy.write(participants.getvalue())
        cur.execute("SELECT setval('interactions_id_seq', %s)", (items,))
        cur.execute("ANALYZE")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="postgresql+psycopg://root@127.0.0.1:5432/test")
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--affected", type=int, default=1_000)
    args = parser.parse_args()
    admin = create_engine(make_url(args.url), isolation_level="AUTOCOMMIT")
    name = f"crmhub_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(args.url).set(database=name).render_as_string(hide_password=False)
    try:
        db.upgrade(url)
        started = time.perf_counter()
        _copy(url, args.items, args.affected)
        print(
            f"loaded {args.items:,} items with participants in "
            f"{time.perf_counter() - started:.1f} s"
        )
        engine = create_engine(url)
        with engine.connect() as conn:
            started = time.perf_counter()
            conn.execute(text("SELECT count(*) FROM participants WHERE rdomain LIKE '%x%'"))
            scan = time.perf_counter() - started
        engine.dispose()
        with tempfile.TemporaryDirectory() as tmp:
            directory = Path(tmp) / "grow.csv"
            directory.write_text(
                f"account,domains,contact,emails,phones,owner\nBench Target AG,{TARGET},,,,\n",
                encoding="utf-8",
            )
            settings = Settings(
                database_url=url,
                internal_domains=["ourco.example"],
                secret_key="bench-secret-key-0123456789",
            )

            async def grow() -> tuple[float, int]:
                hub = build_hub(settings, migrate=False)
                try:
                    started = time.perf_counter()
                    result = await import_directory(hub, directory)
                    return time.perf_counter() - started, result.rematched.changed
                finally:
                    await hub.close()

            seconds, changed = asyncio.run(grow())
        print(
            f"import of one account with one new domain, re-matching {changed:,} of "
            f"{args.items:,} items: {seconds:.2f} s (target < 2 s)"
        )
        print(
            f"baseline, one full scan of the participants table: {scan:.2f} s "
            f"(re-match / scan = {seconds / scan:.2f})"
        )
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    main()
